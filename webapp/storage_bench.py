"""``dhf bench storage``: put/get of encrypted objects through the vault, local disk vs S3.

Each size is written ``repeats`` times through :class:`compliance.vault.Vault` (AES-GCM
envelope encryption included) and read back in full; the S3 side is a SeaweedFS server
started on loopback for the run (``webapp.seaweed``), so the figures are the software
path's cost on this machine, not a network's.
"""

from __future__ import annotations

import io
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from compliance.blobstore import BlobStore, LocalStore
from compliance.vault import Vault, new_master_key, parse_master_keys

from . import seaweed

SIZES = {"1MB": (1_000_000, 20), "50MB": (50_000_000, 3)}  # bytes, repeats


def _timed(store: BlobStore, size: int, repeats: int) -> dict[str, Any]:
    vault = Vault(store, parse_master_keys(new_master_key("bench")))
    subject = f"bench-{size}"  # one per size: a shredded subject never gets a new key
    data = os.urandom(size)
    puts, gets = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        blob_id, _ = vault.put(subject, io.BytesIO(data))
        puts.append(time.perf_counter() - start)
        start = time.perf_counter()
        got = sum(len(chunk) for chunk in vault.open(subject, blob_id))
        gets.append(time.perf_counter() - start)
        if got != size:
            raise RuntimeError(f"read {got} bytes back, wrote {size}")
    vault.shred(subject)
    return {
        "repeats": repeats,
        "put_median_s": round(statistics.median(puts), 4),
        "put_max_s": round(max(puts), 4),
        "put_MBps": round(size / 1e6 / statistics.median(puts), 1),
        "get_median_s": round(statistics.median(gets), 4),
        "get_max_s": round(max(gets), 4),
        "get_MBps": round(size / 1e6 / statistics.median(gets), 1),
    }


def bench() -> dict[str, Any]:
    result: dict[str, Any] = {"cpu_count": os.cpu_count(), "sizes": list(SIZES)}
    with tempfile.TemporaryDirectory(prefix="dhf-bench-") as tmp:
        local = LocalStore(Path(tmp) / "storage")
        result["local"] = {name: _timed(local, *spec) for name, spec in SIZES.items()}
        with seaweed.running(Path(tmp) / "seaweed") as server:
            from .storage import make_store

            s3 = make_store(server.config(prefix="bench"))
            result["seaweedfs_loopback"] = {name: _timed(s3, *spec) for name, spec in SIZES.items()}
    return result
