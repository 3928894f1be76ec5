"""Where the vault's ciphertext lives: a small object-store interface and local files.

A :class:`BlobStore` holds opaque byte objects under ``/``-separated keys. It never sees
plaintext: the vault encrypts before ``put`` and decrypts after ``get``. Two
implementations, chosen by configuration: :class:`LocalStore` (files under a folder, the
embedded default) and :class:`compliance.s3store.S3Store` (any S3 server).

Every store keeps the SHA-256 of each object's bytes (S3: in the object's metadata;
local files: computed from the file), so a copy between stores can be verified object by
object. ``put`` is atomic: an object is either complete under its key or absent.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


class BlobStoreError(Exception):
    """The store could not do what was asked; the message says what to check."""


class BlobNotFound(BlobStoreError):
    """No object under that key."""


class BlobExists(BlobStoreError):
    """``put(..., if_absent=True)`` found an object already under that key."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # the object's key inside the store
    size: int  # bytes stored
    sha256: str  # hex SHA-256 of the stored bytes


class BlobStore(Protocol):
    def put(self, key: str, chunks: Iterable[bytes], *, if_absent: bool = False) -> ObjectInfo:
        """Store the bytes of ``chunks`` under ``key``, all or nothing; return what was stored.

        ``if_absent``: raise :class:`BlobExists` instead of replacing an existing object.
        """
        ...

    def get(self, key: str) -> BinaryIO:
        """A readable stream of the object (close it after use); :class:`BlobNotFound`."""
        ...

    def stat(self, key: str) -> ObjectInfo | None:
        """Size and SHA-256 of the object, or None when there is none."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str, *, shred: bool = False) -> bool:
        """Remove the object (``shred``: overwrite it first where the medium allows, and
        leave no older version behind); False when there was none."""
        ...

    def delete_prefix(self, prefix: str) -> tuple[int, int]:
        """Remove every object whose key starts with ``prefix``; ``(objects, bytes)``."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, sorted by key (``sha256`` may be read lazily)."""
        ...

    def abort_stale_uploads(self, older_than_s: float) -> int:
        """Clear what interrupted uploads left (S3 multipart uploads, local temp files)
        started over ``older_than_s`` ago; returns how many."""
        ...

    def describe(self) -> str:
        """Where the objects are, for logs and ``dhf doctor`` (never a secret)."""
        ...


def sha256_of(stream: BinaryIO, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    while data := stream.read(block):
        digest.update(data)
    return digest.hexdigest()


def check_key(key: str) -> str:
    """Keys are relative, ``/``-separated, of letters, digits and ``-_.``; no ``..``."""
    parts = key.split("/")
    if not key or any(
        not p or p in (".", "..") or not all(c.isalnum() or c in "-_." for c in p) for p in parts
    ):
        raise ValueError(f"unsafe storage key {key!r}")
    return key


class LocalStore:
    """Objects as files under ``root`` (key ``a/b`` is the file ``root/a/b``)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, chunks: Iterable[bytes], *, if_absent: bool = False) -> ObjectInfo:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if if_absent:
                try:
                    os.link(tmp, path)  # atomic create-if-absent
                except FileExistsError:
                    raise BlobExists(f"an object already exists under {key}") from None
                os.unlink(tmp)
            else:
                os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ObjectInfo(key, size, digest.hexdigest())

    def get(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"no stored object {key}") from None

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        with open(path, "rb") as fh:
            return ObjectInfo(key, path.stat().st_size, sha256_of(fh))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str, *, shred: bool = False) -> bool:
        path = self._path(key)
        if not path.is_file():
            return False
        if shred:
            with open(path, "r+b") as fh:
                fh.write(secrets.token_bytes(path.stat().st_size))
                fh.flush()
                os.fsync(fh.fileno())
        path.unlink(missing_ok=True)
        return True

    def delete_prefix(self, prefix: str) -> tuple[int, int]:
        count = size = 0
        for path in self._files(prefix):
            size += path.stat().st_size
            path.unlink()
            count += 1
        folder = self.root / prefix.rstrip("/")
        if prefix.endswith("/") and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        return count, size

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for path in self._files(prefix):
            key = path.relative_to(self.root).as_posix()
            with open(path, "rb") as fh:
                yield ObjectInfo(key, path.stat().st_size, sha256_of(fh))

    def _files(self, prefix: str) -> Sequence[Path]:
        if not self.root.is_dir():
            return []
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return []
        return sorted(
            path
            for path in base.rglob("*")
            if path.is_file()
            and not path.name.startswith(".tmp-")
            and path.relative_to(self.root).as_posix().startswith(prefix)
        )

    def abort_stale_uploads(self, older_than_s: float) -> int:
        cutoff, count = time.time() - older_than_s, 0
        for path in self.root.rglob(".tmp-*") if self.root.is_dir() else []:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                count += 1
        return count

    def describe(self) -> str:
        return f"local folder {self.root}"
