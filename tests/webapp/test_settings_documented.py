"""Every setting of ``webapp/config.py`` is in the README's configuration table, and back."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Variables the table lists that are read outside ``config.DEFAULTS``, and where.
ELSEWHERE = {
    "INSTANCE_DIR": "webapp/__init__.py",
    "MODEL_CACHE": "pipeline/asr.py",
    "TEST_PG_URL": "tests/conftest.py",
    "TEST_REDIS_URL": "tests/conftest.py",
}


def _config_settings() -> set[str]:
    """The keys of the ``DEFAULTS`` mapping, read from the source."""
    tree = ast.parse((ROOT / "webapp" / "config.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "DEFAULTS":
            assert isinstance(node.value, ast.Dict)
            return {key.value for key in node.value.keys if isinstance(key, ast.Constant)}
    raise AssertionError("webapp/config.py defines no DEFAULTS")


def _names(cell: str) -> set[str]:
    """Settings a row names: `DHF_A` / `DHF_B`, `X` (or `DHF_X`), `DHF_SMTP_HOST` / `_PORT`."""
    names: list[str] = []
    for token in re.findall(r"`([^`]+)`", cell):
        if token.startswith("_"):  # a suffix replacing the first name's last part
            names.append(names[0].rsplit("_", 1)[0] + token)
        elif not token.endswith("…"):
            names.append(token.removeprefix("DHF_"))
    return set(names)


def _readme_settings() -> set[str]:
    section = (ROOT / "README.md").read_text().split("\n## Configuration\n")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return set().union(*(_names(row.split("|")[1]) for row in rows))


def test_every_setting_is_in_the_readme():
    assert sorted(_config_settings() - _readme_settings()) == []


def test_the_readme_lists_no_setting_the_code_lacks():
    assert sorted(_readme_settings() - _config_settings() - set(ELSEWHERE)) == []
    for name, path in ELSEWHERE.items():
        assert f"DHF_{name}" in (ROOT / path).read_text(), (name, path)
