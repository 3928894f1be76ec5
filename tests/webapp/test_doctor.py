"""``dhf doctor`` really loads every bundled model and exits 0 only when all pass."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from webapp.cli import main

from .test_audit_log import _cli_env


def _doctor(app, *args: str):
    env = {**_cli_env(app), "DHF_SIGNING_DIR": app.config["SIGNING_DIR"]}
    return CliRunner().invoke(main, ["doctor", "--json", *args], env=env)


def test_doctor_fails_without_signing_keys_and_names_the_fix(app):
    result = _doctor(app, "--only", "signing_keys", "--only", "database")
    report = json.loads(result.output)
    assert result.exit_code == 1
    assert report["checks"]["database"]["ok"] is True
    assert "run 'dhf keys init'" in report["checks"]["signing_keys"]["detail"]


@pytest.mark.slow
def test_doctor_passes_every_check(app):
    env = {**_cli_env(app), "DHF_SIGNING_DIR": app.config["SIGNING_DIR"]}
    assert CliRunner().invoke(main, ["keys", "init"], env=env).exit_code == 0
    result = _doctor(app)
    report = json.loads(result.output)
    failed = {k: v["detail"] for k, v in report["checks"].items() if not v["ok"]}
    assert result.exit_code == 0 and not failed, failed
    assert set(report["checks"]) == {
        "database",
        "redis",
        "storage",
        "ffmpeg",
        "signing_keys",
        "c2pa",
        "mediapipe_face_mesh",
        "piper_voice+pocketsphinx",
        "piper_voice+whisper",
        "resemblyzer",
        "dlib_face_model",
        "imwatermark_rivagan",
        "opengl_egl",
    }
    assert report["checks"]["c2pa"]["detail"] == "signed and read back: Trusted"
