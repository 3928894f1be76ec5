"""Encryption at rest (R7) and crypto-shredding (R5) in compliance.vault, on each object
store: local files and S3 (a real SeaweedFS server, ``blob_store`` in tests/conftest.py)."""

from __future__ import annotations

import contextlib
import io
import os

import pytest

from compliance.blobstore import BlobStore
from compliance.vault import (
    CHUNK,
    KeyDestroyed,
    Vault,
    VaultError,
    new_master_key,
    parse_master_keys,
)


@pytest.fixture
def vault(blob_store: BlobStore) -> Vault:
    return Vault(blob_store, parse_master_keys(new_master_key("k1")))


def _stored(vault: Vault, subject: str, blob_id: str) -> bytes | None:
    """The stored object's bytes (what a backup or the S3 operator sees), or None."""
    if not vault.store.exists(Vault.blob_name(subject, blob_id)):
        return None
    with contextlib.closing(vault.store.get(Vault.blob_name(subject, blob_id))) as fh:
        return fh.read()


def _replace(vault: Vault, subject: str, blob_id: str, raw: bytes) -> None:
    vault.store.put(Vault.blob_name(subject, blob_id), [raw])


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 12345])
def test_round_trip_across_chunk_boundaries(vault, size):
    data = os.urandom(size)
    blob_id, written = vault.put("subj1", io.BytesIO(data))
    assert written == size
    assert vault.read("subj1", blob_id) == data


def test_file_on_disk_is_not_plaintext(vault):
    data = b"BIOMETRIC-FACE-" * 100_000
    blob_id, _ = vault.put("subj1", io.BytesIO(data))
    on_disk = _stored(vault, "subj1", blob_id)
    assert on_disk is not None and b"BIOMETRIC" not in on_disk
    assert len(on_disk) >= len(data)


def test_destroyed_key_makes_every_file_unreadable(vault):
    ids = [vault.put("subj1", io.BytesIO(b"x" * n))[0] for n in (10, 2 * CHUNK)]
    other, _ = vault.put("subj2", io.BytesIO(b"kept"))
    assert vault.destroy_key("subj1") is True
    assert not vault.has_key("subj1")
    for blob_id in ids:
        assert _stored(vault, "subj1", blob_id)  # ciphertext may linger in backups...
        with pytest.raises(KeyDestroyed):
            vault.read("subj1", blob_id)  # ...and stays unreadable
    assert vault.read("subj2", other) == b"kept"
    assert vault.destroy_key("subj1") is False


def test_a_destroyed_key_is_never_made_again(vault):
    """After a withdrawal nothing new can be stored for the person (issue: a fresh key
    used to be created by the next upload)."""
    vault.put("subj1", io.BytesIO(b"before"))
    vault.shred("subj1")
    with pytest.raises(KeyDestroyed):
        vault.put("subj1", io.BytesIO(b"after"))
    assert not vault.has_key("subj1")
    assert vault.rewrap() == 0


def test_tampering_is_detected(vault):
    blob_id, _ = vault.put("subj1", io.BytesIO(os.urandom(3 * CHUNK)))
    raw = bytearray(_stored(vault, "subj1", blob_id) or b"")
    raw[len(raw) // 2] ^= 0x01
    _replace(vault, "subj1", blob_id, bytes(raw))
    with pytest.raises(VaultError, match="failed authentication"):
        vault.read("subj1", blob_id)


def test_truncation_and_swapping_are_detected(vault):
    data = os.urandom(2 * CHUNK + 10)
    blob_id, _ = vault.put("subj1", io.BytesIO(data))
    whole = _stored(vault, "subj1", blob_id) or b""
    _replace(vault, "subj1", blob_id, whole[: len(whole) - (10 + 16)])  # drop the final chunk
    with pytest.raises(VaultError):
        vault.read("subj1", blob_id)
    # a ciphertext moved under another subject or name does not decrypt there
    _replace(vault, "subj1", blob_id, whole)
    other, _ = vault.put("subj2", io.BytesIO(b"y"))
    _replace(vault, "subj2", other, whole)
    with pytest.raises(VaultError):
        vault.read("subj2", other)


def test_master_key_rotation(blob_store):
    old, new = new_master_key("old"), new_master_key("new")
    v1 = Vault(blob_store, parse_master_keys(old))
    blob_id, _ = v1.put("subj1", io.BytesIO(b"before rotation"))
    v2 = Vault(blob_store, parse_master_keys(f"{new},{old}"))
    assert v2.read("subj1", blob_id) == b"before rotation"
    assert v2.rewrap() == 1
    v3 = Vault(blob_store, parse_master_keys(new))
    assert v3.read("subj1", blob_id) == b"before rotation"
    with pytest.raises(VaultError, match="unknown master key"):
        v1.read("subj1", blob_id)


def test_unsafe_names_are_refused(vault):
    with pytest.raises(ValueError):
        vault.put("../etc", io.BytesIO(b"x"))


def test_master_key_spec_is_checked():
    with pytest.raises(ValueError, match="32 bytes"):
        parse_master_keys("k:c2hvcnQ")
    with pytest.raises(ValueError, match="DHF_MASTER_KEYS"):
        parse_master_keys("")


def test_shred_destroys_the_key_then_deletes_every_file(vault):
    ids = [vault.put("subj1", io.BytesIO(b"x" * n))[0] for n in (10, 2 * CHUNK)]
    other, _ = vault.put("subj2", io.BytesIO(b"kept"))
    receipt = vault.shred("subj1")
    assert receipt["key_destroyed"] is True and receipt["files_deleted"] == 2
    assert receipt["bytes_deleted"] > 2 * CHUNK
    for blob_id in ids:
        assert _stored(vault, "subj1", blob_id) is None
    assert [o.key for o in vault.store.list("blobs/subj1/")] == []
    assert vault.read("subj2", other) == b"kept"
    assert vault.shred("subj1") == {"key_destroyed": False, "files_deleted": 0, "bytes_deleted": 0}
