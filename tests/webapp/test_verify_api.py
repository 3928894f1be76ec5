"""The public verification API and pages, resolving files through the registry (R15, R16)."""

from __future__ import annotations

import base64
import re

import pytest
from click.testing import CliRunner

from compliance.provenance import SOFT_BINDING_ALG
from webapp.cli import main
from webapp.extensions import db
from webapp.models import Subject
from webapp.registry import register

from .. import factories
from .test_audit_log import _cli_env

pytestmark = pytest.mark.slow


@pytest.fixture
def registered(make_app, stamped_media):
    app = make_app(
        SIGNING_DIR=str(stamped_media.settings.signing_dir),
        WATERMARK_KEYS=stamped_media.watermark_keys,
        AIGC_PRODUCER="DHFTEST",
    )
    with app.app_context():
        owner = factories.user()
        avatar = factories.avatar(owner)
        subject_id = avatar.subject_id
        register(
            stamped_media.record, owner_id=owner.id, avatar_id=avatar.id, subject_id=subject_id
        )
        db.session.commit()
    return app, subject_id


def _post(client, path):
    return client.post("/api/v1/verify", **factories.multipart("file", path))


def test_three_files_three_answers(registered, stamped_media):
    app, _ = registered
    client = app.test_client()
    ours = _post(client, stamped_media.stamped).json
    assert ours["verdict"] == "ai_generated_by_us"
    assert ours["c2pa"]["state"] == "Trusted"
    assert ours["content"]["content_id"] == stamped_media.record.content_id
    assert ours["content"]["consent_status"] == "active"
    assert "avatar_id" not in ours["content"]  # it would link every file of one person

    stripped = _post(client, stamped_media.stripped).json
    assert stripped["verdict"] == "ai_generated_by_us"
    assert stripped["c2pa"] is None and stripped["aigc"] is None
    assert stripped["watermark"]["found"] is True
    assert stripped["watermark"]["content_id"] == stamped_media.record.content_id
    assert stripped["watermark"]["p_value"] <= 1e-9

    unrelated = _post(client, stamped_media.unrelated).json
    assert unrelated["verdict"] == "unknown" and unrelated["content"] is None

    assert _post(client, stamped_media.tampered).json["verdict"] == "tampered"


def test_revoked_consent_shows_in_verification(registered, stamped_media):
    app, subject_id = registered
    with app.app_context():
        db.session.get(Subject, subject_id).status = "revoked"
        db.session.commit()
    body = _post(app.test_client(), stamped_media.stripped).json
    assert body["content"]["consent_status"] == "consent_withdrawn"


def test_soft_binding_resolution_routes(registered, stamped_media):
    app, _ = registered
    client = app.test_client()
    algs = client.get("/api/v1/services/supportedAlgorithms").json
    assert algs["watermarks"] == [{"alg": SOFT_BINDING_ALG}]
    value = base64.b64encode(bytes.fromhex(stamped_media.record.watermark_id)).decode()
    matches = client.get(
        "/api/v1/matches/byBinding", query_string={"alg": SOFT_BINDING_ALG, "value": value}
    ).json
    assert matches["matches"][0]["manifestId"] == stamped_media.record.manifest_id
    manifest = client.get(f"/api/v1/manifests/{stamped_media.record.manifest_id}")
    assert manifest.status_code == 200 and manifest.data == stamped_media.record.manifest
    bad = client.get("/api/v1/matches/byBinding", query_string={"alg": "x", "value": value})
    assert bad.status_code == 422 and bad.json["error"] == "unsupported_alg"


def test_verify_limits_size_and_rate(make_app, stamped_media):
    app = make_app(
        VERIFY_MAX_BYTES=1000,
        RATELIMIT_VERIFY="2 per minute",
        SIGNING_DIR=str(stamped_media.settings.signing_dir),
        WATERMARK_KEYS=stamped_media.watermark_keys,
    )
    client = app.test_client()
    res = _post(client, stamped_media.unrelated)
    assert res.status_code == 413 and res.json["error"] == "too_large"
    assert client.post("/api/v1/verify").json["error"] == "missing_file"
    assert client.post("/api/v1/verify").status_code == 429


def test_dhf_verify_cli(registered, stamped_media):
    app, _ = registered
    env = {
        **_cli_env(app),
        "DHF_SIGNING_DIR": app.config["SIGNING_DIR"],
        "DHF_WATERMARK_KEYS": app.config["WATERMARK_KEYS"],
        "DHF_AIGC_PRODUCER": "DHFTEST",
    }
    result = CliRunner().invoke(main, ["verify", str(stamped_media.stripped), "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert '"verdict": "ai_generated_by_us"' in result.output
    assert stamped_media.record.content_id in result.output


def test_public_verify_page(registered, stamped_media):
    app, _ = registered
    client = app.test_client()
    assert b"Drop a video here" in client.get("/verify").data
    page = client.post(
        "/verify", **factories.multipart("file", stamped_media.stamped)
    ).data.decode()
    assert 'data-verdict="ai_generated_by_us"' in page
    assert re.search(r'id="consent">active<', page)


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    from .. import bombs

    work = tmp_path_factory.mktemp("bombs")
    return {
        "no_duration": bombs.no_duration_webm(work / "nodur.webm"),
        "huge": bombs.huge_picture(work / "huge.mp4"),
        "ten_hours": bombs.ten_hour_header(work / "long.mkv"),
    }


def test_hostile_files_are_refused_or_bounded(registered, hostile):
    app, _ = registered
    client = app.test_client()
    for name, limit in (("huge", "max_pixels"), ("ten_hours", "max_seconds")):
        res = _post(client, hostile[name])
        assert res.status_code == 422 and res.json["error"] == "media_limit"
        assert f"limit {limit}" in res.json["message"]
    res = _post(client, hostile["no_duration"])
    assert res.status_code == 200 and res.json["verdict"] == "unknown"
    page = client.post("/verify", **factories.multipart("file", hostile["huge"]))
    assert page.status_code == 422 and b"max_pixels" in page.data


def test_verify_budget_and_busy_slots(make_app, stamped_media):
    from webapp import registry

    app = make_app(
        SIGNING_DIR=str(stamped_media.settings.signing_dir),
        WATERMARK_KEYS=stamped_media.watermark_keys,
        VERIFY_BUDGET_S=0.001,
        VERIFY_CONCURRENCY=1,
        VERIFY_QUEUE_S=0.05,
    )
    client = app.test_client()
    slow = _post(client, stamped_media.stamped)
    assert slow.status_code == 422 and "limit verify_budget_s" in slow.json["message"]
    with app.app_context():
        slot = registry._slots()
        assert slot.acquire(timeout=1)
        try:
            busy = _post(client, stamped_media.stamped)
        finally:
            slot.release()
    assert busy.status_code == 503 and busy.json["error"] == "verify_busy"
