"""``dhf doctor``: check that every part of a deployment really works, not just imports."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app

from compliance import media, provenance
from compliance.keys import SigningKeys, check_keys
from pipeline import asr, bundled
from webapp.queue import connect

from . import migrate


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 3)}


def _database() -> str:
    current, head = migrate.state()
    if current != head:
        raise RuntimeError(f"schema at {current}, code at {head}: run 'dhf db upgrade'")
    return f"migrated to {head}"


def _redis() -> str:
    client = connect(current_app.config["REDIS_URL"])
    key, value = f"dhf:doctor:{uuid.uuid4().hex}", uuid.uuid4().hex
    client.set(key, value, ex=30)
    got = client.get(key)
    client.delete(key)
    if got != value.encode():
        raise RuntimeError("value read back differs from value written")
    # redis-py types every reply of its sync client as the async union Awaitable | Any
    server = client.info("server")
    return f"round trip ok (redis {server['redis_version']})"  # type: ignore[index]


def _storage() -> str:
    """Write, read back, hash-check and delete one object in the configured store."""
    import contextlib
    import hashlib
    import os

    from .storage import make_store

    store = make_store(current_app.config)
    data, key = os.urandom(64 * 1024), f"doctor/{uuid.uuid4().hex}"
    info = store.put(key, [data])
    try:
        with contextlib.closing(store.get(key)) as fh:
            back = fh.read()
        stat = store.stat(key)
    finally:
        store.delete(key)
    if back != data or info.sha256 != hashlib.sha256(data).hexdigest():
        raise RuntimeError(f"object read back from {store.describe()} differs from the one written")
    if stat is None or stat.sha256 != info.sha256:
        raise RuntimeError(f"{store.describe()} did not keep the object's SHA-256")
    if store.exists(key):
        raise RuntimeError(f"{store.describe()} still has the object after deleting it")
    versioning = getattr(store, "versioning", lambda: "Off")()
    if versioning != "Off":
        raise RuntimeError(
            f"bucket versioning is {versioning}: deleted files would survive as old versions "
            "(retention, R24); use a bucket that never had versioning"
        )
    return f"round trip ok ({store.describe()})"


def _signing_keys() -> str:
    keys = SigningKeys(Path(current_app.config["SIGNING_DIR"]))
    problems = check_keys(keys)
    if problems:
        raise RuntimeError("; ".join(problems))
    return f"signer chain in {keys.directory} is valid"


def _c2pa() -> str:
    return provenance.selftest(SigningKeys(Path(current_app.config["SIGNING_DIR"])))


def _speech() -> str:
    return "; ".join(bundled.selftest_speech())


def _whisper() -> str:
    return asr.selftest()


def _opengl() -> str:
    from pipeline.face3d.backend import selftest

    return selftest()


CHECKS: dict[str, Callable[[], str]] = {
    "database": _database,
    "redis": _redis,
    "storage": _storage,
    "ffmpeg": media.selftest,
    "signing_keys": _signing_keys,
    "c2pa": _c2pa,
    "mediapipe_face_mesh": bundled.selftest_face_mesh,
    "piper_voice+pocketsphinx": _speech,
    "piper_voice+whisper": _whisper,
    "resemblyzer": bundled.selftest_voice_encoder,
    "dlib_face_model": bundled.selftest_dlib,
    "imwatermark_rivagan": bundled.selftest_rivagan,
    "opengl_egl": _opengl,
}


def run_checks(names: list[str] | None = None) -> list[Check]:
    results = []
    for name, check in CHECKS.items():
        if names and name not in names:
            continue
        start = time.perf_counter()
        try:
            detail, ok = check(), True
        except Exception as exc:  # report every failure, keep checking the rest
            detail, ok = f"{type(exc).__name__}: {exc}", False
        results.append(Check(name, ok, detail, time.perf_counter() - start))
    return results
