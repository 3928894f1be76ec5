"""One person per avatar, whatever the order of arrival: the consent recording, the footage
and the voice takes of the GRID speaker bind; another face or voice is refused with the
pair's reason, when it arrives and again at the training gate."""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker

from compliance import media
from pipeline.voice.validate import MESSAGES
from webapp.extensions import db
from webapp.models import Avatar, Upload
from webapp.queue import connect
from webapp.studio import service as studio

from .. import factories
from ..conftest import SHARED_DATA
from ..pipeline.face.synthetic import talking_video

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]
GRID = SHARED_DATA / "grid_s1"
SLT = SHARED_DATA / "voice_slt" / "train"


@pytest.fixture(scope="session")
def grid(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The GRID speaker's genuine consent (and its seeded challenge), takes, footage."""
    if not GRID.exists() or not SLT.exists():
        pytest.skip("shared data missing")
    work = tmp_path_factory.mktemp("grid")
    recording, challenge = factories.grid_consent(GRID / "heldout", work)
    takes = []
    for clip in sorted((GRID / "train").glob("*.mpg"))[:14]:  # Whisper mishears many GRID sentences
        wav = work / f"{clip.stem}.wav"
        media.write_wav(wav, media.audio(clip, 16000), 16000)
        takes.append((wav, clip.with_suffix(".txt").read_text().strip()))
    astronaut = work / "astronaut.mp4"
    talking_video(astronaut, 6.0, seed=3)
    footage = sorted((GRID / "train").glob("*.mpg"))[10]
    return {
        "consent": recording,
        "challenge": challenge,
        "takes": takes,
        "footage": footage,
        "astronaut": astronaut,
    }


@pytest.fixture
def owner(make_app, grid, monkeypatch):  # type: ignore[no-untyped-def]
    """A verified account with an avatar of a subject who has not consented yet."""
    factories.fix_challenge(monkeypatch, grid["challenge"], factories.GRID_PASSCODE)
    app = make_app(CONSENT_STATEMENT_WORDS=0)  # the GRID speaker cannot read our statement
    client = app.test_client()
    headers = factories.api_signup(client, "ada@example.com")
    client.post("/api/v1/identity/sessions", json={}, headers=headers)
    subject = client.post(
        "/api/v1/subjects", headers=headers, json={"display_name": "Ada", "relation": "self"}
    ).json
    avatar = client.post(
        "/api/v1/avatars", headers=headers, json={"subject_id": subject["id"], "name": "Host"}
    ).json
    return app, client, headers, subject["consent_token"], avatar["id"]


def _consent(client, token: str, path):  # type: ignore[no-untyped-def]
    client.get(f"/api/v1/consent/{token}")
    return client.post(f"/api/v1/consent/{token}/recording", **factories.multipart("video", path))


def _take(client, headers, avatar_id: str, wav, text: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/avatars/{avatar_id}/voice-samples",
        headers=headers,
        **factories.multipart("audio", wav, text=text),
    )


def _footage(app, client, headers, avatar_id: str, path) -> Upload:  # type: ignore[no-untyped-def]
    res = client.post(
        f"/api/v1/avatars/{avatar_id}/training-video",
        headers=headers,
        **factories.multipart("video", path),
    )
    assert res.status_code == 202, res.json
    conn = connect(app.config["REDIS_URL"])
    with app.app_context():
        SimpleWorker([Queue("cpu", connection=conn)], connection=conn).work(burst=True)
        return db.session.get(Upload, res.json["upload_id"])


def test_footage_and_takes_after_consent_must_be_the_same_person(owner, grid):
    app, client, headers, token, avatar_id = owner
    assert _consent(client, token, grid["consent"]).json == {"status": "verified", "reasons": []}
    mine = _footage(app, client, headers, avatar_id, grid["footage"])
    assert (mine.status, mine.reasons) == ("valid", [])
    other = _footage(app, client, headers, avatar_id, grid["astronaut"])
    assert other.status == "invalid" and other.reasons[0].startswith("face_mismatch_training:")
    answers = [_take(client, headers, avatar_id, wav, text) for wav, text in grid["takes"]]
    assert any(a.status_code == 201 for a in answers)  # some GRID takes are clipped or noisy
    assert all(a.json["error"] in MESSAGES for a in answers if a.status_code == 422)
    slt = SLT / "arctic_a0001.wav"
    refused = _take(client, headers, avatar_id, slt, slt.with_suffix(".txt").read_text().strip())
    assert (refused.status_code, refused.json["error"]) == (422, "voice_mismatch_samples")


def test_a_consent_in_another_voice_than_the_takes_is_rejected(owner, grid, tmp_path):
    """Takes first (the GRID speaker), then a statement with his face and another voice."""
    app, client, headers, token, avatar_id = owner
    accepted = sum(
        _take(client, headers, avatar_id, wav, text).status_code == 201
        for wav, text in grid["takes"]
    )
    assert accepted >= 2
    face = tmp_path / "face.mp4"
    media.concat(sorted((GRID / "heldout").glob("*.mpg"))[:8], face)
    attempt = client.get(f"/api/v1/consent/{token}").json
    piper = factories.consent_recording(face, tmp_path, attempt)  # the shipped voice
    res = client.post(f"/api/v1/consent/{token}/recording", **factories.multipart("video", piper))
    assert res.json == {"status": "rejected", "reasons": ["voice_mismatch_samples"]}


def test_the_training_gate_compares_every_pair_again(owner, grid):
    """Footage that skipped its check (stored as valid behind the probe's back) is still
    compared with the consent before any training starts."""
    app, client, headers, token, avatar_id = owner
    assert _consent(client, token, grid["consent"]).json["status"] == "verified"
    with app.app_context():
        avatar = db.session.get(Avatar, avatar_id)
        with grid["astronaut"].open("rb") as footage:
            upload, _ = studio.upload_training_video(avatar, footage, "a.mp4")
        upload.status = "valid"
        for wav, text in grid["takes"][:2]:
            with wav.open("rb") as take:
                blob_id = studio.store(avatar.subject_id, take)[0]
            db.session.add(
                Upload(
                    owner_id=avatar.owner_id,
                    subject_id=avatar.subject_id,
                    avatar_id=avatar.id,
                    kind="voice_sample",
                    text=text,
                    status="valid",
                    filename=wav.name,
                    size=1,
                    sha256="-",
                    blob_id=blob_id,
                )
            )
        db.session.commit()
    app.config["VOICE_MIN_SAMPLES"] = 2
    with app.app_context():
        avatar = db.session.get(Avatar, avatar_id)
        with pytest.raises(studio.Forbidden) as refused:
            studio.start_training(avatar, waive_payment=True, enqueue=False)
    assert refused.value.code == "face_mismatch_training"
