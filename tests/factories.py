"""Factories for test data, going through the same services as the product."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

from flask.testing import FlaskClient

from webapp import accounts
from webapp.extensions import db
from webapp.models import Avatar, Subject, User

from .conftest import TEST_PASSWORD

_seq = itertools.count(1)


def user(email: str | None = None, password: str = TEST_PASSWORD) -> User:
    return accounts.signup(email or f"user{next(_seq)}@example.com", password)


def token_for(u: User) -> dict[str, str]:
    token, _ = accounts.issue_token(u)
    return {"Authorization": f"Bearer {token}"}


def subject(owner: User, name: str = "Ada Example", relation: str = "self") -> Subject:
    s = Subject(owner_id=owner.id, display_name=name, relation=relation)
    db.session.add(s)
    db.session.commit()
    return s


def avatar(owner: User, subj: Subject | None = None, name: str = "Ada presenter") -> Avatar:
    a = Avatar(owner_id=owner.id, subject_id=(subj or subject(owner)).id, name=name)
    db.session.add(a)
    db.session.commit()
    return a


def api_signup(client: FlaskClient, email: str, password: str = TEST_PASSWORD) -> dict[str, str]:
    """Sign up and get a token over HTTP; returns the Authorization header."""
    assert (
        client.post("/api/v1/auth/signup", json={"email": email, "password": password}).status_code
        == 201
    )
    res = client.post("/api/v1/auth/tokens", json={"email": email, "password": password})
    assert res.status_code == 201, res.json
    return {"Authorization": f"Bearer {res.json['token']}"}


def multipart(field: str, path, filename: str | None = None, **fields: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Test-client kwargs for a file upload (plus plain ``fields``) encoded in memory.

    werkzeug's test client spools bodies over 500 KB to a temporary file that it leaves
    for the garbage collector (a ResourceWarning under -W error); this avoids it.
    """
    from werkzeug.datastructures import FileStorage, MultiDict
    from werkzeug.test import encode_multipart

    with open(path, "rb") as fh:
        files = MultiDict(
            [(field, FileStorage(io.BytesIO(fh.read()), filename or Path(path).name)),
             *fields.items()]
        )  # fmt: skip
    boundary, body = encode_multipart(files)
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


def consented_subject(owner: User, name: str = "Ada Example") -> tuple[Subject, str]:
    """A subject whose own consent is verified, for an owner whose KYC is verified.

    The checks that lead here are tested on real recordings in tests/webapp; this sets
    their outcome directly. Returns the subject and its consent link token.
    """
    from webapp import identity
    from webapp.consent import service
    from webapp.models import ConsentRecord

    identity.start(owner)
    subj, token = service.create_subject(owner, name, "self")
    record = db.session.query(ConsentRecord).filter_by(subject_id=subj.id).one()
    record.status, subj.status = "verified", "active"
    db.session.commit()
    return subj, token


def consent_recording(face_video, tmp_path, text: str, still: bool = False):  # type: ignore[no-untyped-def]
    """A consent statement video: the GRID speaker's face with ``text`` read aloud (by the
    shipped voice) as the sound track; ``still`` freezes the first frame (not live)."""
    import numpy as np

    from compliance import media
    from pipeline import bundled

    audio, rate = bundled.piper_say(text, deterministic=True)
    wav, out = tmp_path / "statement.wav", tmp_path / "consent.mp4"
    pause = np.zeros(rate // 2, np.float32)  # people pause before and after speaking
    media.write_wav(wav, np.concatenate([pause, audio.astype(np.float32) / 32768, pause]), rate)
    video = ["-loop", "1", "-i", str(tmp_path / "still.png")] if still else ["-i", str(face_video)]
    if still:
        media.ffmpeg(["-i", str(face_video), "-frames:v", "1", str(tmp_path / "still.png")])
    media.ffmpeg([*video, "-i", str(wav), "-map", "0:v", "-map", "1:a", "-shortest",
                  "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out)])  # fmt: skip
    return out


def worker_process(app, queues: str = "gpu", **config: str):  # type: ignore[no-untyped-def]
    """A real ``dhf worker`` process for ``app``'s database, Redis and storage, configured
    only by the environment (``config`` adds DHF_* settings); the caller stops it."""
    import os
    import subprocess
    import sys

    from .conftest import REPO

    cfg = app.config
    env = dict(os.environ, DATABASE_URL=cfg["DATABASE_URL"], REDIS_URL=cfg["REDIS_URL"],
               DHF_SECRET_KEY=cfg["SECRET_KEY"], DHF_MASTER_KEYS=cfg["MASTER_KEYS"],
               DHF_WATERMARK_KEYS=cfg["WATERMARK_KEYS"], DHF_STORAGE_DIR=cfg["STORAGE_DIR"],
               DHF_WORK_DIR=cfg["WORK_DIR"], DHF_SIGNING_DIR=cfg["SIGNING_DIR"],
               **{f"DHF_{k}": v for k, v in config.items()})  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "webapp.cli", "worker", "--queues", queues],
                            env=env, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
