"""The app's handle on the encrypted vault (compliance.vault) and its uploads."""

from __future__ import annotations

import hashlib
from typing import IO, TYPE_CHECKING

from flask import current_app

from compliance.vault import Vault, parse_master_keys

if TYPE_CHECKING:
    from .models import Upload


def vault() -> Vault:
    ext = current_app.extensions
    if "dhf_vault" not in ext:
        ext["dhf_vault"] = Vault(
            current_app.config["STORAGE_DIR"], parse_master_keys(current_app.config["MASTER_KEYS"])
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
