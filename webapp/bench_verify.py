"""``dhf bench verify``: latency of the public verifier under load, with hostile files.

A real waitress server (``dhf serve``'s, in a thread, rate limits off) takes N concurrent
``POST /api/v1/verify`` of normal ~10 s clips (GRID clips joined), first alone, then while
hostile files (no-duration WebM, 8192x8192, 10-hour header) are submitted at the same time.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from compliance import bench, media


def _post(url: str, path: Path) -> tuple[float, int, str]:
    start = time.perf_counter()
    with open(path, "rb") as fh:
        res = requests.post(url, files={"file": (path.name, fh)}, timeout=600)
    body = res.json()
    what = body.get("verdict") or f"{body.get('error')}: {body.get('message', '')[:120]}"
    return time.perf_counter() - start, res.status_code, what


def _summary(rows: list[tuple[float, int, str]]) -> dict[str, Any]:
    seconds = sorted(r[0] for r in rows)
    return {
        "requests": len(rows),
        "errors": sum(1 for r in rows if r[1] != 200),
        "p50_s": round(statistics.median(seconds), 2),
        "p95_s": round(seconds[max(0, int(round(0.95 * len(seconds))) - 1)], 2),
        "max_s": round(seconds[-1], 2),
    }


def _round(url: str, normal: Path, count: int, hostile: dict[str, Path]) -> dict[str, Any]:
    with ThreadPoolExecutor(count + len(hostile)) as pool:
        bad = {name: pool.submit(_post, url, path) for name, path in hostile.items()}
        time.sleep(0.2 if hostile else 0)  # the hostile files go in first
        good = [pool.submit(_post, url, normal) for _ in range(count)]
        result = _summary([f.result() for f in good])
        result["hostile"] = {
            name: {"seconds": round(s, 2), "status": status, "answer": what}
            for name, (s, status, what) in ((n, f.result()) for n, f in bad.items())
        }
    return result


def run(app: Any, clips: Sequence[Path], concurrent: int = 50) -> dict[str, Any]:
    from .cli.serve import _web_server

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # a deep queue is the point
    with tempfile.TemporaryDirectory(prefix="dhf-bench-verify-") as tmp:
        work = Path(tmp)
        joined, normal = work / "joined.mp4", work / "normal.mp4"
        media.concat(clips, joined)
        media.ffmpeg(["-i", str(joined), "-t", "10", "-c", "copy", str(normal)])
        clip_seconds = media.probe(normal).duration_s
        hostile = {
            "no_duration_webm_640x360_20s": bench.no_duration_webm(work / "nodur.webm"),
            "no_duration_webm_1280x720_60s": bench.no_duration_webm(
                work / "nodur720.webm", "1280x720", 60
            ),
            "picture_8192x8192": bench.huge_picture(work / "huge.mp4"),
            "header_claims_10_hours": bench.ten_hour_header(work / "long.mkv"),
            "header_claims_100_hours": bench.ten_hour_header(work / "longer.mkv", 360_000.0),
        }
        server = _web_server(app, "127.0.0.1", 0, 8)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.effective_port}/api/v1/verify"
        try:
            single = _post(url, normal)  # warms the verification fork server
            single = _post(url, normal)
            alone = _round(url, normal, concurrent, {})
            with_hostile = _round(url, normal, concurrent, hostile)
        finally:
            server.close()
    cfg = app.config
    return {
        "clip": {"seconds": clip_seconds, "sources": [p.name for p in clips]},
        "config": {
            k: cfg[k]
            for k in (
                "VERIFY_CONCURRENCY",
                "VERIFY_QUEUE_S",
                "VERIFY_BUDGET_S",
                "VERIFY_MEMORY_BYTES",
            )
        },
        "one_verification_s": round(single[0], 2),
        "concurrent": concurrent,
        "normal_alone": alone,
        "normal_with_hostile": with_hostile,
    }
