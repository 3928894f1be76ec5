"""``dhf bench live``: a show of N minutes pushed to a local nginx-rtmp and pulled back.

Real GRID clips are stamped (labels, watermark, AIGC tag, C2PA) with throw-away keys and
played by the engine as a looping plan: segments, the idle loop between them, and an
answer clip spliced in for a "comment" every ``comment_every_s`` seconds. A viewer
(``ffmpeg``) records the stream from the RTMP server from before the first frame. Every
figure is measured on that recording, except the engine's own counters (late frames).
"""

from __future__ import annotations

import os
import random
import resource
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from compliance import media

from . import measure
from .engine import Clip, Engine, EngineOptions
from .local_rtmp import RtmpServer, missing


def _stamp(sources: list[Path], work: Path) -> list[Path]:
    from compliance.keys import init_keys
    from compliance.payload import new_watermark_id
    from compliance.stamping import ComplianceSettings, ContentSpec, stamp
    from compliance.vault import new_master_key, parse_master_keys

    keys, _ = init_keys(work / "keys")
    settings = ComplianceSettings(
        keys.directory, tuple(parse_master_keys(new_master_key("bench"))), producer="DHFBENCH"
    )
    out = []
    for n, source in enumerate(sources):
        path = work / f"clip{n}.mp4"
        stamp(source, path, ContentSpec(uuid.uuid4().hex, new_watermark_id()), settings)
        out.append(path)
    return out


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(grid: Path, minutes: float = 2.0, comment_every_s: float = 20.0) -> dict[str, Any]:
    why = missing()
    if why:
        raise RuntimeError(why)
    sources = sorted(grid.glob("*.mpg"))
    if len(sources) < 5:
        raise RuntimeError(f"need GRID clips in {grid}")
    with tempfile.TemporaryDirectory(prefix="dhf-bench-live-") as tmp:
        work = Path(tmp)
        began = time.perf_counter()
        idle, answer, *segments = _stamp(sources[:5], work)
        stamp_s = time.perf_counter() - began
        return _show(work, idle, answer, segments, minutes * 60.0, comment_every_s, stamp_s)


def _show(
    work: Path,
    idle: Path,
    answer: Path,
    segments: list[Path],
    seconds: float,
    comment_every_s: float,
    stamp_s: float,
) -> dict[str, Any]:
    info = media.video_facts(idle)
    server = RtmpServer(work / "nginx").start()
    options = EngineOptions(
        width=int(info.width or 0), height=int(info.height or 0), outputs=(server.url("b"),)
    )
    engine = Engine(options, Clip(idle, "idle", options))
    viewer = measure.Puller(server.url("b"), work / "pulled.ts")
    time.sleep(0.5)  # the viewer waits on the idle stream
    cpu0, wall0 = _cpu_seconds(), time.monotonic()
    try:
        comments = _play(engine, options, segments, answer, seconds, comment_every_s, server)
        go_live, first_byte = comments.pop("go_live"), comments.pop("first_byte")
        engine.stop()
        viewer.finish()
    finally:
        engine.abort()
        server.stop()
    cpu = _cpu_seconds() - cpu0
    wall = time.monotonic() - wall0
    return _figures(work, engine, options, segments, answer, comments, go_live, first_byte) | {
        "cpu": {
            "cores": os.cpu_count(),
            "cpu_s": round(cpu, 1),
            "wall_s": round(wall, 1),
            "cores_busy": round(cpu / wall, 2),
        },
        "stamp_clips_s": round(stamp_s, 1),
    }


def _play(
    engine: Engine,
    options: EngineOptions,
    segments: list[Path],
    answer: Path,
    seconds: float,
    comment_every_s: float,
    server: RtmpServer,
) -> dict[str, Any]:
    """Go live, keep the plan looping, post a "comment" now and then, until ``seconds``."""
    rng = random.Random(19)
    go_live = time.monotonic()
    engine.start()
    for n, path in enumerate(segments):
        engine.play(Clip(path, f"segment:{n}", options))
    first_byte = server.first_frame_at("b", 10)
    asked: list[float] = []
    next_comment = go_live + rng.uniform(5, comment_every_s)
    n = len(segments)
    while time.monotonic() - go_live < seconds:
        time.sleep(0.1)
        if engine.pending() == 0:  # the plan loops
            for path in segments:
                engine.play(Clip(path, f"segment:{n}", options))
                n += 1
        if time.monotonic() >= next_comment and not any(
            a for a in asked if not _aired_after(engine, a)
        ):
            asked.append(time.monotonic())
            engine.splice(Clip(answer, f"answer:{len(asked)}", options))
            next_comment = time.monotonic() + rng.uniform(0.5, 1.5) * comment_every_s
    return {"go_live": go_live, "first_byte": first_byte, "asked": asked}


def _aired_after(engine: Engine, at: float) -> bool:
    return any(a.key.startswith("answer:") and a.at >= at for a in engine.aired)


def _figures(
    work: Path,
    engine: Engine,
    options: EngineOptions,
    segments: list[Path],
    answer: Path,
    comments: dict[str, Any],
    go_live: float,
    first_byte: float | None,
) -> dict[str, Any]:
    pulled = work / "pulled.ts"
    facts = measure.stream_facts(pulled, options.fps)
    fps = options.fps
    answers = [a for a in engine.aired if a.key.startswith("answer:")]
    waits = [a.at - t for t, a in zip(comments["asked"], answers, strict=False)]
    heard = _answers_heard(pulled, answer, [a.frame / fps for a in answers])
    # segments played whole (not interrupted by an answer) whose measured moment (3.5-5.5 s
    # in, +-3 s) lies inside the recording (a viewer may miss the last second or two when
    # the publisher leaves)
    resumed = {a.key for a in engine.aired if a.offset}
    on_air = [
        a
        for a in engine.aired
        if a.key.startswith("segment:")
        and a.key not in resumed
        and a.frame / fps + 9.0 < facts.video_s
    ]
    drift = {}
    if on_air:
        clip_of = {f"segment:{n}": p for n, p in enumerate(segments)}
        for name, entry in (("first_segment", on_air[0]), ("last_segment", on_air[-1])):
            path = clip_of.get(entry.key) or segments[int(entry.key.split(":")[1]) % len(segments)]
            drift[name] = {
                "at_s": round(entry.frame / fps, 2),
                **measure.av_offset(pulled, path, 3.5, entry.frame / fps),
            }
    stats = engine.stats
    return {
        "show_s": round(stats.frames / fps, 2),
        "pulled": facts.as_dict(),
        "time_to_first_frame_s": round(first_byte - go_live, 3) if first_byte else None,
        "engine": {
            "frames": stats.frames,
            "idle_frames": stats.idle_frames,
            "late_frames": stats.late_frames,
            "cuts_for_answers": stats.cuts,
            "max_lag_s": round(stats.max_lag_s, 3),
            "relays": {k: vars(v) for k, v in stats.relays.items()},
        },
        "av_drift": drift,
        "comments": {
            "asked": len(comments["asked"]),
            "aired": len(answers),
            "heard_in_stream": heard,
            "comment_to_air_s": {
                "p50": round(float(np.percentile(waits, 50)), 2) if waits else None,
                "p95": round(float(np.percentile(waits, 95)), 2) if waits else None,
                "max": round(max(waits), 2) if waits else None,
            },
        },
    }


def _answers_heard(pulled: Path, answer: Path, starts: list[float]) -> int:
    """How many spliced answers are really in the recording where the engine put them."""
    rate = 16000
    sound = measure.audio(pulled, rate)
    speech = media.audio(answer, rate)[int(3.0 * rate) : int(5.0 * rate)]
    heard = 0
    for start in starts:
        lo, hi = int((start + 2.0) * rate), int((start + 6.0) * rate)
        offset, score = measure.find_audio(sound[lo:hi], speech, rate)
        heard += score > 0.8 and abs(lo / rate + offset - 3.0 - start) < 0.2
    return heard
