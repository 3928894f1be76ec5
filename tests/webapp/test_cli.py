"""The ``dhf`` command as ``dhf serve`` starts its workers: ``python -m webapp.cli``."""

from __future__ import annotations

import json
import subprocess
import sys
import types


def test_module_form_has_every_command():
    """``python -m webapp.cli`` used to run before the last command groups were defined."""
    out = subprocess.run(
        [sys.executable, "-m", "webapp.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    commands = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()}
    assert {"jobs", "avatar", "render", "worker", "serve", "verify"} <= commands


def _fake_voice_bench(monkeypatch):
    """``pipeline.voice.bench`` replaced by one returning a fixed result (no training)."""
    result = {
        "benchmark": "voice",
        "profiles": {"tiny": {"train_s": 398.0, "rtf": 0.6021}},
        "size": [512, 512],
        "peak_memory_mb": 1191.7,
    }
    fake = types.ModuleType("pipeline.voice.bench")
    fake.bench = lambda data, profiles: result  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pipeline.voice.bench", fake)
    return result


def test_bench_json_flag_prints_json_else_a_summary(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from webapp.cli import main

    result = _fake_voice_bench(monkeypatch)
    as_json = CliRunner().invoke(main, ["bench", "voice", "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output) == result

    out = tmp_path / "bench.json"
    summary = CliRunner().invoke(main, ["bench", "voice", "--out", str(out)])
    assert summary.exit_code == 0
    assert summary.output.splitlines() == [
        "benchmark              voice",
        "profiles.tiny.train_s  398",
        "profiles.tiny.rtf      0.6021",
        "size                   512, 512",
        "peak_memory_mb         1191.7",
    ]
    assert json.loads(out.read_text()) == result
