"""The ``dhf`` command as ``dhf serve`` starts its workers: ``python -m webapp.cli``."""

from __future__ import annotations

import subprocess
import sys


def test_module_form_has_every_command():
    """``python -m webapp.cli`` used to run before the last command groups were defined."""
    out = subprocess.run([sys.executable, "-m", "webapp.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    commands = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()}
    assert {"jobs", "avatar", "render", "worker", "serve", "verify"} <= commands
