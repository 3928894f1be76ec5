"""``verify``: what a file says about itself, and what our marks say about it (R16).

Reads the C2PA manifest (state, signer, assertions), the AIGC tag, and decodes the
invisible watermark from frames and audio. The verdict is one of ``ai_generated_by_us``
(our manifest is valid, or our watermark decodes), ``tampered`` (our manifest is present
but fails validation) or ``unknown`` (nothing of ours found). It never calls a file
authentic. Resolving ids to registry rows and consent status is the caller's job.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import resource
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av

from . import aigc, audio_watermark, media, provenance
from .payload import Decision
from .stamping import ComplianceSettings
from .watermark import decode_video


@dataclass(frozen=True)
class WatermarkResult:
    found: bool
    watermark_id: str | None
    confidence: float
    p_value: float
    video: Decision | None
    audio: Decision | None


@dataclass(frozen=True)
class Verification:
    verdict: str
    c2pa: provenance.C2paReport | None
    aigc: aigc.AigcLabel | None
    watermark: WatermarkResult
    content_id: str | None  # from the manifest, when it is ours and readable

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _video_decision(
    path: Path, settings: ComplianceSettings, info: media.MediaInfo
) -> Decision | None:
    """Frames chosen by time (never every frame), at most our largest output width."""
    if not info.has_video:
        return None
    frames = media.sample_frames(
        path,
        info,
        settings.video.decode_frames,
        settings.limits,
        fmt="bgr24",
        max_side=max(settings.video.sides),
    )
    return decode_video(frames, settings.codec(), settings.video).decision


def _audio_decision(path: Path, settings: ComplianceSettings) -> Decision | None:
    rate = settings.audio_rate
    samples = media.audio(path, rate, max_seconds=settings.limits.max_seconds)
    if len(samples) < rate:  # under a second: nothing to decide on
        return None
    codec = settings.codec()
    best: Decision | None = None
    for _, key in settings.watermark_keys:
        soft = audio_watermark.detect(samples, rate, codec.n_bits, settings.audio_key(key))
        scale = max(float(abs(soft).max()), 1e-12)
        decision = codec.decode(soft / scale, attempts=len(settings.watermark_keys))
        if decision.found:
            return decision
        best = best or decision
    return best


def watermark(
    path: Path, settings: ComplianceSettings, info: media.MediaInfo | None = None
) -> WatermarkResult:
    info = info or media.probe(path, settings.limits)
    video = _video_decision(path, settings, info)
    audio = _audio_decision(path, settings) if info.has_audio else None
    found = [d for d in (video, audio) if d is not None and d.found]
    if found:
        ids = {d.watermark_id for d in found}
        best = min(found, key=lambda d: d.p_value)
        # two independent tracks agreeing multiply their chance bounds
        p_value = (
            found[0].p_value * found[1].p_value
            if len(found) == 2 and len(ids) == 1
            else best.p_value
        )
        return WatermarkResult(True, best.watermark_id, best.confidence, p_value, video, audio)
    confidence = max((d.confidence for d in (video, audio) if d is not None), default=0.0)
    return WatermarkResult(False, None, confidence, 1.0, video, audio)


def verify(path: str | os.PathLike[str], settings: ComplianceSettings) -> Verification:
    """Verify one file. Media over ``settings.limits`` raise MediaLimitExceeded before
    anything is decoded; unreadable media simply carry no readable mark."""
    path = Path(path)
    try:
        info: media.MediaInfo | None = media.probe(path, settings.limits)
    except media.MediaLimitExceeded:
        raise
    except media.MediaError:
        info = None
    manifest = provenance.read(path, settings.keys)
    try:
        label = aigc.read(path, settings.keys)
    except Exception:  # not a container PyAV can read: no label
        label = None
    try:
        if info is None:
            raise media.MediaError("unreadable")
        mark = watermark(path, settings, info)
    except media.MediaLimitExceeded:  # a lying header, caught while decoding
        raise
    except (media.MediaError, av.error.FFmpegError, ValueError, EOFError):
        mark = WatermarkResult(False, None, 0.0, 1.0, None, None)  # undecodable: no mark
    ours = manifest is not None and manifest.ours
    if ours and manifest is not None and manifest.state == "Invalid":
        verdict = "tampered"
    elif ours or mark.found:
        verdict = "ai_generated_by_us"
    else:
        verdict = "unknown"
    content_id = manifest.content_id if ours and manifest is not None else None
    return Verification(verdict, manifest, label, mark, content_id)


# -- bounded verification --------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """What one verification may use (``DHF_VERIFY_BUDGET_S``, ``DHF_VERIFY_MEMORY_BYTES``)."""

    seconds: float = 20.0  # wall-clock and CPU seconds of one verification
    memory_bytes: int = 3 * 1024**3  # address space of the process that decodes


class BudgetExceeded(media.MediaLimitExceeded):
    """The file needed more time or memory than one verification may use."""


def _budget_error(budget: Budget, what: str) -> BudgetExceeded:
    if what == "memory":
        return BudgetExceeded(
            "verify_memory_bytes",
            "Checking this file needs more than "
            f"{budget.memory_bytes // 2**20} MiB of memory (limit "
            "verify_memory_bytes, DHF_VERIFY_MEMORY_BYTES).",
        )
    return BudgetExceeded(
        "verify_budget_s",
        f"Checking this file takes longer than "
        f"{budget.seconds:g} s (limit verify_budget_s, "
        "DHF_VERIFY_BUDGET_S).",
    )


def _child(conn: object, path: str, settings: ComplianceSettings, budget: Budget) -> None:
    """Runs in a fresh process: cap its CPU time and address space, verify, send back."""
    cpu = math.ceil(budget.seconds)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (budget.memory_bytes, budget.memory_bytes))
    import cv2

    cv2.setNumThreads(1)
    try:
        answer: tuple[str, Verification | Exception] = ("ok", verify(path, settings))
    except media.MediaLimitExceeded as exc:
        answer = ("limit", exc)
    except (MemoryError, ImportError):  # a lazy import fails only when it cannot map memory
        answer = ("limit", _budget_error(budget, "memory"))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as unreadable media
        answer = ("limit", media.MediaError(f"not a readable audio/video file ({exc})"))
    conn.send(answer)  # type: ignore[attr-defined]


def _context() -> multiprocessing.context.ForkServerContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["__main__", __name__])  # imported once; children fork
    return ctx


def verify_within(
    path: str | os.PathLike[str], settings: ComplianceSettings, budget: Budget
) -> Verification:
    """``verify`` in a child process that cannot exceed ``budget``.

    The child is forked from a fork server that has already imported this module (a
    start costs milliseconds, not an interpreter start), so a thread of a web server never
    forks itself. The child sets RLIMIT_CPU (the kernel kills it after ``seconds`` of CPU)
    and RLIMIT_AS (allocations past ``memory_bytes`` fail), and the parent waits at most
    ``seconds`` of wall time before killing it. Whatever a decoder or library does with a
    hostile file, the cost is bounded; the caller bounds how many run at once.
    Raises MediaLimitExceeded (BudgetExceeded when the budget ran out).
    """
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(sender, os.fspath(path), settings, budget))
    proc.start()
    sender.close()
    value: Verification | Exception
    try:
        if not receiver.poll(budget.seconds):
            raise _budget_error(budget, "time")
        _, value = receiver.recv()  # ("ok", Verification) or ("limit", the error to raise)
    except EOFError:  # killed by the kernel (CPU limit) or crashed out of memory
        proc.join(1.0)
        cpu_killed = proc.exitcode in (-signal.SIGXCPU, -signal.SIGKILL)
        raise _budget_error(budget, "time" if cpu_killed else "memory") from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receiver.close()
    if isinstance(value, Exception):
        raise value
    return value
