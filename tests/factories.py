"""Factories for test data, going through the same services as the product."""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Iterator
from pathlib import Path

from flask.testing import FlaskClient

from webapp import accounts
from webapp.extensions import db
from webapp.models import Avatar, Subject, User

from .conftest import TEST_PASSWORD

# the object-store settings a worker process gets from the app it serves (S3 when set)
STORAGE_SETTINGS = ("STORAGE_URL", "S3_ENDPOINT", "S3_REGION", "S3_ACCESS_KEY", "S3_SECRET_KEY")

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
            [
                (field, FileStorage(io.BytesIO(fh.read()), filename or Path(path).name)),
                *fields.items(),
            ]
        )
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


# A seeded challenge: what the tests fix instead of the server's random cue times.
FIXED_PASSCODE = "4719"


def fixed_challenge():  # type: ignore[no-untyped-def]
    from compliance.consent import SAY_DIGIT, TURN_LEFT, Challenge, Cue

    return Challenge(
        (
            Cue(SAY_DIGIT, 2.0),
            Cue(SAY_DIGIT, 4.8),
            Cue(TURN_LEFT, 7.6),
            Cue(SAY_DIGIT, 10.4),
            Cue(SAY_DIGIT, 13.2),
        )
    )


def fix_challenge(monkeypatch, challenge=None, passcode: str = FIXED_PASSCODE) -> None:  # type: ignore[no-untyped-def]
    """Make the consent service issue a known passcode and cue times."""
    from webapp.consent import service

    monkeypatch.setattr(service, "new_passcode", lambda: passcode)
    monkeypatch.setattr(service, "new_challenge", lambda: challenge or fixed_challenge())


TURN_DEGREES = 30.0  # the SYNTHETIC head turn of tests/headturn.py (positive: person's left)


def _turns(
    cues: list[dict[str, object]], delay: float, shift: float
) -> list[tuple[float, float, float]]:
    sides = {"turn_left": TURN_DEGREES, "turn_right": -TURN_DEGREES}
    return [
        (
            float(c["at_s"]) + delay + shift,
            float(c["at_s"]) + delay + shift + 2.0,
            sides[str(c["cue"])],
        )
        for c in cues
        if c["cue"] in sides
    ]


def consent_recording(
    face_video,
    tmp_path,
    attempt: dict[str, object],
    *,
    still: bool = False,  # type: ignore[no-untyped-def]
    turn: bool = True,
    shift: float = 0.0,
    delay: float = 0.4,
):
    """A recording that follows ``attempt`` (GET /api/v1/consent/<token>): the GRID
    speaker's face, its head turned at the turn cue (SYNTHETIC: tests/headturn.py warps
    the real frames), and the shipped voice saying each digit ``delay`` s after its cue,
    then the statement. ``shift`` moves every action later (a recording made for other cue
    times); ``still`` freezes the first frame; ``turn=False`` leaves the head still."""
    import numpy as np

    from compliance import media
    from compliance.consent import DIGITS
    from pipeline import bundled

    from .headturn import head_turn_clip

    cues = list(attempt["challenge"])  # type: ignore[call-overload]
    track, rate = np.zeros(0, np.float32), 22050

    def place(text: str, at: float) -> None:
        nonlocal track
        audio, _ = bundled.piper_say(text, deterministic=True)
        start = int(at * rate)
        end = start + len(audio)
        track = np.pad(track, (0, max(0, end - len(track))))
        track[start:end] += audio.astype(np.float32) / 32768

    for cue in cues:
        if cue["cue"] == "say_digit":
            place(DIGITS[int(cue["digit"])], float(cue["at_s"]) + delay + shift)
    place(str(attempt["statement"]), float(cues[-1]["at_s"]) + 2.5 + shift)
    track = np.pad(track, (0, rate // 2))
    wav, out = tmp_path / "statement.wav", tmp_path / "consent.mp4"
    media.write_wav(wav, track, rate)
    face = face_video
    if still:
        media.ffmpeg(["-i", str(face_video), "-frames:v", "1", str(tmp_path / "still.png")])
    elif turn:
        face = tmp_path / "turned.mp4"
        head_turn_clip(face_video, face, _turns(cues, delay + 0.1, shift))
    video = ["-loop", "1", "-i", str(tmp_path / "still.png")] if still else ["-i", str(face)]
    media.ffmpeg(
        [
            *video,
            "-i",
            str(wav),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-shortest",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            str(out),
        ]
    )
    return out


GRID_PASSCODE = "4709"  # digits the GRID held-out sentences say (none says "one")


def grid_consent(grid: Path, tmp_path: Path, passcode: str = GRID_PASSCODE):  # type: ignore[no-untyped-def]
    """A genuine consent of the GRID speaker, and the seeded challenge it follows.

    Five whole held-out sentences are joined: four whose spoken digit (every GRID sentence
    has one) spells ``passcode``, and one in the middle during which the head turns
    (SYNTHETIC warp of the real frames, tests/headturn.py). The challenge's cues are put
    0.6 s before each digit as the corpus alignment places it, as if the speaker reacted to
    them; the speaker cannot read our statement (tests waive it: CONSENT_STATEMENT_WORDS=0).
    """
    from compliance import media
    from compliance.consent import DIGITS, SAY_DIGIT, TURN_LEFT, Challenge, Cue

    from .headturn import head_turn_clip

    def digit_of(clip: Path) -> tuple[str, float]:
        words = [w.split() for w in clip.with_suffix(".align").read_text().splitlines()]
        start, _, word = [w for w in words if w[2] != "sil"][4]
        return str(DIGITS.index(word)), int(start) / 25000

    clips = sorted(grid.glob("*.mpg"))
    by_digit = {}
    for clip in clips:
        by_digit.setdefault(digit_of(clip)[0], clip)
    chosen = [by_digit[d] for d in passcode]
    middle = next(c for c in clips if c not in chosen)
    order = [*chosen[:2], middle, *chosen[2:]]
    cues, offset = [], 0.0
    for clip in order:
        if clip is middle:
            cues.append(Cue(TURN_LEFT, round(offset + 0.4, 2)))
        else:
            cues.append(Cue(SAY_DIGIT, round(offset + digit_of(clip)[1] - 0.6, 2)))
        offset += media.probe(clip).duration_s
    joined, out = tmp_path / "grid-joined.mp4", tmp_path / "grid-consent.mp4"
    media.concat(order, joined)
    turn_at = cues[2].at_s + 0.5
    head_turn_clip(joined, out, [(turn_at, turn_at + 2.0, TURN_DEGREES)])
    return out, Challenge(tuple(cues))


def trainable_avatar(owner: User, tmp_path: Path, clips: list[Path], footage: bool = True):  # type: ignore[no-untyped-def]
    """A consented subject and an avatar with valid voice takes (``clips``' audio and
    transcripts) and, with ``footage``, valid training footage (the clips joined), stored
    through the vault; plus a paid training order. Returns ``(subject, avatar, footage)``,
    footage being the joined clip's path. Needs an app context."""
    from compliance import media
    from webapp.models import Order, Upload
    from webapp.storage import store

    subj, _ = consented_subject(owner)
    av = avatar(owner, subj)
    joined = tmp_path / "footage.mp4"
    media.concat(clips, joined)
    sources = [(joined, "training_video", None)] if footage else []
    for clip in clips:
        wav = tmp_path / f"{clip.stem}.wav"
        media.write_wav(wav, media.audio(clip, 16000), 16000)
        sources.append((wav, "voice_sample", clip.with_suffix(".txt").read_text().strip()))
    for path, kind, text in sources:
        blob, size, sha = store(subj.id, io.BytesIO(path.read_bytes()))
        db.session.add(
            Upload(
                owner_id=owner.id,
                subject_id=subj.id,
                avatar_id=av.id,
                kind=kind,
                blob_id=blob,
                filename=path.name,
                size=size,
                sha256=sha,
                status="valid",
                text=text,
            )
        )
    db.session.add(
        Order(
            owner_id=owner.id,
            item="avatar_training",
            avatar_id=av.id,
            status="paid",
            amount_cents=13000,
        )
    )
    db.session.commit()
    return subj, av, joined


def worker_process(  # type: ignore[no-untyped-def]
    app, queues: str = "gpu", *, instance: Path | None = None, burst: bool = False, **config: str
):
    """A real ``dhf worker`` process for ``app``'s database, Redis and storage, configured
    only by the environment (``config`` adds DHF_* settings); the caller stops it (or
    waits for it, with ``burst``).

    With ``instance`` the worker shares no folder with the app: that is its instance
    folder (its work folder is the default ``<instance>/work``), and the app's storage,
    work and signing folders are not passed (give ``SIGNING_DIR`` in ``config``)."""
    import subprocess
    import sys

    from .conftest import REPO

    return subprocess.Popen(
        [sys.executable, "-m", "webapp.cli", "worker", "--queues", queues]
        + (["--burst"] if burst else []),
        env=dhf_env(app, instance, **config),
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.PIPE if burst else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if burst else subprocess.DEVNULL,
        text=True,
    )


def dhf_env(app, instance: Path | None = None, **config: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The environment of a ``dhf`` process (worker or web) for ``app``'s database, Redis
    and storage: see ``worker_process`` for ``instance`` and ``config``."""
    import os

    cfg = app.config
    folders = (
        {"DHF_INSTANCE_DIR": str(instance)}
        if instance is not None
        else {
            "DHF_STORAGE_DIR": cfg["STORAGE_DIR"],
            "DHF_WORK_DIR": cfg["WORK_DIR"],
            "DHF_SIGNING_DIR": cfg["SIGNING_DIR"],
        }
    )
    return dict(
        os.environ,
        DATABASE_URL=cfg["DATABASE_URL"],
        REDIS_URL=cfg["REDIS_URL"],
        DHF_SECRET_KEY=cfg["SECRET_KEY"],
        DHF_MASTER_KEYS=cfg["MASTER_KEYS"],
        DHF_WATERMARK_KEYS=cfg["WATERMARK_KEYS"],
        **{f"DHF_{k}": cfg[k] for k in STORAGE_SETTINGS if cfg.get(k)},
        **folders,
        **{f"DHF_{k}": v for k, v in config.items()},
    )


@contextlib.contextmanager
def waitress(app) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """``app`` served by ``dhf serve``'s waitress server in a thread; yields its port."""
    import threading

    from webapp.cli.serve import _web_server

    server = _web_server(app, "127.0.0.1", 0, 2)
    stopped = threading.Event()

    def run() -> None:
        try:
            server.run()
        except (OSError, ValueError):  # the loop notices the socket closed under it
            assert stopped.is_set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        stopped.set()
        server.close()
