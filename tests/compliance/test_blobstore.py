"""The object-store interface (compliance.blobstore) against each implementation: local
files and S3 on a real SeaweedFS server (``blob_store`` in tests/conftest.py)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import pytest

from compliance import s3store
from compliance.blobstore import BlobExists, BlobNotFound, BlobStoreError, LocalStore
from webapp.storage import make_store


def _read(store, key: str) -> bytes:
    with contextlib.closing(store.get(key)) as fh:
        return fh.read()


def test_put_get_stat_list_delete(blob_store):
    data = os.urandom(3 << 20)
    info = blob_store.put("blobs/s1/a", iter([data[:7], data[7:]]))
    assert (info.key, info.size, info.sha256) == ("blobs/s1/a", len(data), _sha(data))
    assert blob_store.stat("blobs/s1/a") == info
    assert _read(blob_store, "blobs/s1/a") == data
    blob_store.put("blobs/s1/b", [b"b"])
    blob_store.put("blobs/s10/c", [b"c"])
    assert [o.key for o in blob_store.list("blobs/s1/")] == ["blobs/s1/a", "blobs/s1/b"]
    assert blob_store.delete("blobs/s1/b") is True
    assert blob_store.delete("blobs/s1/b") is False
    assert blob_store.delete_prefix("blobs/s1/") == (1, len(data))
    assert not blob_store.exists("blobs/s1/a") and blob_store.stat("blobs/s1/a") is None
    assert _read(blob_store, "blobs/s10/c") == b"c"  # a longer name is not under the prefix
    with pytest.raises(BlobNotFound, match="no stored object blobs/s1/a"):
        blob_store.get("blobs/s1/a")


def test_put_if_absent_never_replaces(blob_store):
    blob_store.put("keys/s1.key", [b"first"], if_absent=True)
    with pytest.raises(BlobExists):
        blob_store.put("keys/s1.key", [b"second"], if_absent=True)
    assert _read(blob_store, "keys/s1.key") == b"first"


def test_a_failed_upload_leaves_no_object(blob_store):
    def broken():
        yield os.urandom(1 << 20)
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        blob_store.put("blobs/s1/half", broken())
    assert blob_store.stat("blobs/s1/half") is None
    assert list(blob_store.list("")) == []


def test_unsafe_keys_are_refused(blob_store):
    for key in ("../x", "a//b", "/abs", "a/./b", "a b"):
        with pytest.raises(ValueError, match="unsafe storage key"):
            blob_store.put(key, [b"x"])


def test_local_stale_temp_files_are_cleared(tmp_path: Path):
    store = LocalStore(tmp_path)
    store.put("blobs/s1/a", [b"kept"])
    stale = tmp_path / "blobs" / "s1" / ".tmp-killed"
    stale.write_bytes(b"half")
    os.utime(stale, (0, 0))
    assert [o.key for o in store.list()] == ["blobs/s1/a"]
    assert store.abort_stale_uploads(3600) == 1 and not stale.exists()


# -- S3 only ----------------------------------------------------------------------------


def test_s3_keeps_our_hash_in_object_metadata(s3_config, seaweed):
    store = make_store(s3_config)
    info = store.put("blobs/s1/a", [b"ciphertext"])
    head = seaweed.client().head_object(Bucket=seaweed.bucket, Key=store.settings.prefix + info.key)
    assert head["Metadata"] == {"sha256": _sha(b"ciphertext")}


def test_s3_multipart_upload_is_aborted_when_a_part_fails(s3_config, seaweed, monkeypatch):
    store = make_store(s3_config)
    monkeypatch.setattr(s3store, "MULTIPART_THRESHOLD", 5 << 20)  # S3's smallest part
    real = store._client.upload_part

    def second_part_fails(**kwargs):
        if kwargs["PartNumber"] == 2:
            raise ConnectionResetError("network dropped")
        return real(**kwargs)

    monkeypatch.setattr(store._client, "upload_part", second_part_fails)
    with pytest.raises(ConnectionResetError):
        store.put("blobs/s1/big", [os.urandom(12 << 20)])
    assert store.stat("blobs/s1/big") is None
    listed = seaweed.client().list_multipart_uploads(
        Bucket=seaweed.bucket, Prefix=store.settings.prefix
    )
    assert listed.get("Uploads", []) == []
    monkeypatch.undo()
    data = os.urandom(12 << 20)  # the same size in parts, when nothing fails
    store.put("blobs/s1/big", [data])
    assert _read(store, "blobs/s1/big") == data


def test_s3_stale_multipart_uploads_are_aborted(s3_config, seaweed):
    store = make_store(s3_config)
    client = seaweed.client()
    key = store.settings.prefix + "blobs/s1/killed"
    client.create_multipart_upload(Bucket=seaweed.bucket, Key=key)
    assert store.abort_stale_uploads(3600) == 0  # a young one may still be running
    assert store.abort_stale_uploads(0) == 1
    listed = client.list_multipart_uploads(Bucket=seaweed.bucket, Prefix=store.settings.prefix)
    assert listed.get("Uploads", []) == []


def test_s3_wrong_credentials_are_refused(s3_config):
    good = make_store(s3_config)
    good.put("blobs/s1/a", [b"secret ciphertext"])
    bad = make_store({**s3_config, "S3_SECRET_KEY": "wrong-" + s3_config["S3_SECRET_KEY"]})
    message = "S3 refused access to bucket 'dhf' .*check DHF_S3_ACCESS_KEY and DHF_S3_SECRET_KEY"
    with pytest.raises(BlobStoreError, match=message):
        bad.get("blobs/s1/a")
    with pytest.raises(BlobStoreError, match=message):
        bad.put("blobs/s1/b", [b"x"])
    unknown = make_store({**s3_config, "S3_ACCESS_KEY": "nobody"})
    with pytest.raises(BlobStoreError, match=message):
        unknown.get("blobs/s1/a")
    assert not good.exists("blobs/s1/b")


def test_s3_unreachable_endpoint_says_what_to_check(s3_config):
    store = make_store({**s3_config, "S3_ENDPOINT": "http://127.0.0.1:9"})
    store._client.meta.config.retries = {"max_attempts": 1}
    with pytest.raises(
        BlobStoreError, match="cannot reach S3 at http://127.0.0.1:9 .*DHF_S3_ENDPOINT"
    ):
        store.exists("keys/s1.key")


def test_seaweedfs_listens_on_loopback_only(seaweed):
    """Its master, volume and filer ports have no authentication: every socket the server
    listens on is bound to 127.0.0.1."""
    fds = Path(f"/proc/{seaweed.process.pid}/fd")
    inodes = {
        os.readlink(fd)[8:-1] for fd in fds.iterdir() if os.readlink(fd).startswith("socket:")
    }
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN, one of the server's
                address, port = fields[1].rsplit(":", 1)
                listening.append((address, int(port, 16)))
    assert seaweed.ports["s3.port"] in {port for _, port in listening}
    assert all(address == "0100007F" for address, _ in listening), listening


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
