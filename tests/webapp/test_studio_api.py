"""Avatars, training and renders through the API: every refusal has its reason code."""

from __future__ import annotations

import io

from webapp.billing import ledger
from webapp.extensions import db
from webapp.models import AuditEvent, Avatar, Job, Order, Render, Upload
from webapp.storage import store

from .. import factories


def _owner_with_avatar(app, *, consent: bool = True, ready: bool = False):  # type: ignore[no-untyped-def]
    with app.app_context():
        owner = factories.user()
        subject = factories.consented_subject(owner)[0] if consent else factories.subject(owner)
        avatar = factories.avatar(owner, subject)
        if ready:
            avatar.status = "ready"
            db.session.commit()
        return factories.token_for(owner), avatar.id, subject.id, owner.id


def _pay(app, owner_id: str, avatar_id: str | None = None, seconds: int = 0) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        item = "avatar_training" if avatar_id else "render_credits"
        order = Order(
            owner_id=owner_id,
            item=item,
            avatar_id=avatar_id,
            status="paid",
            quantity=max(1, seconds // 60),
            amount_cents=100,
        )
        db.session.add(order)
        db.session.flush()
        if seconds:
            ledger.grant(order)
        db.session.commit()


def test_create_avatar_validates_subject_and_options(app, client):
    headers, _, subject_id, _ = _owner_with_avatar(app)
    body = {"subject_id": subject_id, "name": "Shop host", "framing": "full"}
    ok = client.post("/api/v1/avatars", headers=headers, json=body)
    assert ok.status_code == 201 and ok.json["status"] == "draft"
    bad = client.post(
        "/api/v1/avatars",
        headers=headers,
        json={"subject_id": subject_id, "name": "x", "style": "oil"},
    )
    assert (bad.status_code, bad.json["error"]) == (422, "bad_style")
    other_headers = _owner_with_avatar(app)[0]
    stolen = client.post(
        "/api/v1/avatars", headers=other_headers, json={"subject_id": subject_id, "name": "x"}
    )
    assert stolen.status_code == 404


def test_training_needs_consent_then_payment_then_inputs(app, client, grid_clip):
    headers, avatar_id, _, owner_id = _owner_with_avatar(app, consent=False)
    res = client.post(f"/api/v1/avatars/{avatar_id}/train", headers=headers)
    assert (res.status_code, res.json["error"]) == (403, "kyc_required")

    headers, avatar_id, subject_id, owner_id = _owner_with_avatar(app)
    res = client.post(f"/api/v1/avatars/{avatar_id}/train", headers=headers)
    assert (res.status_code, res.json["error"]) == (403, "payment_required")
    _pay(app, owner_id, avatar_id)
    res = client.post(f"/api/v1/avatars/{avatar_id}/train", headers=headers)
    assert (res.status_code, res.json["error"]) == (422, "training_video_missing")

    with app.app_context():
        app.config["VOICE_MIN_SAMPLES"] = 2
        for kind, status in (
            ("training_video", "valid"),
            ("voice_sample", "valid"),
            ("voice_sample", "valid"),
        ):
            data = grid_clip.read_bytes() if kind == "training_video" else b"media"
            blob, size, sha = store(subject_id, io.BytesIO(data))
            db.session.add(
                Upload(
                    owner_id=owner_id,
                    subject_id=subject_id,
                    avatar_id=avatar_id,
                    kind=kind,
                    blob_id=blob,
                    filename="f",
                    size=size,
                    sha256=sha,
                    status=status,
                    text="hello",
                )
            )
        db.session.commit()
    res = client.post(f"/api/v1/avatars/{avatar_id}/train", headers=headers)
    assert res.status_code == 202
    with app.app_context():
        job = db.session.get(Job, res.json["job_id"])
        assert (job.kind, job.queue) == ("train_avatar", "gpu")
        assert db.session.get(Avatar, avatar_id).status == "training"
    again = client.post(f"/api/v1/avatars/{avatar_id}/train", headers=headers)
    assert again.status_code == 409  # one active training per avatar


def test_render_refusals_have_reason_codes(app, client):
    headers, avatar_id, _, owner_id = _owner_with_avatar(app)
    body = {"avatar_id": avatar_id, "script": "Welcome to our spring sale."}
    res = client.post("/api/v1/renders", headers=headers, json=body)
    assert (res.status_code, res.json["error"]) == (403, "avatar_not_ready")

    headers, avatar_id, _, owner_id = _owner_with_avatar(app, ready=True)
    body["avatar_id"] = avatar_id
    res = client.post("/api/v1/renders", headers=headers, json=body)
    assert (res.status_code, res.json["error"]) == (402, "insufficient_credits")

    _pay(app, owner_id, seconds=120)
    scam = {**body, "script": "Send me your bitcoin and I will double your money."}
    res = client.post("/api/v1/renders", headers=headers, json=scam)
    assert (res.status_code, res.json["error"]) == (422, "moderation_fraud")
    assert "fraud" in res.json["message"]
    bad = client.post("/api/v1/renders", headers=headers, json={**body, "background": "red"})
    assert (bad.status_code, bad.json["error"]) == (422, "bad_background")

    res = client.post(
        "/api/v1/renders", headers=headers, json={**body, "background": "#1e90ff", "tone": "warm"}
    )
    assert res.status_code == 202
    got = client.get(f"/api/v1/renders/{res.json['id']}", headers=headers).json
    assert got["status"] == "queued" and "download_url" not in got
    assert got["options"]["background"] == "#1e90ff" and got["options"]["tone"] == "warm"
    with app.app_context():
        render = db.session.get(Render, res.json["id"])
        assert render.credits_reserved == 2 + 2  # spoken AI notice + five words at 2.5/s
        assert ledger.balance(owner_id) == 120 - 4
        verdicts = [
            e.data for e in db.session.query(AuditEvent).filter_by(tag="moderation:verdict")
        ]
        assert [v["allowed"] for v in verdicts] == [False, True]


def test_daily_render_quota(make_app):
    app = make_app(RENDERS_PER_DAY=1)
    client = app.test_client()
    headers, avatar_id, _, owner_id = _owner_with_avatar(app, ready=True)
    _pay(app, owner_id, seconds=600)
    body = {"avatar_id": avatar_id, "script": "Hello and welcome."}
    assert client.post("/api/v1/renders", headers=headers, json=body).status_code == 202
    res = client.post("/api/v1/renders", headers=headers, json=body)
    assert (res.status_code, res.json["error"]) == (429, "render_quota")


def test_render_options_match_what_the_renderer_offers():
    from webapp.studio import service, tasks

    assert set(tasks.STYLE) == set(service.STYLES)
