"""Biometric uploads are encrypted at rest under the subject's key (R7, R5)."""

from __future__ import annotations

import pytest

from compliance.vault import KeyDestroyed
from webapp.extensions import db
from webapp.models import Upload
from webapp.storage import vault

from .. import factories


def test_uploaded_video_is_encrypted_and_shreddable(app, client, grid_clip):
    plaintext = grid_clip.read_bytes()
    with app.app_context():
        owner = factories.user()
        avatar = factories.avatar(owner)
        headers, avatar_id = factories.token_for(owner), avatar.id
    with grid_clip.open("rb") as fh:
        res = client.post(
            f"/api/v1/avatars/{avatar_id}/training-video",
            headers=headers,
            data={"video": (fh, "take1.mpg")},
        )
    assert res.status_code == 202, res.json
    with app.app_context():
        upload = db.session.get(Upload, res.json["upload_id"])
        with vault().store.get(f"blobs/{upload.subject_id}/{upload.blob_id}") as fh:
            stored = fh.read()
        # no 64-byte window of the clip appears in the file on disk
        windows = {plaintext[i : i + 64] for i in range(0, len(plaintext) - 64, 4096)}
        assert not any(w in stored for w in windows)
        assert upload.size == len(plaintext)
        assert vault().read(upload.subject_id, upload.blob_id) == plaintext

        vault().destroy_key(upload.subject_id)
        with pytest.raises(KeyDestroyed):
            vault().read(upload.subject_id, upload.blob_id)


def test_upload_without_file_says_what_to_do(app, client):
    with app.app_context():
        owner = factories.user()
        headers, avatar_id = factories.token_for(owner), factories.avatar(owner).id
    res = client.post(f"/api/v1/avatars/{avatar_id}/training-video", headers=headers)
    assert res.status_code == 422
    assert res.json == {
        "error": "missing_file",
        "message": "Attach the recording as multipart field 'video'.",
    }
