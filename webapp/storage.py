"""The app's handle on the encrypted vault (compliance.vault), its object store and uploads.

The store is chosen by configuration: ``DHF_STORAGE_URL=s3://bucket/prefix`` (with
``DHF_S3_*``) puts the ciphertext on an S3 server; unset, it stays in ``DHF_STORAGE_DIR``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from flask import current_app

from compliance.blobstore import BlobStore, LocalStore, sha256_of
from compliance.vault import Vault, parse_master_keys

if TYPE_CHECKING:
    from .models import Upload


def make_store(config: Mapping[str, Any]) -> BlobStore:
    """The object store a configuration names (S3 when ``STORAGE_URL`` is set)."""
    url = config.get("STORAGE_URL")
    if not url:
        return LocalStore(config["STORAGE_DIR"])
    from compliance.s3store import S3Settings, S3Store

    settings = S3Settings.from_url(
        url,
        endpoint=config.get("S3_ENDPOINT") or None,
        region=config.get("S3_REGION") or "us-east-1",
        access_key=config.get("S3_ACCESS_KEY") or None,
        secret_key=config.get("S3_SECRET_KEY") or None,
    )
    return S3Store(settings)


def vault() -> Vault:
    ext = current_app.extensions
    if "dhf_vault" not in ext:
        ext["dhf_vault"] = Vault(
            make_store(current_app.config), parse_master_keys(current_app.config["MASTER_KEYS"])
        )
    return ext["dhf_vault"]


class _HashingReader:
    """Wraps a stream and hashes what is read through it."""

    def __init__(self, stream: IO[bytes]):
        self._stream = stream
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.sha256.update(data)
        return data


def store(subject_id: str, stream: IO[bytes]) -> tuple[str, int, str]:
    """Encrypt ``stream`` under the subject's key; returns ``(blob_id, size, sha256)``."""
    reader = _HashingReader(stream)
    blob_id, size = vault().put(subject_id, reader)  # type: ignore[arg-type]
    return blob_id, size, reader.sha256.hexdigest()


def subject_key(upload: Upload) -> str:
    """The subject whose key encrypts ``upload``: footage, consent recordings and voice
    samples have one (KYC images are under their check's ``key_owner`` instead)."""
    if upload.subject_id is None:
        raise ValueError(f"Upload {upload.id} belongs to no subject.")
    return upload.subject_id


@dataclass
class MigrationReport:
    """What ``migrate`` did: every object copied or found already there, then verified."""

    source: str
    target: str
    copied: int = 0  # objects uploaded by this run
    present: int = 0  # objects the target already had with the same SHA-256
    bytes: int = 0  # bytes of every object verified
    mismatched: list[str] = field(default_factory=list)  # keys whose copy did not verify

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": not self.mismatched,
            "source": self.source,
            "target": self.target,
            "copied": self.copied,
            "present": self.present,
            "verified": self.copied + self.present - len(self.mismatched),
            "bytes": self.bytes,
            "mismatched": self.mismatched,
        }


def _chunks(stream: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    while data := stream.read(size):
        yield data


def migrate(source: BlobStore, target: BlobStore) -> MigrationReport:
    """Copy every object of ``source`` to ``target``, then verify each copy by reading it
    back and hashing it. Safe to run again: objects already there are verified, not sent."""
    report = MigrationReport(source.describe(), target.describe())
    for info in source.list(""):
        there = target.stat(info.key)
        if there is not None and there.sha256 == info.sha256:
            report.present += 1
        else:
            with contextlib.closing(source.get(info.key)) as fh:
                target.put(info.key, _chunks(fh))
            report.copied += 1
        with contextlib.closing(target.get(info.key)) as fh:
            if sha256_of(fh) != info.sha256:
                report.mismatched.append(info.key)
        report.bytes += info.size
    return report
