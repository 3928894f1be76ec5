"""Bad input gets a clear 4xx, never a 500; instance secrets are private files."""

from __future__ import annotations

import io
import stat

import pytest

from .. import factories


def _headers(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        owner = factories.user()
        subject = factories.subject(owner)
        return factories.token_for(owner), subject.id


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/identity/sessions", [1]),
        ("/api/v1/identity/sessions", {"provider": 5}),
        ("/api/v1/identity/sessions", "x"),
        ("/api/v1/checkout", [1]),
        ("/api/v1/checkout", {"item": "avatar_training", "avatar_id": {"a": 1}}),
        ("/api/v1/checkout", {"item": "render_credits", "quantity": True}),
        ("/api/v1/subjects", ["display_name"]),
        ("/api/v1/avatars", {"subject_id": 1, "name": "x"}),
        ("/api/v1/renders", {"avatar_id": "a", "script": "hi", "background": ["#fff"]}),
        ("/api/v1/renders", {"avatar_id": "a", "script": "hi", "tone": {"x": 1}}),
        ("/api/v1/auth/tokens", [1]),
        ("/api/v1/auth/signup", None),
    ],
)
def test_non_object_bodies_and_wrong_types_are_422(app, client, path, body):
    headers, _ = _headers(app)
    res = client.post(path, headers=headers, json=body)
    assert res.status_code == 422, res.json
    assert res.json["error"] in ("invalid_input", "missing_fields", "bad_field")


def test_wrong_option_type_on_avatars_is_named(app, client):
    headers, subject_id = _headers(app)
    res = client.post(
        "/api/v1/avatars",
        headers=headers,
        json={"subject_id": subject_id, "name": "x", "style": ["oil"]},
    )
    assert (res.status_code, res.json) == (
        422,
        {"error": "bad_field", "message": "style must be a string."},
    )


def test_identity_sessions_take_no_body_and_are_rate_limited(make_app):
    app = make_app(RATELIMIT_KYC="2 per hour")
    client = app.test_client()
    headers, _ = _headers(app)
    assert client.post("/api/v1/identity/sessions", headers=headers).status_code == 201
    assert client.post("/api/v1/identity/sessions", headers=headers, json={}).status_code == 201
    res = client.post("/api/v1/identity/sessions", headers=headers, json={})
    assert (res.status_code, res.json["error"]) == (429, "rate_limited")


def test_a_nul_byte_in_an_upload_name_is_not_a_500(app, client):
    data = {"file": (io.BytesIO(b"not a video at all"), "clip\x00.mp\x004")}
    res = client.post("/api/v1/verify", data=data, content_type="multipart/form-data")
    assert res.status_code < 500, res.data
    with app.app_context():
        owner = factories.user()
        avatar_id, headers = factories.avatar(owner).id, factories.token_for(owner)
    res = client.post(
        f"/api/v1/avatars/{avatar_id}/training-video",
        headers=headers,
        data={"video": (io.BytesIO(b"junk"), "a\x00b.mp4")},
        content_type="multipart/form-data",
    )
    assert res.status_code == 202, res.json


def test_instance_secrets_and_database_are_private(tmp_path, monkeypatch, redis_url):
    from webapp import create_app, migrate
    from webapp.extensions import db

    instance = tmp_path / "fresh"
    monkeypatch.setenv("DHF_INSTANCE_DIR", str(instance))
    app = create_app({"TESTING": True, "REDIS_URL": redis_url})
    with app.app_context():
        migrate.upgrade()
        db.engine.dispose()
    for name in ("secret.key", "master.keys", "watermark.keys", "dhf.sqlite3"):
        assert stat.S_IMODE((instance / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700


def test_embedded_redis_dump_is_private(tmp_path):
    from webapp import queue

    path = tmp_path / "private" / "redis.db"
    url = queue.embedded_redis_url(path)
    try:
        queue.connect(url).save()
    finally:
        queue._embedded.pop(str(path.resolve())).shutdown()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_serve_migrates_embedded_defaults_and_refuses_a_bare_external_database(
    tmp_path, monkeypatch, redis_url
):
    from click.testing import CliRunner

    from webapp import create_app, migrate
    from webapp.cli import main
    from webapp.extensions import db

    monkeypatch.setenv("DHF_INSTANCE_DIR", str(tmp_path / "fresh"))
    app = create_app({"TESTING": True, "REDIS_URL": redis_url})  # no DATABASE_URL: embedded
    assert migrate.ensure_schema(app) == "migrated"
    assert migrate.ensure_schema(app) == "current"
    with app.app_context():
        db.engine.dispose()

    bare = tmp_path / "external.sqlite3"
    env = {
        "DATABASE_URL": f"sqlite:///{bare}",
        "REDIS_URL": redis_url,
        "DHF_INSTANCE_DIR": str(tmp_path / "other"),
    }
    monkeypatch.setattr("signal.signal", lambda *args: None)  # serve's SIGTERM handler
    result = CliRunner().invoke(main, ["serve", "--workers", "0"], env=env)
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: The database at DATABASE_URL has no schema: run `dhf init`."
    )
