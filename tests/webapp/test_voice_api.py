"""Voice prompts and samples over the API and the recording page: real takes (slt)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from compliance.media import write_wav
from webapp.extensions import db
from webapp.models import Upload

from .. import factories
from ..conftest import SHARED_DATA, TEST_PASSWORD

SLT = SHARED_DATA / "voice_slt" / "train"


@pytest.fixture
def take() -> Path:
    wav = SLT / "arctic_a0001.wav"
    if not wav.exists():
        pytest.skip(f"shared data missing: {wav}")
    return wav


def _form(path: Path, **fields: str) -> dict[str, object]:
    items: list[tuple[str, object]] = [
        ("audio", FileStorage(io.BytesIO(path.read_bytes()), path.name))
    ]
    items += list(fields.items())
    boundary, body = encode_multipart(MultiDict(items))
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


def _owner(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        user = factories.user()
        return factories.token_for(user), factories.avatar(user).id


def test_prompts_list_needs_a_token_and_has_100_sentences(client):  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/voice-prompts").status_code == 401
    headers = factories.api_signup(client, "ada@example.com")
    prompts = client.get("/api/v1/voice-prompts", headers=headers).json["prompts"]
    assert len(prompts) == 100
    assert {"id", "text"} <= set(prompts[0])


def test_a_good_take_is_stored_encrypted_and_a_redo_replaces_it(app, client, take):  # type: ignore[no-untyped-def]
    headers, avatar_id = _owner(app)
    url = f"/api/v1/avatars/{avatar_id}/voice-samples"
    res = client.post(url, headers=headers, **_form(take, prompt_id="arctic_a0001"))
    assert res.status_code == 201, res.json
    assert res.json == {"count": 1, "remaining": 99}
    text = (SLT / "arctic_a0001.txt").read_text().strip()
    res = client.post(url, headers=headers, **_form(take, text=text))  # the same sentence again
    assert res.json == {"count": 1, "remaining": 99}
    with app.app_context():
        upload = db.session.query(Upload).one()
        assert (upload.kind, upload.text, upload.status) == ("voice_sample", text, "valid")
        assert upload.info["wer"] <= 0.6
        from webapp.storage import vault

        assert vault().read(upload.subject_id, upload.blob_id) == take.read_bytes()


def test_bad_takes_are_refused_with_their_reason(app, client, take, tmp_path):  # type: ignore[no-untyped-def]
    headers, avatar_id = _owner(app)
    url = f"/api/v1/avatars/{avatar_id}/voice-samples"
    silent = tmp_path / "silent.wav"
    write_wav(silent, np.zeros(16000 * 3, np.float32), 16000)
    res = client.post(url, headers=headers, **_form(silent, prompt_id="arctic_a0001"))
    assert res.status_code == 422
    assert res.json["error"] == "no_speech"
    assert res.json["message"].startswith("We could not hear any speech.")
    res = client.post(url, headers=headers, **_form(take, prompt_id="arctic_a0005"))
    assert (res.status_code, res.json["error"]) == (422, "wrong_words")
    res = client.post(url, headers=headers, **_form(take, prompt_id="nope"))
    assert (res.status_code, res.json["error"]) == (422, "unknown_prompt")
    with app.app_context():
        assert db.session.query(Upload).count() == 0


def test_the_recording_page_shows_one_sentence_and_the_count(app, client, take):  # type: ignore[no-untyped-def]
    with app.app_context():
        user = factories.user()
        email, avatar_id = user.email, factories.avatar(user).id
    assert (
        client.post("/login", data={"email": email, "password": TEST_PASSWORD}).status_code == 302
    )
    page = client.get(f"/avatars/{avatar_id}/voice")
    assert page.status_code == 200
    assert "0 / 100" in page.get_data(as_text=True)
    res = client.post(
        f"/avatars/{avatar_id}/voice/samples", **_form(take, prompt_id="arctic_a0001")
    )
    assert res.json == {"count": 1, "remaining": 99}
    assert "1 / 100" in client.get(f"/avatars/{avatar_id}/voice").get_data(as_text=True)
    res = client.post(
        f"/avatars/{avatar_id}/voice/samples", **_form(take, prompt_id="arctic_a0005")
    )
    assert (res.status_code, res.json["error"]) == (422, "wrong_words")
