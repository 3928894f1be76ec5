"""Hear it before you use it: the avatar's quality report plays three held-back sentences
(the person's take, the clone, the base voice), stamped and encrypted, to the owner only."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import wave
from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import AvatarStatus, ContentRecord

from .. import factories
from ..conftest import TEST_PASSWORD

pytestmark = pytest.mark.slow
FACE_REPORT = {  # the face half of a report: only what the summary reads
    "frames": 75,
    "train_seconds": 1.0,
    "model": {"opening_corr": 0.5},
    "untrained": {"opening_corr": 0.1},
}


def _login(client, email: str) -> None:  # type: ignore[no-untyped-def]
    res = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert res.status_code == 302


def _seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


def test_the_report_plays_take_clone_and_base_to_the_owner_only(  # type: ignore[no-untyped-def]
    app, client, tiny_voice, tmp_path: Path
) -> None:
    from compliance.verification import watermark
    from webapp import registry
    from webapp.storage import vault
    from webapp.studio.tasks import _pack, _quality

    checkpoint, report = tiny_voice
    work = tmp_path / "work"
    shutil.copytree(checkpoint.parent, work / "voice")
    (work / "face" / "model").mkdir(parents=True)
    (work / "face" / "model" / "report.json").write_text(json.dumps(FACE_REPORT))
    with app.app_context():
        owner, other = factories.user(), factories.user()
        avatar = factories.avatar(owner)
        avatar.quality, avatar.status = _quality(work, avatar), AvatarStatus.READY
        db.session.commit()
        avatar_id, emails = avatar.id, (owner.email, other.email)
        packed = vault().read(avatar.subject_id, _pack(work, avatar.subject_id))
        records = db.session.scalars(select(ContentRecord)).all()
        settings = registry.compliance_settings()
    with tarfile.open(fileobj=io.BytesIO(packed)) as tar:  # the model does not carry them
        assert "voice/voice.pt" in tar.getnames()
        assert not [n for n in tar.getnames() if "samples" in n]
    assert {r.avatar_id for r in records} == {avatar_id} and len(records) == 6  # 3 x 2 synthetic

    _login(client, emails[0])
    html = client.get(f"/studio/avatars/{avatar_id}").get_data(as_text=True)
    assert "voice similarity gain" in html and "Whisper WER: own take / clone" in html
    rows = re.findall(r'<tr data-sample="(\d)">(.*?)</tr>', html, re.S)
    assert [r[0] for r in rows] == ["0", "1", "2"]
    for (_, row), sample in zip(rows, report["samples"], strict=True):
        assert str(escape(sample["sentence"])) in row and "WER" in row and "similarity" in row
    urls = re.findall(r'<audio controls preload="none" src="([^"]+)"', html)
    assert len(urls) == 9 and all(f"/studio/avatars/{avatar_id}/samples/" in u for u in urls)
    served = {}
    for url in urls:
        res = client.get(url)
        assert res.status_code == 200 and res.mimetype == "audio/wav", url
        assert res.data[:4] == b"RIFF" and "private" in res.headers["Cache-Control"]
        served[url.rsplit("/", 1)[1]] = res.data
    # the clone and the base voice open with the spoken AI notice and carry a registered mark
    raw = checkpoint.parent / "samples"
    for name in ("0-clone.wav", "0-base.wav"):
        assert _seconds(served[name]) > _seconds((raw / name).read_bytes()) + 1.0
    found = watermark_of(served["0-clone.wav"], tmp_path, settings, watermark)
    assert found in {r.watermark_id for r in records}
    assert _seconds(served["0-real.wav"]) == pytest.approx(
        _seconds((raw / "0-real.wav").read_bytes())
    )  # the person's own take: not stamped

    stranger = client.application.test_client()
    _login(stranger, emails[1])
    for url in (*urls[:3], f"/studio/avatars/{avatar_id}"):
        assert stranger.get(url).status_code == 404
    assert client.get(f"/studio/avatars/{avatar_id}/samples/9-clone.wav").status_code == 404


def watermark_of(data: bytes, tmp_path: Path, settings, watermark) -> str | None:  # type: ignore[no-untyped-def]
    path = tmp_path / "heard.wav"
    path.write_bytes(data)
    result = watermark(path, settings)
    assert result.found, result
    return result.watermark_id  # type: ignore[no-any-return]
