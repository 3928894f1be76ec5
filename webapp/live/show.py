"""The ``live_show`` job (cpu queue): one show, from going live to its end.

It decrypts the room's ready clips into a private work folder, starts the stream engine
(``pipeline.live.engine``), and then, every ``POLL_S``, in this process's own database
session:

- checks the likeness gate (``likeness.blocked``: consent withdrawn, KYC lapsed, account
  suspended, avatar frozen) and cuts the stream at once when it says no (R5, R26);
- ends the show cleanly when the operator asked, or at ``max_seconds``;
- queues the next planned segment once its render is ready (plan order is kept; when the
  plan is done and the room loops, it starts again);
- splices the answer clip of every matched comment (one splice per answer however many
  viewers asked) and marks the comments aired when the clip goes on air;
- splices each operator line once its render is ready, with an estimate of when it airs,
  and logs it aired (``control``);
- airs the room's notice clip first and again at the first boundary after every
  ``LIVE_NOTICE_INTERVAL_S`` of stream time (its other clips carry no audible notice);
- pays every started minute on air from the credits (``control.ShowBilling``) and ends the
  show cleanly (``credits``) when the next minute cannot be paid.

The plaintext clips and the HLS folder are removed when the show ends.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select

from compliance import media
from compliance.audit import EventTag

from .. import jobs, likeness
from ..config import private_dir
from ..extensions import db
from ..jobs import Progress
from ..models import (
    Avatar,
    Job,
    LiveComment,
    LiveCommentStatus,
    LiveLine,
    LiveLineStatus,
    LiveRoom,
    LiveRoomStatus,
    Render,
    Subject,
    utcnow,
)
from ..ownership import get_referenced
from ..storage import vault
from . import control, service

POLL_S = 0.2  # how often the gate, the stop request and the comments are read
JOB_TIMEOUT_S = 12 * 3600  # RQ's limit for one show (LIVE_MAX_SECONDS is far below)


def work_dir(room: LiveRoom) -> Path:
    return Path(current_app.config["WORK_DIR"]) / "live" / room.id


def hls_dir(room: LiveRoom) -> Path:
    return work_dir(room) / "hls"


def _show_failed(job: Job) -> None:
    room = db.session.get(LiveRoom, job.target_id)
    if room is not None and room.status == LiveRoomStatus.LIVE:
        service.end(room, "failed")


def _show_canceled(job: Job) -> None:
    room = db.session.get(LiveRoom, job.target_id)
    if room is not None and room.status == LiveRoomStatus.LIVE:
        service.end(room, "canceled")


@jobs.job(
    "live_show",
    queue="cpu",
    target=LiveRoom,
    likeness=True,
    timeout=JOB_TIMEOUT_S,
    retries=0,
    on_failure=_show_failed,
    on_cancel=_show_canceled,
)
def live_show(job: Job, report: Progress) -> dict[str, Any]:
    return Show(get_referenced(LiveRoom, job.target_id), report, job.id).run()


class Show:
    """The control loop around one engine (see the module docstring)."""

    def __init__(self, room: LiveRoom, report: Progress, job_id: str):
        from pipeline.live.engine import EngineOptions

        self.room, self.report = room, report
        self.billing = control.ShowBilling(room, job_id)
        self.avatar = get_referenced(Avatar, room.avatar_id)
        self.subject_id = self.avatar.subject_id
        self.clips = private_dir(work_dir(room) / "clips")
        shutil.rmtree(hls_dir(room), ignore_errors=True)
        idle = self._export(service.ready_render(room.idle_render_id))
        info = media.video_facts(idle)
        self.options = EngineOptions(
            width=int(info.width or 0) // 2 * 2,
            height=int(info.height or 0) // 2 * 2,
            outputs=tuple(room.outputs),
            hls_dir=hls_dir(room),
            backoff_s=tuple(float(s) for s in current_app.config["LIVE_RECONNECT_S"].split(",")),
        )
        self.idle_path = idle
        self.next_position = 0  # the next plan position to hand to the engine
        self.spliced: dict[str, str] = {}  # answer render id -> engine key
        self.seen_aired = 0
        self.durations: dict[str, float] = {}  # engine key -> clip length (s)
        self.ahead: list[str] = []  # keys spliced and not on air yet, in splice order
        # a room with a notice clip never airs without it (taken down since the start: fail)
        notice = room.notice_render_id
        self.notice_path = self._export(service.ready_render(notice)) if notice else None
        self.notice_interval = float(current_app.config["LIVE_NOTICE_INTERVAL_S"])
        self.last_notice: int | None = None  # the output frame the last notice began at

    def _export(self, render: Render | None) -> Path:
        if render is None or not render.output_blob_id:
            raise RuntimeError("a clip of this show is not ready")
        path = self.clips / f"{render.id}.mp4"
        if not path.exists():
            vault().export(self.subject_id, render.output_blob_id, path)
        return path

    def run(self) -> dict[str, Any]:
        from pipeline.live.engine import Clip, Engine

        targets = [service.check_output(url) for url in self.room.outputs]
        engine = Engine(self.options, Clip(self.idle_path, "idle", self.options), targets)
        self.engine = engine
        self._splice_notice()  # the first thing on air
        self._queue_segments()
        reason: str | None = None
        engine.start()
        began = time.monotonic()
        try:
            reason = self._loop(began)
        finally:
            if reason in ("stopped", "max_length", "credits", "failed"):
                engine.stop()
            else:
                engine.abort()
            self._finish(reason or "failed")
        return {"room_id": self.room.id, "reason": reason, **self.room.stats}

    def _loop(self, began: float) -> str:
        on_air = False
        while True:
            time.sleep(POLL_S)
            db.session.rollback()  # see other processes' commits (stop, comments, the gate)
            room, avatar = self.room, self.avatar
            subject = db.session.get(Subject, self.subject_id)
            blocked = "target_gone" if subject is None else likeness.blocked(subject, avatar)
            if blocked:
                return blocked
            if not self.engine.running:
                return "failed"
            if not on_air and self.engine.stats.started_at is not None:
                on_air = True
                room.started_at = utcnow()
                control.log(room, EventTag.LIVE_ON_AIR)
            if room.stop_requested_at is not None:
                return "stopped"
            on_air_s = self.engine.stats.frames / self.options.fps  # stream time
            if on_air_s >= room.max_seconds or time.monotonic() - began >= room.max_seconds + 60:
                return "max_length"
            if on_air and self.billing.tick(on_air_s) == "credits":
                return "credits"
            self._queue_segments()
            self._mark_aired()
            self._splice_answers()
            self._splice_lines()
            self._repeat_notice()
            db.session.commit()

    def _queue_segments(self) -> None:
        """Hand the engine the next planned segments whose renders are ready, in order;
        a looping room starts its plan again once everything has been played."""
        from pipeline.live.engine import Clip

        segments = service.segments_of(self.room)
        if self.room.loop and self.next_position >= len(segments) and not self.engine.pending():
            self.next_position = 0
        while self.next_position < len(segments) and self.engine.pending() < 2:
            segment = segments[self.next_position]
            render = service.ready_render(segment.render_id)
            if render is None:
                return  # not rendered yet: the idle loop plays meanwhile
            clip = Clip(self._export(render), f"segment:{segment.id}", self.options)
            self.durations[clip.key] = len(clip.audio) / self.options.sample_rate
            self.engine.play(clip)
            self.next_position += 1

    def _splice_answers(self) -> None:
        queued = db.session.scalars(
            select(LiveComment).where(
                LiveComment.room_id == self.room.id,
                LiveComment.status == LiveCommentStatus.QUEUED,
            )
        )
        for comment in queued:
            if comment.render_id in self.spliced:
                continue  # the same answer is already on its way
            render = service.ready_render(comment.render_id)
            if render is None:
                comment.status = LiveCommentStatus.UNMATCHED  # its clip is gone meanwhile
                continue
            key = f"answer:{render.id}"
            self._splice(render, key)
            self.spliced[render.id] = key

    def _splice(self, render: Render | None, key: str) -> float:
        """Hand the engine a clip for the next boundary; returns the seconds until it airs
        (what is on air now, then what was spliced before it)."""
        from pipeline.live.engine import Clip

        path = self.notice_path if key == "notice" else self._export(render)
        assert path is not None
        clip = Clip(path, key, self.options)
        airs_in = self._boundary_in() + sum(self.durations.get(k, 0.0) for k in self.ahead)
        self.durations[key] = len(clip.audio) / self.options.sample_rate
        self.ahead.append(key)
        self.engine.splice(clip)
        return airs_in

    def _boundary_in(self) -> float:
        """Seconds until the clip on air ends (the idle loop is cut at the next frame)."""
        if not self.engine.aired or self.engine.aired[-1].key == "idle":
            return 0.0
        current = self.engine.aired[-1]  # (the rest of an interrupted segment: from offset)
        played = (self.engine.stats.frames - current.frame + current.offset) / self.options.fps
        return max(0.0, self.durations.get(current.key, 0.0) - played)

    def _splice_notice(self) -> None:
        if self.notice_path is not None and "notice" not in self.ahead:
            self._splice(None, "notice")

    def _repeat_notice(self) -> None:
        """The notice again at the first boundary after every interval on air (R26)."""
        if self.last_notice is None:
            return
        since = (self.engine.stats.frames - self.last_notice) / self.options.fps
        if since >= self.notice_interval:
            self._splice_notice()

    def _splice_lines(self) -> None:
        """Operator lines whose renders became ready: spliced in, with when they air."""
        rendering = db.session.scalars(
            select(LiveLine).where(
                LiveLine.room_id == self.room.id, LiveLine.status == LiveLineStatus.RENDERING
            )
        ).all()
        for line in rendering:
            render = db.session.get(Render, line.render_id) if line.render_id else None
            if render is None or render.status in control.FAILED_RENDERS:
                line.status = LiveLineStatus.FAILED
                control.log(
                    self.room, EventTag.LIVE_LINE, line.operator_id, line=line.id, status="failed"
                )
            elif service.ready_render(render.id) is not None:
                airs_in = self._splice(render, f"line:{line.id}")
                line.status = LiveLineStatus.QUEUED
                line.airs_at = utcnow() + timedelta(seconds=airs_in)

    def _mark_aired(self) -> None:
        """Answers, lines and notices that went on air since the last poll."""
        aired = self.engine.aired[self.seen_aired :]
        self.seen_aired += len(aired)
        for entry in aired:
            if entry.key in self.ahead:
                self.ahead.remove(entry.key)
            if entry.key == "notice":
                self.last_notice = entry.frame
            elif entry.key.startswith("line:"):
                self._line_aired(entry.key.split(":", 1)[1])
            if not entry.key.startswith("answer:"):
                continue
            render_id = entry.key.split(":", 1)[1]
            self.spliced.pop(render_id, None)
            for comment in db.session.scalars(
                select(LiveComment).where(
                    LiveComment.room_id == self.room.id,
                    LiveComment.status == LiveCommentStatus.QUEUED,
                    LiveComment.render_id == render_id,
                )
            ):
                comment.status, comment.aired_at = LiveCommentStatus.AIRED, utcnow()

    def _line_aired(self, line_id: str) -> None:
        line = db.session.get(LiveLine, line_id)
        if line is not None and line.status == LiveLineStatus.QUEUED:
            line.status, line.aired_at = LiveLineStatus.AIRED, utcnow()
            control.log(self.room, EventTag.LIVE_LINE_AIRED, line.operator_id, line=line.id)

    def _finish(self, reason: str) -> None:
        db.session.rollback()
        stats = self.engine.stats
        self.room.stats = {
            "frames": stats.frames,
            "idle_frames": stats.idle_frames,
            "late_frames": stats.late_frames,
            "cuts_for_answers": stats.cuts,
            "max_lag_s": round(stats.max_lag_s, 3),
            "aired": [e.key for e in self.engine.aired][-200:],
            "aired_frames": [e.frame for e in self.engine.aired][-200:],
            "outputs": {k: asdict(v) for k, v in stats.relays.items()},
            "error": self.engine.error,
        }
        self._mark_aired()
        for line in db.session.scalars(
            select(LiveLine).where(
                LiveLine.room_id == self.room.id,
                LiveLine.status.in_((LiveLineStatus.RENDERING, LiveLineStatus.QUEUED)),
            )
        ):
            line.status = LiveLineStatus.FAILED  # the show ended before it aired
        service.end(self.room, reason)
        db.session.commit()
        shutil.rmtree(self.clips, ignore_errors=True)  # plaintext likeness: never kept
        shutil.rmtree(hls_dir(self.room), ignore_errors=True)
