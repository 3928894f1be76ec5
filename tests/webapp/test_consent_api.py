"""The consent link end to end: notice, timed challenge, recording checks, single use,
revocation. Each attack of the consent issue is replayed here and refused with its reason.

Recordings follow a seeded challenge (factories.fix_challenge): the GRID speaker's face,
its head turned at the turn cue by a SYNTHETIC warp of the real frames (tests/headturn.py),
and the shipped voice saying each digit as it is cued, then the statement.
"""

from __future__ import annotations

import pytest

from compliance import media
from compliance.vault import KeyDestroyed
from webapp import jobs
from webapp.consent import notice
from webapp.extensions import db
from webapp.models import AuditEvent, Avatar, ConsentRecord, Job, Subject, Upload
from webapp.storage import vault

from .. import factories
from ..conftest import SHARED_DATA

pytestmark = pytest.mark.slow
GRID = SHARED_DATA / "grid_s1"
ONE_DB = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # media-bound tests


@pytest.fixture(scope="session")
def face_video(tmp_path_factory):  # type: ignore[no-untyped-def]
    if not GRID.exists():
        pytest.skip("shared data missing")
    out = tmp_path_factory.mktemp("consent") / "face.mp4"
    media.concat(sorted((GRID / "heldout").glob("*.mpg"))[:8], out)  # 24 s: cues + statement
    return out


def _attempt(code: str = factories.FIXED_PASSCODE) -> dict[str, object]:
    """What GET /consent/<token> answers under the seeded challenge, for ``code``."""
    digits = iter(code)
    cues = factories.fixed_challenge().as_json()
    return {
        "statement": "I, Ada, agree that Digital Human Factory may create a digital "
        "likeness of my face and voice.",
        "challenge": [{**c, "digit": next(digits)} if c["cue"] == "say_digit" else c for c in cues],
    }


@pytest.fixture(scope="session")
def recordings(face_video, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Every recording the tests submit, built once for both databases (the challenge is
    seeded)."""
    made = {}
    variants = {
        "genuine": {},
        "wrong_code": {"attempt": _attempt("9999")},
        "still": {"still": True},
        "no_turn": {"turn": False},
        "late": {"shift": 3.0},  # the right code, made for other cue times
    }
    for name, options in variants.items():
        attempt = options.pop("attempt", _attempt())
        folder = tmp_path_factory.mktemp(name)
        made[name] = factories.consent_recording(face_video, folder, attempt, **options)
    return made


@pytest.fixture(autouse=True)
def seeded(monkeypatch):  # type: ignore[no-untyped-def]
    factories.fix_challenge(monkeypatch)


def _start(client, kyc: bool = True, relation: str = "self", headers=None):  # type: ignore[no-untyped-def]
    headers = headers or factories.api_signup(client, "ada@example.com")
    if kyc:
        assert client.post("/api/v1/identity/sessions", json={}, headers=headers).json[
            "status"
        ] == ("verified")
    res = client.post(
        "/api/v1/subjects", json={"display_name": "Ada", "relation": relation}, headers=headers
    )
    assert res.status_code == 201
    return headers, res.json


def _submit(client, token: str, path):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/consent/{token}/recording", **factories.multipart("video", path))


def _consent(client, token: str, path):  # type: ignore[no-untyped-def]
    page = client.get(f"/api/v1/consent/{token}")
    assert page.status_code == 200, page.json
    return _submit(client, token, path)


def test_live_statement_is_verified(app, recordings):
    client = app.test_client()
    _, subject = _start(client)
    page = client.get(f"/api/v1/consent/{subject['consent_token']}").json
    assert page["notice_sha256"] == notice.SHA256 and "Withdrawal" in page["notice"]
    assert page["challenge"] == _attempt()["challenge"] and page["passcode"] == "4719"
    assert "4" not in page["statement"]  # the code is said on its cues, not in the statement
    res = _submit(client, subject["consent_token"], recordings["genuine"])
    assert res.json == {"status": "verified", "reasons": []}
    with app.app_context():
        assert db.session.get(Subject, subject["id"]).status == "active"
        record = db.session.query(ConsentRecord).one()
        assert record.notice_version == notice.VERSION and record.passcode_sha256 is None
        assert record.scores["motion"] > 1.0


@ONE_DB
@pytest.mark.parametrize(
    ("variant", "reasons"),
    [
        ("wrong_code", ["passcode_not_heard"]),
        ("late", ["challenge_timing", "head_turn_missing"]),  # made before the cues were known
        ("no_turn", ["head_turn_missing"]),
        ("still", ["head_turn_missing", "not_live"]),
    ],
)
def test_a_recording_that_misses_the_challenge_is_rejected(app, recordings, variant, reasons):
    client = app.test_client()
    _, subject = _start(client)
    res = _consent(client, subject["consent_token"], recordings[variant])
    assert res.json == {"status": "rejected", "reasons": reasons}


@ONE_DB
def test_a_replayed_genuine_recording_is_rejected_and_a_retry_is_audited(
    app, recordings, monkeypatch
):
    """The genuine recording of one attempt, replayed against the next (new code, new cues)."""
    client = app.test_client()
    _, subject = _start(client)
    token = subject["consent_token"]
    client.get(f"/api/v1/consent/{token}")  # attempt 1: code 4719 ... not sent in time
    factories.fix_challenge(monkeypatch, passcode="3205")
    res = _consent(client, token, recordings["genuine"])  # attempt 2 gets attempt 1's video
    assert res.json == {"status": "rejected", "reasons": ["passcode_not_heard"]}
    factories.fix_challenge(monkeypatch)
    assert _consent(client, token, recordings["genuine"]).json["status"] == "verified"
    with app.app_context():
        tags = [e.tag for e in db.session.query(AuditEvent).order_by(AuditEvent.id)]
        assert tags.count("consent:retry") == 1 and tags[-1] == "consent:grant"


def test_a_decided_link_is_single_use(app, recordings):
    client = app.test_client()
    _, subject = _start(client)
    token = subject["consent_token"]
    assert _consent(client, token, recordings["genuine"]).json["status"] == "verified"
    again = client.get(f"/api/v1/consent/{token}")
    assert (again.status_code, again.json["error"]) == (409, "consent_decided")
    replay = _submit(client, token, recordings["wrong_code"])
    assert (replay.status_code, replay.json["error"]) == (409, "consent_decided")
    assert client.get(f"/consent/{token}").status_code == 200  # the page still offers withdrawal
    with app.app_context():
        assert db.session.query(ConsentRecord).one().status == "verified"


def test_without_identity_verification_a_person_must_review(app, recordings):
    client = app.test_client()
    _, subject = _start(client, kyc=False)
    res = _consent(client, subject["consent_token"], recordings["genuine"])
    assert res.json == {"status": "needs_review", "reasons": ["kyc_missing"]}


@ONE_DB
def test_an_unreadable_recording_is_refused_and_nothing_is_kept(app, tmp_path):
    client = app.test_client()
    _, subject = _start(client)
    junk = tmp_path / "consent.webm"
    junk.write_bytes(b"\x1aE\xdf\xa3 not really a video")
    res = _consent(client, subject["consent_token"], junk)
    assert (res.status_code, res.json["error"]) == (422, "unreadable_recording")
    with app.app_context():
        assert db.session.query(Upload).count() == 0
        assert list(vault().store.list("blobs/")) == []


@ONE_DB
def test_the_holder_cannot_complete_another_persons_consent(app, recordings):
    """The account holder's own face in the consent of an 'other' subject: refused, with
    the holder's own verified consent recording as the reference (the dev KYC has no
    selfie; the self-hosted one is covered in tests/identity)."""
    client = app.test_client()
    headers, me = _start(client)
    assert _consent(client, me["consent_token"], recordings["genuine"]).json["status"] == "verified"
    _, other = _start(client, kyc=False, relation="other", headers=headers)
    token = other["consent_token"]
    blocked = client.get(f"/api/v1/consent/{token}")
    assert (blocked.status_code, blocked.json["error"]) == (403, "kyc_required")
    client.post(f"/consent/{token}/identity")  # the link's own KYC (dev provider: approves)
    res = _consent(client, token, recordings["genuine"])
    assert res.json["status"] == "rejected" and "same_person_as_holder" in res.json["reasons"]
    with app.app_context():
        event = db.session.query(AuditEvent).filter_by(tag="consent:reject").one()
        assert event.data["scores"]["consent_holder"] < 0.45


def test_revocation_cancels_queued_work_shreds_files_and_refuses_new_uploads(app, grid_clip):
    client = app.test_client()
    headers, subject = _start(client)
    with app.app_context():
        owner = db.session.get(Subject, subject["id"]).owner_id
        avatar = Avatar(owner_id=owner, subject_id=subject["id"], name="ada")
        db.session.add(avatar)
        db.session.commit()
        avatar_id = avatar.id
    upload = client.post(
        f"/api/v1/avatars/{avatar_id}/training-video",
        headers=headers,
        **factories.multipart("video", grid_clip),
    )
    assert upload.status_code == 202
    with app.app_context():
        jobs.submit("probe_upload", owner, avatar_id)  # work queued before the withdrawal
        db.session.commit()
    revoked = client.post(f"/api/v1/consent/{subject['consent_token']}/revoke").json
    assert revoked["status"] == "revoked" and revoked["receipt"]["key_destroyed"] is True
    with app.app_context():
        statuses = {j.status for j in db.session.query(Job).all()}
        assert statuses == {"canceled"}
        assert db.session.get(Subject, subject["id"]).status == "revoked"
        row = db.session.query(ConsentRecord).one()
        blob = db.session.get(Upload, upload.json["upload_id"]).blob_id
        with pytest.raises(KeyDestroyed):
            vault().read(subject["id"], blob)
        assert row.status == "revoked"
    again = client.get(f"/api/v1/consent/{subject['consent_token']}")
    assert again.status_code == 409 and again.json["error"] == "consent_decided"
    # nothing biometric is accepted any more, and no key is made again
    video = client.post(
        f"/api/v1/avatars/{avatar_id}/training-video",
        headers=headers,
        **factories.multipart("video", grid_clip),
    )
    wav = grid_clip.parent / "unused.wav"
    take = client.post(
        f"/api/v1/avatars/{avatar_id}/voice-samples",
        headers=headers,
        **factories.multipart("audio", grid_clip, filename=wav.name, text="bin blue at f two now"),
    )
    for res in (video, take):
        assert (res.status_code, res.json["error"]) == (403, "consent_revoked")
    with app.app_context():
        assert not vault().has_key(subject["id"])


def test_passcode_issuance_is_rate_limited_on_page_and_api_alike(make_app):
    client = make_app(RATELIMIT_PASSCODE="3 per hour").test_client()
    _, subject = _start(client)
    token = subject["consent_token"]
    codes = [client.get(f"/api/v1/consent/{token}").status_code for _ in range(2)]
    codes.append(client.get(f"/consent/{token}").status_code)
    codes.append(client.get(f"/consent/{token}").status_code)
    assert codes == [200, 200, 200, 429]
    assert client.get("/api/v1/consent/not-a-token").status_code == 429  # per client, any link


def test_dev_identity_provider_is_refused_in_production(tmp_path, monkeypatch, redis_url):
    from webapp import create_app
    from webapp.config import ConfigError

    monkeypatch.setenv("DHF_INSTANCE_DIR", str(tmp_path))
    config = {
        "ENV": "production",
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        "SECRET_KEY": "s" * 40,
        "MASTER_KEYS": "k:" + "A" * 43,
        "WATERMARK_KEYS": "w:" + "B" * 43,
        "STRIPE_SECRET_KEY": "sk_live_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
    }
    with pytest.raises(ConfigError, match="KYC_PROVIDER=dev auto-approves identities"):
        create_app(config)


def test_unknown_identity_provider_says_so(client):
    headers = factories.api_signup(client, "ada@example.com")
    res = client.post(
        "/api/v1/identity/sessions", json={"provider": "stripe_identity"}, headers=headers
    )
    assert res.status_code == 422 and res.json["error"] == "provider_unavailable"


def test_no_client_field_makes_a_file_live(app, recordings):
    """The old ``source=browser`` flag is gone: a still image sent with it is still a still."""
    client = app.test_client()
    _, subject = _start(client)
    token = subject["consent_token"]
    client.get(f"/api/v1/consent/{token}")
    form = factories.multipart("video", recordings["still"], source="browser")
    res = client.post(f"/api/v1/consent/{token}/recording", **form)
    assert res.json["status"] == "rejected" and "not_live" in res.json["reasons"]
