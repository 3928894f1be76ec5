"""The admin area: KYC review queue, protected-person gallery, ``dhf admin grant``."""

from __future__ import annotations

import io

import numpy as np
import pytest
from click.testing import CliRunner

from compliance import media
from webapp.cli import main as dhf
from webapp.extensions import db
from webapp.models import (
    AuditEvent,
    ConsentRecord,
    IdentityCheck,
    ProtectedPerson,
    Subject,
    Upload,
    User,
)

from .. import factories
from ..conftest import SHARED_DATA, TEST_PASSWORD
from ..identity import test_self_hosted as kyc
from . import test_consent_api as consent_api

pytestmark = pytest.mark.slow
face_video, seeded = consent_api.face_video, consent_api.seeded
photos = kyc.photos  # real photos: the astronaut, a GRID frame, a coffee cup


def login(client, email: str, admin: bool) -> None:  # type: ignore[no-untyped-def]
    with client.application.app_context():
        user = factories.user(email)
        user.is_admin = admin
        db.session.commit()
    res = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert res.status_code == 302


def add_protected(client, name: str, **files: bytes):  # type: ignore[no-untyped-def]
    data = {"name": name, **{k: (io.BytesIO(v), f"{k}.bin") for k, v in files.items()}}
    return client.post(
        "/admin/protected", data=data, content_type="multipart/form-data", follow_redirects=True
    )


def admin_events(app, action: str) -> list[dict]:  # type: ignore[no-untyped-def]
    with app.app_context():
        rows = db.session.query(AuditEvent).filter_by(tag="admin:action").all()
        return [r.data | {"actor": r.actor_id} for r in rows if r.data.get("action") == action]


@pytest.fixture
def queued(make_app, photos):  # type: ignore[no-untyped-def]
    """A self-hosted check of the astronaut waiting in the queue: (app, check id)."""
    app = make_app(KYC_PROVIDER="self_hosted")
    client = app.test_client()
    check_id, path, _ = kyc.start_check(client)
    kyc.submit(client, path, photos["astronaut"], photos["selfie"])
    return app, check_id


def test_only_admins_get_in(make_app):
    client = make_app().test_client()
    assert client.get("/admin/identity").status_code == 302  # anonymous: to the login page
    login(client, "eve@example.com", admin=False)
    for url in ("/admin/identity", "/admin/protected", "/admin/identity/images/x"):
        res = client.get(url)
        assert res.status_code == 403 and "for administrators only" in res.text
    assert client.post("/admin/protected", data={"name": "x"}).status_code == 403


def test_queue_shows_images_scores_and_birth_date(queued, photos):
    app, check_id = queued
    client = app.test_client()
    login(client, "root@example.com", admin=True)
    page = client.get("/admin/identity")
    assert page.status_code == 200 and f'id="check-{check_id}"' in page.text
    assert 'href="/admin/protected"' in page.text  # the admin's navigation
    assert "ada@example.com" in page.text and "1990-05-17" in page.text
    assert "face_distance" in page.text
    with app.app_context():
        images = db.session.query(Upload).filter_by(identity_check_id=check_id).all()
    assert len(images) == 2
    for upload in images:
        assert f"/admin/identity/images/{upload.id}" in page.text
        res = client.get(f"/admin/identity/images/{upload.id}")
        sent = photos["astronaut"] if upload.info["role"] == "document" else photos["selfie"]
        assert res.data == sent and res.mimetype == "image/jpeg"
        assert res.headers["Cache-Control"] == "no-store, private"


def test_approval_verifies_the_account_and_is_audited(queued):
    app, check_id = queued
    client = app.test_client()
    login(client, "root@example.com", admin=True)
    url = f"/admin/identity/{check_id}"
    missing = client.post(url, data={"reason": "", "approve": "Approve"})
    assert missing.status_code == 422 and "Give the reason for your decision." in missing.text
    res = client.post(
        url,
        data={"reason": "portrait and selfie match", "approve": "Approve"},
        follow_redirects=True,
    )
    assert "verified." in res.text and 'id="queue-empty"' in res.text
    with app.app_context():
        check = db.session.get(IdentityCheck, check_id)
        admin = db.session.query(User).filter_by(email="root@example.com").one()
        assert (check.status, check.reasons) == ("verified", ["reviewer_approved"])
        assert check.reviewed_by == admin.id and check.decided_at is not None
        assert db.session.get(User, check.user_id).kyc_status == "verified"
    assert admin_events(app, "kyc_review") == [
        {
            "action": "kyc_review",
            "check": check_id,
            "decision": "verified",
            "reason": "portrait and selfie match",
            "actor": admin.id,
        }
    ]
    again = client.post(url, data={"reason": "twice", "reject": "Reject"})
    assert again.status_code == 409


def test_rejection_by_the_reviewer_and_no_self_review(queued):
    app, check_id = queued
    client = app.test_client()
    with app.app_context():  # the applicant is an administrator too, but not their own judge
        db.session.query(User).filter_by(email="ada@example.com").one().is_admin = True
        db.session.commit()
    assert client.post("/login", data={"email": "ada@example.com", "password": TEST_PASSWORD})
    own = client.post(f"/admin/identity/{check_id}", data={"reason": "me", "approve": "x"})
    assert own.status_code == 403 and "Another administrator must review" in own.text
    client.post("/logout")
    login(client, "root@example.com", admin=True)
    client.post(f"/admin/identity/{check_id}", data={"reason": "document expired", "reject": "x"})
    with app.app_context():
        check = db.session.get(IdentityCheck, check_id)
        assert (check.status, check.review_note) == ("rejected", "document expired")
        assert db.session.get(User, check.user_id).kyc_status == "rejected"


def test_cli_grants_admin(app, monkeypatch):
    with app.app_context():
        factories.user("ops@example.com")
    for name in ("DATABASE_URL", "REDIS_URL", "MASTER_KEYS", "SECRET_KEY", "WATERMARK_KEYS"):
        monkeypatch.setenv(f"DHF_{name}", app.config[name])
    result = CliRunner().invoke(dhf, ["admin", "grant", "OPS@example.com"])
    assert result.exit_code == 0, result.output
    assert result.output == "OPS@example.com is now an administrator\n"
    with app.app_context():
        assert db.session.query(User).filter_by(email="ops@example.com").one().is_admin
    unknown = CliRunner().invoke(dhf, ["admin", "grant", "nobody@example.com"])
    assert unknown.exit_code == 1 and "sign up first" in unknown.output


def test_gallery_keeps_templates_only_and_refuses_bad_media(app, photos):
    client = app.test_client()
    login(client, "root@example.com", admin=True)
    empty = client.post("/admin/protected", data={"name": "Nobody"})
    assert empty.status_code == 422 and "Add a face photo, a voice clip or both." in empty.text
    cup = add_protected(client, "Cup", face=photos["coffee"])
    assert cup.status_code == 422 and "We found no face on the face photo" in cup.text
    voice = SHARED_DATA / "voice_slt" / "train" / "arctic_a0001.wav"
    res = add_protected(client, "Astro Naut", face=photos["astronaut"], voice=voice.read_bytes())
    assert "Astro Naut is now protected" in res.text
    with app.app_context():
        person = db.session.query(ProtectedPerson).one()
        assert len(person.face) == 128 and len(person.voice) == 256
        assert abs(np.linalg.norm(person.voice) - 1) < 1e-3
        assert db.session.query(Upload).count() == 0  # no media kept anywhere
    assert admin_events(app, "protected_add")[0]["templates"] == ["face", "voice"]


def test_protected_face_sends_the_consent_recording_to_review(app, face_video, tmp_path):
    """The GRID speaker put in the gallery from one frame of a training clip: their live,
    otherwise passing consent recording (held-out clips) must wait for a person."""
    client = app.test_client()
    _, subject = consent_api._start(client)
    admin = app.test_client()
    login(admin, "root@example.com", admin=True)
    frame = next(media.frames(SHARED_DATA / "grid_s1" / "train" / "bbal7s.mpg"))
    assert add_protected(admin, "GRID speaker one", face=kyc.jpeg(frame)).status_code == 200
    token = subject["consent_token"]
    page = client.get(f"/api/v1/consent/{token}").json
    recording = factories.consent_recording(face_video, tmp_path, page)
    res = client.post(
        f"/api/v1/consent/{token}/recording", **factories.multipart("video", recording)
    )
    assert res.json == {"status": "needs_review", "reasons": ["protected_person"]}
    with app.app_context():
        person = db.session.query(ProtectedPerson).one()
        event = db.session.query(AuditEvent).filter_by(tag="consent:reject").one()
        assert event.data["protected_matches"] == [person.id]
        record_id = db.session.query(ConsentRecord).one().id
    # a person decides, in the consent review queue, and says why
    queue = admin.get("/admin/consent")
    assert f'id="consent-{record_id}"' in queue.text and "protected_person" in queue.text
    res = admin.post(
        f"/admin/consent/{record_id}",
        data={"reason": "not the public figure", "approve": "Approve"},
    )
    assert res.status_code == 302
    with app.app_context():
        assert db.session.get(ConsentRecord, record_id).status == "verified"
        assert db.session.get(Subject, subject["id"]).status == "active"
        review = admin_events(app, "consent_review")[0]
        assert review["decision"] == "verified" and review["reason"] == "not the public figure"
