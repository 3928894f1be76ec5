"""Encryption at rest (R7) and crypto-shredding (R5) in compliance.vault."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from compliance.vault import (
    CHUNK,
    KeyDestroyed,
    Vault,
    VaultError,
    new_master_key,
    parse_master_keys,
)


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault(tmp_path, parse_master_keys(new_master_key("k1")))


def _blob_file(vault: Vault, subject: str, blob_id: str) -> Path:
    return vault.root / "blobs" / subject / blob_id


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 12345])
def test_round_trip_across_chunk_boundaries(vault, size):
    data = os.urandom(size)
    blob_id, written = vault.put("subj1", io.BytesIO(data))
    assert written == size
    assert vault.read("subj1", blob_id) == data


def test_file_on_disk_is_not_plaintext(vault):
    data = b"BIOMETRIC-FACE-" * 100_000
    blob_id, _ = vault.put("subj1", io.BytesIO(data))
    on_disk = _blob_file(vault, "subj1", blob_id).read_bytes()
    assert b"BIOMETRIC" not in on_disk
    assert len(on_disk) >= len(data)


def test_destroyed_key_makes_every_file_unreadable(vault):
    ids = [vault.put("subj1", io.BytesIO(b"x" * n))[0] for n in (10, 2 * CHUNK)]
    other, _ = vault.put("subj2", io.BytesIO(b"kept"))
    assert vault.destroy_key("subj1") is True
    assert not vault.has_key("subj1")
    for blob_id in ids:
        assert _blob_file(vault, "subj1", blob_id).exists()  # ciphertext may linger in backups...
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
    path = _blob_file(vault, "subj1", blob_id)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(VaultError, match="failed authentication"):
        vault.read("subj1", blob_id)


def test_truncation_and_swapping_are_detected(vault):
    data = os.urandom(2 * CHUNK + 10)
    blob_id, _ = vault.put("subj1", io.BytesIO(data))
    path = _blob_file(vault, "subj1", blob_id)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - (10 + 16)])  # drop the final chunk
    with pytest.raises(VaultError):
        vault.read("subj1", blob_id)
    # a ciphertext moved under another subject or name does not decrypt there
    path.write_bytes(whole)
    other, _ = vault.put("subj2", io.BytesIO(b"y"))
    _blob_file(vault, "subj2", other).write_bytes(whole)
    with pytest.raises(VaultError):
        vault.read("subj2", other)


def test_master_key_rotation(tmp_path):
    old, new = new_master_key("old"), new_master_key("new")
    v1 = Vault(tmp_path, parse_master_keys(old))
    blob_id, _ = v1.put("subj1", io.BytesIO(b"before rotation"))
    v2 = Vault(tmp_path, parse_master_keys(f"{new},{old}"))
    assert v2.read("subj1", blob_id) == b"before rotation"
    assert v2.rewrap() == 1
    v3 = Vault(tmp_path, parse_master_keys(new))
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
        assert not _blob_file(vault, "subj1", blob_id).exists()
    assert vault.read("subj2", other) == b"kept"
    assert vault.shred("subj1") == {"key_destroyed": False, "files_deleted": 0, "bytes_deleted": 0}
