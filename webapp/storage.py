"""The app's handle on the encrypted vault (compliance.vault), its object store and uploads.

The store is chosen by configuration: ``DHF_STORAGE_URL=s3://bucket/prefix`` (with
``DHF_S3_*``) puts the ciphertext on an S3 server; unset, it stays in ``DHF_STORAGE_DIR``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, BinaryIO

from flask import current_app

from compliance.blobstore import BlobStore, LocalStore
from compliance.vault import Vault, parse_master_keys


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

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.sha256.update(data)
        return data


def store(subject_id: str, stream: BinaryIO) -> tuple[str, int, str]:
    """Encrypt ``stream`` under the subject's key; returns ``(blob_id, size, sha256)``."""
    reader = _HashingReader(stream)
    blob_id, size = vault().put(subject_id, reader)  # type: ignore[arg-type]
    return blob_id, size, reader.sha256.hexdigest()
