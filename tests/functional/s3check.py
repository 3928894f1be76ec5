"""What the S3 operator sees of a test's key prefix on SeaweedFS, and the checks the
functional tests make on it: only ciphertext, every object named by a row of the
database, each object's bytes matching our hash in its metadata, no upload left open."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import inspect

from webapp.extensions import db
from webapp.models import Avatar

# plaintext signatures no object may contain: MP4 brands, a WAV header, a tar header
MAGIC = (b"ftypisom", b"ftypmp42", b"ftypMSNV", b"WAVEfmt ", b"ustar\x00", b"ustar  \x00")


def prefix_of(s3_config: dict[str, str]) -> str:
    """The key prefix (ending in "/") of an ``s3_config`` fixture's ``STORAGE_URL``."""
    return s3_config["STORAGE_URL"].split("/", 3)[3] + "/"


def objects(seaweed, prefix: str) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """Every object under ``prefix`` (key without the prefix -> its bytes)."""
    client = seaweed.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=seaweed.bucket, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {
        k[len(prefix) :]: client.get_object(Bucket=seaweed.bucket, Key=k)["Body"].read()
        for k in keys
    }


def open_uploads(seaweed, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Keys of multipart uploads under ``prefix`` that were neither completed nor aborted."""
    listed = seaweed.client().list_multipart_uploads(Bucket=seaweed.bucket, Prefix=prefix)
    return [u["Key"] for u in listed.get("Uploads", [])]


def assert_ciphertext_only(stored: dict[str, bytes], plaintexts: Iterable[bytes]) -> None:
    """No object holds a plaintext file header, nor any 64-byte window of ``plaintexts``."""
    windows = {p[i : i + 64] for p in plaintexts for i in range(0, len(p) - 64, 8192)}
    for key, data in stored.items():
        assert not any(m in data for m in MAGIC), key
        assert not any(w in data for w in windows), key


def assert_hashes_match(seaweed, prefix: str, stored: dict[str, bytes]) -> None:  # type: ignore[no-untyped-def]
    """Every object is whole: its bytes hash to the SHA-256 we put in its metadata."""
    client = seaweed.client()
    for key, data in stored.items():
        head = client.head_object(Bucket=seaweed.bucket, Key=prefix + key)
        assert head["Metadata"].get("sha256") == hashlib.sha256(data).hexdigest(), key


def referenced_blobs() -> set[str]:
    """Blob ids the database names: every ``*blob_id`` column of every table, and the
    quality plots and voice samples a trained avatar lists in its report."""
    found: set[str] = set()
    for mapper in db.Model.registry.mappers:
        names = [c.key for c in inspect(mapper.class_).columns if c.key.endswith("blob_id")]
        for name in names:
            column = getattr(mapper.class_, name)
            found |= {v for (v,) in db.session.query(column).filter(column.isnot(None))}
    for (quality,) in db.session.query(Avatar.quality).filter(Avatar.quality.isnot(None)):
        found |= set((quality.get("plot_blobs") or {}).values())
        found |= set((quality.get("sample_blobs") or {}).values())
    return found


def files_in(folder: Path) -> list[str]:
    """Files left anywhere under ``folder`` (relative paths), for "nothing stays here"."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
