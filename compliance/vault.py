"""Encrypted-at-rest storage for biometric files (R7) with crypto-shredding (R5).

Envelope encryption: every subject has a random 256-bit data key; the data key is
stored only wrapped (AES-GCM) by a master key from configuration. Files are encrypted
in 1 MiB chunks with AES-256-GCM in the STREAM construction (nonce prefix + chunk
counter + last-chunk flag), so large videos stream through in constant memory and a
truncated, reordered or edited file fails to decrypt. Destroying a subject's data key
makes every file of that subject unreadable, wherever copies of the ciphertext live.

Master keys rotate: the vault holds a list of ``(key_id, key)``; the first wraps new
data keys, every one unwraps. ``rewrap()`` moves existing data keys to the newest.

Ciphertext and wrapped keys live in a :class:`compliance.blobstore.BlobStore` (local files
or S3): ``keys/<subject>.key``, ``keys/<subject>.destroyed`` (the tombstone) and
``blobs/<subject>/<blob id>``. The store never sees a plaintext byte or an unwrapped key.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import struct
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .blobstore import BlobExists, BlobNotFound, BlobStore, LocalStore

CHUNK = 1 << 20
_MAGIC = b"DHFV1\n"
_KEY_MAGIC = b"DHFK1\n"
_NONCE_PREFIX = 7  # bytes; + 4-byte counter + 1-byte last flag = 12-byte GCM nonce


class VaultError(Exception):
    """Any failure to decrypt or find protected data. Deliberately opaque."""


class KeyDestroyed(VaultError):
    """The subject's data key was destroyed: the data is gone for good."""


def parse_master_keys(spec: str) -> list[tuple[str, bytes]]:
    """Parse ``"kid1:base64key,kid2:base64key"`` (newest first) into key pairs."""
    keys = []
    for item in filter(None, (p.strip() for p in spec.split(","))):
        kid, _, b64 = item.partition(":")
        raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        if not kid or len(raw) != 32:
            raise ValueError("each master key must be 'KEY_ID:<32 bytes, urlsafe base64>'")
        keys.append((kid, raw))
    if not keys:
        raise ValueError("no master key configured: set DHF_MASTER_KEYS")
    return keys


def new_master_key(kid: str | None = None) -> str:
    """A fresh ``kid:base64`` master key entry for configuration."""
    kid = kid or f"mk{secrets.token_hex(4)}"
    return f"{kid}:{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip('=')}"


def _atomic_write(path: Path, chunks: Iterator[bytes]) -> int:
    """Write a local working file (an export) completely or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """``size`` bytes, fewer only at the end (network streams return short reads)."""
    parts, want = [], size
    while want:
        data = stream.read(want)
        if not data:
            break
        parts.append(data)
        want -= len(data)
    return b"".join(parts)


class Vault:
    """Per-subject encrypted objects in ``store`` (a folder path means local files there)."""

    def __init__(
        self, store: BlobStore | str | os.PathLike[str], master_keys: Sequence[tuple[str, bytes]]
    ):
        if not master_keys:
            raise ValueError("the vault needs at least one master key")
        self.store: BlobStore = LocalStore(store) if isinstance(store, str | os.PathLike) else store
        self._master = dict(master_keys)
        self._current = master_keys[0][0]

    # -- data keys -------------------------------------------------------------------
    @staticmethod
    def key_name(subject: str) -> str:
        return f"keys/{_safe(subject)}.key"

    @staticmethod
    def _tombstone(subject: str) -> str:
        """Left where a destroyed key was: a shredded subject never gets a new key."""
        return f"keys/{_safe(subject)}.destroyed"

    def _wrap(self, subject: str, data_key: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        kid = self._current.encode()
        wrapped = AESGCM(self._master[self._current]).encrypt(nonce, data_key, subject.encode())
        return _KEY_MAGIC + struct.pack(">B", len(kid)) + kid + nonce + wrapped

    def _unwrap(self, subject: str, blob: bytes) -> bytes:
        if not blob.startswith(_KEY_MAGIC):
            raise VaultError("key file is not a vault key")
        pos = len(_KEY_MAGIC)
        klen = blob[pos]
        kid = blob[pos + 1 : pos + 1 + klen].decode()
        nonce = blob[pos + 1 + klen : pos + 13 + klen]
        wrapped = blob[pos + 13 + klen :]
        if kid not in self._master:
            raise VaultError(f"data key wrapped by unknown master key {kid!r}")
        try:
            return AESGCM(self._master[kid]).decrypt(nonce, wrapped, subject.encode())
        except InvalidTag as exc:
            raise VaultError("cannot unwrap the data key") from exc

    def _read_key(self, subject: str) -> bytes | None:
        try:
            with contextlib.closing(self.store.get(self.key_name(subject))) as fh:
                return fh.read()
        except BlobNotFound:
            return None

    def _data_key(self, subject: str, create: bool = False) -> bytes:
        wrapped = self._read_key(subject)
        if wrapped is not None:
            return self._unwrap(subject, wrapped)
        if not create or self.store.exists(self._tombstone(subject)):
            raise KeyDestroyed(f"no data key for subject {subject}: it was destroyed or never made")
        key = AESGCM.generate_key(bit_length=256)
        try:  # two processes may race to make the first key: the first one written wins
            self.store.put(self.key_name(subject), [self._wrap(subject, key)], if_absent=True)
        except BlobExists:
            return self._data_key(subject)
        return key

    def has_key(self, subject: str) -> bool:
        return self.store.exists(self.key_name(subject))

    def destroy_key(self, subject: str) -> bool:
        """Crypto-shred: remove the subject's wrapped data key for good (overwritten first
        on local disk; every version of it on S3), after leaving the tombstone."""
        self.store.put(self._tombstone(subject), [b""])
        return self.store.delete(self.key_name(subject), shred=True)

    def rewrap(self) -> int:
        """Re-wrap every data key under the newest master key; returns how many."""
        count = 0
        for info in self.store.list("keys/"):
            if not info.key.endswith(".key"):
                continue
            subject = info.key.removeprefix("keys/").removesuffix(".key")
            wrapped = self._read_key(subject)
            if wrapped is None:  # shredded meanwhile
                continue
            key = self._unwrap(subject, wrapped)
            self.store.put(info.key, [self._wrap(subject, key)])
            count += 1
        return count

    # -- blobs -----------------------------------------------------------------------
    @staticmethod
    def blob_name(subject: str, blob_id: str) -> str:
        return f"blobs/{_safe(subject)}/{_safe(blob_id)}"

    def put(self, subject: str, stream: BinaryIO) -> tuple[str, int]:
        """Encrypt ``stream`` for ``subject``; returns ``(blob_id, plaintext_bytes)``.

        The object is complete in the store when this returns, and absent if it raised:
        callers publish the blob id (a database row) only afterwards.
        """
        aead = AESGCM(self._data_key(subject, create=True))
        blob_id = uuid.uuid4().hex
        prefix = secrets.token_bytes(_NONCE_PREFIX)
        aad = f"{subject}/{blob_id}".encode()
        total = 0

        def chunks() -> Iterator[bytes]:
            nonlocal total
            yield _MAGIC + prefix
            index, current = 0, stream.read(CHUNK)
            while True:
                following = stream.read(CHUNK) if current else b""
                last = not following
                nonce = prefix + struct.pack(">IB", index, last)
                total += len(current)
                yield aead.encrypt(nonce, current, aad)
                if last:
                    return
                index, current = index + 1, following

        self.store.put(self.blob_name(subject, blob_id), chunks())
        return blob_id, total

    def open(self, subject: str, blob_id: str) -> Iterator[bytes]:
        """Yield the plaintext of a blob chunk by chunk; raises VaultError on any tamper."""
        aead = AESGCM(self._data_key(subject))
        try:
            fh = self.store.get(self.blob_name(subject, blob_id))
        except BlobNotFound:
            raise VaultError(f"no stored file {blob_id}") from None
        aad = f"{subject}/{blob_id}".encode()
        with contextlib.closing(fh):
            head = _read_exactly(fh, len(_MAGIC) + _NONCE_PREFIX)
            if not head.startswith(_MAGIC):
                raise VaultError("not a vault file")
            prefix = head[len(_MAGIC) :]
            index = 0
            block = _read_exactly(fh, CHUNK + 16)
            while True:
                following = _read_exactly(fh, CHUNK + 16)
                last = not following
                try:
                    yield aead.decrypt(prefix + struct.pack(">IB", index, last), block, aad)
                except InvalidTag as exc:
                    raise VaultError("stored file failed authentication") from exc
                if last:
                    return
                index, block = index + 1, following

    def read(self, subject: str, blob_id: str) -> bytes:
        return b"".join(self.open(subject, blob_id))

    def export(self, subject: str, blob_id: str, dest: str | os.PathLike[str]) -> Path:
        """Decrypt a blob to a plaintext working file (for ffmpeg and model code)."""
        dest = Path(dest)
        _atomic_write(dest, self.open(subject, blob_id))
        return dest

    def delete(self, subject: str, blob_id: str) -> bool:
        """Delete one blob; False when there was none (already deleted, or never stored)."""
        return self.store.delete(self.blob_name(subject, blob_id))

    def shred(self, subject: str) -> dict[str, int | bool]:
        """Destroy the subject's key, then delete every blob of theirs (R5, R24).

        The key goes first: from that moment no copy of the ciphertext can be read,
        even one a backup took before the files were deleted.
        """
        key_destroyed = self.destroy_key(subject)
        files, size = self.store.delete_prefix(f"blobs/{_safe(subject)}/")
        return {"key_destroyed": key_destroyed, "files_deleted": files, "bytes_deleted": size}


def _safe(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"unsafe storage name {name!r}")
    return name
