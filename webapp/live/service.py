"""Live rooms: the plan, output URLs, going live and stopping, and viewers' comments.

Every scripted thing a show says is an ordinary render (``studio.service.create_render``):
moderated, billed from render credits, counted in the daily quota, stamped (labels,
watermark, AIGC tag, C2PA) and registered, so a clip recorded from the stream resolves in
``verify``. Its clips are stamped without the audible notice (purpose ``live_clip``); the
room's notice clip (purpose ``live_notice``, every label) airs first and then every
``LIVE_NOTICE_INTERVAL_S``. A room may go live once its notice, idle clip and first segment
are ready; the rest render while it plays. Comments never reach synthesis: they are matched
against the attached Q&A deployment's approved answers, whose clips are already rendered.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import current_app
from sqlalchemy import func, select

from compliance.audit import EventTag
from compliance.moderation import moderate

from .. import jobs, likeness, safe_http, sanctions
from ..audit import record_event
from ..billing import ledger
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..extensions import db
from ..models import (
    Avatar,
    AvatarStatus,
    DeploymentStatus,
    Job,
    JobStatus,
    LiveComment,
    LiveCommentStatus,
    LiveLine,
    LiveRoom,
    LiveRoomStatus,
    LiveSegment,
    QADeployment,
    QASet,
    Render,
    RenderStatus,
    User,
    utcnow,
)
from ..ownership import get_owned_or_404, get_referenced
from ..studio import service as studio
from . import cards, control, schedule

MAX_OUTPUT_URL = 500
DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443}
DEFAULT_IDLE = "Welcome to the show. Ask your questions in the comments."
# the room's notice clip (purpose live_notice: it opens with the spoken notice, R9); every
# other clip of the show is a live_clip, stamped without it (R26, see README)
NOTICE_SCRIPT = (
    "You are watching an AI avatar, not a live person. It is a digital likeness, used with "
    "that person's consent, and it says only what its owner approved."
)


class UnsafeOutput(InvalidInput):
    """An output URL that is malformed or points somewhere the server must not stream to."""

    code = "bad_output_url"


def _cfg(name: str) -> Any:
    return current_app.config[f"LIVE_{name}"]


def _text(value: Any, field: str, limit: int, *, required: bool = True) -> str:
    text = " ".join(value.split()) if isinstance(value, str) else ""
    if required and not text:
        raise InvalidInput(f"Write the {field}.", code="missing_fields")
    if len(text) > limit:
        raise InvalidInput(f"The {field} is limited to {limit} characters.", code="too_long")
    return text


# -- output URLs ----------------------------------------------------------------------------


def check_output(url: str) -> tuple[str, str | None]:
    """Validate one ingest URL and resolve its host now; returns ``(dial URL, tcUrl)``.

    rtmp:// and rtmps:// only, at most 500 characters, no user name or password, a path
    naming the application and stream key; every address the host resolves to must be
    public (``safe_http.forbidden``; loopback only with ``LIVE_ALLOW_LOOPBACK``, tests).
    An rtmp:// URL is dialled at the checked address with the original as its tcUrl, so
    the name is not looked up again; rtmps:// needs the name for TLS and is dialled as is.
    """
    if not isinstance(url, str) or len(url) > MAX_OUTPUT_URL:
        raise UnsafeOutput(f"Each output URL is a string of at most {MAX_OUTPUT_URL} characters.")
    if any(c.isspace() or ord(c) < 32 or c == "\\" for c in url):
        raise UnsafeOutput("Output URLs must not contain spaces, control characters or '\\'.")
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise UnsafeOutput("Output URLs are rtmp:// or rtmps:// addresses with a host name.")
    if "@" in parts.netloc:
        raise UnsafeOutput("Output URLs must not contain a user name or password.")
    if len([p for p in parts.path.split("/") if p]) < 2:
        raise UnsafeOutput("Give the whole ingest URL: rtmp://host/application/stream-key.")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise UnsafeOutput("The output URL has an invalid port.") from None
    address = _public_address(parts.hostname, port)
    if parts.scheme == "rtmps":
        return url, None
    host = f"[{address}]" if ":" in address else address
    dial = urlunsplit(("rtmp", f"{host}:{port}", parts.path, parts.query, ""))
    app = parts.path.strip("/").split("/")[0]
    return dial, f"rtmp://{parts.netloc}/{app}"


def _public_address(host: str, port: int) -> str:
    try:
        addresses = safe_http.resolve(host, port)
    except (OSError, UnicodeError):
        raise UnsafeOutput(f"The output host {host} does not resolve: check the name.") from None
    allow_loopback = bool(_cfg("ALLOW_LOOPBACK"))
    for address in addresses or ["0.0.0.0"]:
        why = safe_http.forbidden(
            ipaddress.ip_address(address.split("%", 1)[0]), allow_loopback=allow_loopback
        )
        if why:
            raise UnsafeOutput(
                f"The output host {host} resolves to a {why} address ({address}): "
                "live streams go to public ingest servers only."
            )
    return addresses[0].split("%", 1)[0]


def clean_outputs(raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(u, str) for u in raw):
        raise UnsafeOutput('outputs must be a list like ["rtmp://live.example/app/KEY"].')
    out = list(dict.fromkeys(u.strip() for u in raw if u.strip()))
    if len(out) > int(_cfg("MAX_OUTPUTS")):
        raise UnsafeOutput(f"At most {_cfg('MAX_OUTPUTS')} output URLs per show.")
    for url in out:
        check_output(url)
    return out


def masked(url: str) -> str:
    """An output URL as the API shows it: the stream key is a secret."""
    head, _, key = url.rpartition("/")
    return f"{head}/{'*' * 4}{key[-4:]}" if len(key) > 8 else f"{head}/{'*' * 4}"


# -- rooms ----------------------------------------------------------------------------------


def _segments(raw: Any) -> list[tuple[str, str, dict[str, Any] | None]]:
    """``(title, script, card)`` per segment, every card checked (``cards.parse``)."""
    if not isinstance(raw, list) or not raw or not all(isinstance(s, dict) for s in raw):
        raise InvalidInput(
            'segments must be a list like [{"title": "Intro", "script": "..."}].',
            code="bad_segments",
        )
    limit = int(_cfg("MAX_SEGMENTS"))
    if len(raw) > limit:
        raise InvalidInput(f"A show has at most {limit} segments.", code="bad_segments")
    chars = int(current_app.config["RENDER_MAX_CHARS"])
    out = []
    for n, seg in enumerate(raw, start=1):
        title = _text(seg.get("title") or f"Segment {n}", "segment title", 120)
        script = _text(seg.get("script"), f"script of segment {n}", chars)
        out.append((title, script, cards.parse(seg.get("card"), n)))
    return out


def _max_seconds(raw: Any) -> int:
    value = _cfg("DEFAULT_SECONDS") if raw is None else raw
    limit = int(_cfg("MAX_SECONDS"))
    if not isinstance(value, int) or isinstance(value, bool) or not 10 <= value <= limit:
        raise InvalidInput(
            f"max_seconds must be a whole number from 10 to {limit}.", code="bad_field"
        )
    return value


def _starts_at(raw: Any) -> datetime | None:
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(str(raw))
    except ValueError:
        raise InvalidInput(
            "starts_at must be an ISO 8601 time like 2026-12-24T18:00:00+00:00.",
            code="bad_field",
        ) from None
    if when.tzinfo is None:
        raise InvalidInput("starts_at needs a time zone (e.g. +00:00).", code="bad_field")
    return when


def _deployment(owner: User, avatar: Avatar, dep_id: Any) -> QADeployment | None:
    if dep_id is None:
        return None
    dep = get_owned_or_404(QADeployment, str(dep_id), owner.id)
    if dep.avatar_id != avatar.id or dep.status == DeploymentStatus.STOPPED:
        raise InvalidInput(
            "Attach a Q&A deployment of this same avatar (its answers are rendered in its "
            "likeness).",
            code="bad_deployment",
        )
    return dep


def _precheck(owner: User, avatar: Avatar, scripts: list[str]) -> None:
    """Refuse before rendering anything: every script moderated, credits and quota."""
    for n, script in enumerate(scripts):
        verdict = moderate(script)
        if not verdict.allowed:
            what = "The idle script" if n == 0 else f"Segment {n}"
            raise InvalidInput(
                f"{what} falls under our policy on {verdict.category} content "
                f'("{verdict.matched}"); change it and try again.',
                code=f"moderation_{verdict.category}",
            )
    need = sum(studio.estimate_seconds(s) for s in scripts)
    have = ledger.balance(owner.id)
    if have < need:
        raise ledger.InsufficientCredits(
            f"Rendering this show's {len(scripts)} clips needs {need} s of credits; you have "
            f"{max(have, 0)} s. Buy render credits on the pricing page."
        )
    since = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    quota = int(current_app.config["RENDERS_PER_DAY"])
    today = db.session.scalar(
        select(func.count(Render.id)).where(Render.owner_id == owner.id, Render.created_at >= since)
    )
    if (today or 0) + len(scripts) > quota:
        raise studio.QuotaExceeded(
            f"This show needs {len(scripts)} renders; your daily limit is {quota}."
        )


def create_room(owner: User, body: dict[str, Any], *, enqueue: bool = True) -> LiveRoom:
    """Validate everything, then queue the idle clip and every segment as renders."""
    avatar = get_owned_or_404(Avatar, str(body.get("avatar_id") or ""), owner.id)
    sanctions.require_may_create(owner)
    likeness.require(avatar.subject, avatar)
    if avatar.status != AvatarStatus.READY:
        raise Forbidden("This avatar is not trained yet.", code="avatar_not_ready")
    name = _text(body.get("name"), "show name", 120)
    segments = _segments(body.get("segments"))
    idle = _text(body.get("idle_script") or DEFAULT_IDLE, "idle script", 600)
    room = LiveRoom(
        owner_id=owner.id,
        avatar_id=avatar.id,
        name=name,
        slug=secrets.token_urlsafe(12),
        loop=bool(body.get("loop", False)),
        idle_script=idle,
        max_seconds=_max_seconds(body.get("max_seconds")),
        starts_at=_starts_at(body.get("starts_at")),
        outputs=clean_outputs(body.get("outputs")),
        stats={},
    )
    dep = _deployment(owner, avatar, body.get("qa_deployment_id"))
    room.qa_deployment_id = dep.id if dep else None
    _precheck(owner, avatar, [idle, *(script for _, script, _ in segments), NOTICE_SCRIPT])
    db.session.add(room)
    db.session.commit()
    room.notice_render_id = studio.create_render(
        owner, avatar.id, NOTICE_SCRIPT, {}, enqueue=enqueue, purpose="live_notice"
    ).id
    room.idle_render_id = _clip_render(owner, avatar.id, idle, enqueue)
    for position, (title, script, raw_card) in enumerate(segments):
        card = cards.store(raw_card, avatar.subject_id)
        render_id = _clip_render(owner, avatar.id, script, enqueue, card=card)
        db.session.add(
            LiveSegment(
                room_id=room.id,
                position=position,
                title=title,
                script=script,
                render_id=render_id,
                card=card,
            )
        )
    room.status = LiveRoomStatus.RENDERING
    db.session.commit()
    if enqueue:
        schedule.arm(room)
    return sync(room)


def _clip_render(
    owner: User, avatar_id: str, script: str, enqueue: bool, card: dict[str, Any] | None = None
) -> str:
    """A clip the show airs between its notices: stamped without the audible notice (a
    segment's product card drawn on it)."""
    return studio.create_render(
        owner, avatar_id, script, {}, enqueue=enqueue, purpose="live_clip", card=card
    ).id


def update_room(room: LiveRoom, body: dict[str, Any]) -> LiveRoom:
    """Name, loop, length, schedule, outputs and Q&A deployment (not while live)."""
    if room.status == LiveRoomStatus.LIVE:
        raise Conflict("Stop the show before changing it.", code="live")
    if "name" in body:
        room.name = _text(body["name"], "show name", 120)
    if "loop" in body:
        room.loop = bool(body["loop"])
    if "max_seconds" in body:
        room.max_seconds = _max_seconds(body["max_seconds"])
    if "starts_at" in body:
        room.starts_at = _starts_at(body["starts_at"])
    if "outputs" in body:
        room.outputs = clean_outputs(body["outputs"])
    if "qa_deployment_id" in body:
        avatar = get_referenced(Avatar, room.avatar_id)
        dep = _deployment(get_referenced(User, room.owner_id), avatar, body["qa_deployment_id"])
        room.qa_deployment_id = dep.id if dep else None
    db.session.commit()
    if "starts_at" in body:
        schedule.arm(room)
    return room


def delete_room(room: LiveRoom) -> None:
    if room.status == LiveRoomStatus.LIVE:
        raise Conflict("Stop the show before deleting it.", code="live")
    db.session.delete(room)
    db.session.commit()


def rooms_of_render(render_id: str) -> list[str]:
    """The live rooms that aired (or plan to air) a render: as a segment, as the idle
    loop, or as an answer to a comment (what ``verify`` resolves a recording to)."""
    from ..models import QAClip

    found = set(
        db.session.scalars(select(LiveSegment.room_id).where(LiveSegment.render_id == render_id))
    )
    found |= set(
        db.session.scalars(
            select(LiveRoom.id).where(
                (LiveRoom.idle_render_id == render_id) | (LiveRoom.notice_render_id == render_id)
            )
        )
    )
    found |= set(
        db.session.scalars(select(LiveLine.room_id).where(LiveLine.render_id == render_id))
    )
    found |= set(
        db.session.scalars(
            select(LiveComment.room_id).where(
                LiveComment.render_id == render_id, LiveComment.status == LiveCommentStatus.AIRED
            )
        )
    )
    deployments = select(QAClip.deployment_id).where(QAClip.render_id == render_id)
    found |= set(
        db.session.scalars(select(LiveRoom.id).where(LiveRoom.qa_deployment_id.in_(deployments)))
    )
    return sorted(found)


def segments_of(room: LiveRoom) -> list[LiveSegment]:
    return list(
        db.session.scalars(
            select(LiveSegment).where(LiveSegment.room_id == room.id).order_by(LiveSegment.position)
        )
    )


def ready_render(render_id: str | None) -> Render | None:
    render = db.session.get(Render, render_id) if render_id else None
    ok = render is not None and render.status == RenderStatus.READY and render.output_blob_id
    return render if ok else None


def sync(room: LiveRoom) -> LiveRoom:
    """``rendering`` -> ``ready`` once the notice, the idle clip and the first segment are
    ready (a room planned before notice clips existed has clips that carry the notice)."""
    if room.status in (LiveRoomStatus.RENDERING, LiveRoomStatus.READY):
        segments = segments_of(room)
        notice = room.notice_render_id is None or ready_render(room.notice_render_id)
        ready = bool(notice) and ready_render(room.idle_render_id) is not None and bool(segments)
        ready = ready and ready_render(segments[0].render_id) is not None
        room.status = LiveRoomStatus.READY if ready else LiveRoomStatus.RENDERING
        db.session.commit()
    return room


def _render_state(render_id: str | None) -> str:
    render = db.session.get(Render, render_id) if render_id else None
    return render.status.value if render else "missing"


def room_json(room: LiveRoom) -> dict[str, Any]:
    from flask import url_for

    return {
        "id": room.id,
        "name": room.name,
        "avatar_id": room.avatar_id,
        "qa_deployment_id": room.qa_deployment_id,
        "status": room.status,
        "loop": room.loop,
        "max_seconds": room.max_seconds,
        "starts_at": room.starts_at.isoformat() if room.starts_at else None,
        "schedule": {"state": room.schedule_state, "note": room.schedule_note},
        "outputs": [masked(u) for u in room.outputs],
        "idle": {
            "script": room.idle_script,
            "render_id": room.idle_render_id,
            "status": _render_state(room.idle_render_id),
        },
        "notice": {
            "render_id": room.notice_render_id,
            "status": _render_state(room.notice_render_id),
            "interval_s": int(_cfg("NOTICE_INTERVAL_S")),
        },
        "segments": [
            {
                "id": s.id,
                "position": s.position,
                "title": s.title,
                "script": s.script,
                "render_id": s.render_id,
                "status": _render_state(s.render_id),
                "card": cards.card_json(s.card),
            }
            for s in segments_of(room)
        ],
        "watch_url": url_for("live.watch", slug=room.slug, _external=True),
        "hls_url": url_for("live.hls", slug=room.slug, name="index.m3u8", _external=True),
        "console_url": url_for("live.console", room_id=room.id, _external=True),
        "started_by": room.started_by,
        "started_at": room.started_at.isoformat() if room.started_at else None,
        "ended_at": room.ended_at.isoformat() if room.ended_at else None,
        "stop_reason": room.stop_reason,
        "stats": dict(room.stats or {}),
    }


# -- going live -----------------------------------------------------------------------------


def start(room: LiveRoom, operator: User, *, enqueue: bool = True, scheduled: bool = False) -> Job:
    """Queue the show (``live_show`` job) once its first clips are ready and the likeness
    may be used; records who started it (``scheduled``: its schedule, for its owner)."""
    avatar = get_referenced(Avatar, room.avatar_id)
    likeness.require(avatar.subject, avatar)
    sanctions.require_may_create(operator)
    if room.status == LiveRoomStatus.LIVE:
        raise Conflict("This show is already live.", code="already_live")
    if room.status == LiveRoomStatus.ENDED:
        room.status = LiveRoomStatus.RENDERING
    sync(room)
    if room.status != LiveRoomStatus.READY:
        raise Conflict(
            "The notice, the idle clip and the first segment are still rendering: start "
            "when they are ready.",
            code="not_ready",
        )
    control.require_first_minute(room)
    for url in room.outputs:
        check_output(url)  # DNS may have changed since the room was saved
    room.status, room.started_by = LiveRoomStatus.LIVE, operator.id
    room.started_at = room.ended_at = room.stop_requested_at = room.stop_reason = None
    job = jobs.submit("live_show", room.owner_id, room.id, enqueue=enqueue)
    control.log(
        room,
        EventTag.LIVE_STARTED,
        operator.id,
        avatar=room.avatar_id,
        job=job.id,
        scheduled=scheduled,
    )
    db.session.commit()
    return job


def stop(room: LiveRoom, operator: User) -> LiveRoom:
    """Ask the running show to end (it stops within a second); a show whose job has not
    started yet ends at once."""
    if room.status != LiveRoomStatus.LIVE:
        raise Conflict("This show is not live.", code="not_live")
    room.stop_requested_at = utcnow()
    control.log(room, EventTag.LIVE_STOP_REQUESTED, operator.id)
    job = db.session.scalar(
        select(Job)
        .where(Job.target_id == room.id, Job.kind == "live_show")
        .order_by(Job.created_at.desc())
        .limit(1)
    )
    if job is None or job.status in (JobStatus.QUEUED, JobStatus.RETRYING):
        if job is not None:
            job.status, job.active_key, job.ended_at = JobStatus.CANCELED, None, utcnow()
        end(room, "stopped", actor_id=operator.id)
    db.session.commit()
    return room


def end(room: LiveRoom, reason: str, *, actor_id: str | None = None) -> None:
    """Mark the show ended (the caller commits)."""
    room.status, room.ended_at, room.stop_reason = LiveRoomStatus.ENDED, utcnow(), reason
    control.log(room, EventTag.LIVE_ENDED, actor_id, reason=reason, stats=dict(room.stats or {}))


def room_by_slug(slug: str) -> LiveRoom:
    room = db.session.scalar(select(LiveRoom).where(LiveRoom.slug == slug))
    if room is None:
        raise NotFound("No show at this address.")
    return room


# -- comments -------------------------------------------------------------------------------


def add_comment(room: LiveRoom, text: Any, *, source: str, author: Any = None) -> LiveComment:
    """Store a viewer's comment: refused by moderation, matched to an approved answer
    (queued: its clip is spliced in at the next boundary) or listed for the operator."""
    if room.status != LiveRoomStatus.LIVE:
        raise Conflict(
            "This show is not live: comments are taken during the show.", code="not_live"
        )
    text = _text(text, "comment", int(_cfg("MAX_COMMENT_CHARS")))
    name = _text(author, "author", 80, required=False) or None
    comment = LiveComment(room_id=room.id, source=source, author=name, text=text)
    verdict = moderate(text)
    if not verdict.allowed:
        comment.status = LiveCommentStatus.REJECTED
    else:
        _match(room, comment)
    db.session.add(comment)
    db.session.flush()
    record_event(
        EventTag.LIVE_COMMENT,
        data={
            "room": room.id,
            "comment": comment.id,
            "status": comment.status.value,
            "category": None if verdict.allowed else verdict.category,
        },
    )
    db.session.commit()
    return comment


def _match(room: LiveRoom, comment: LiveComment) -> None:
    from ..qa import deploy
    from ..qa import service as qa

    dep = db.session.get(QADeployment, room.qa_deployment_id) if room.qa_deployment_id else None
    if dep is None:
        return
    qaset = get_referenced(QASet, dep.set_id)
    found = qa.matcher_for(qaset).answer_for(comment.text)
    if found is None:
        return
    comment.item_id, comment.score = found.item_id, round(found.score, 4)
    clip = deploy.ready_clip(dep, found.item_id)
    if clip is not None:
        comment.status, comment.render_id = LiveCommentStatus.QUEUED, clip.id


def comments(room: LiveRoom, status: str | None = None, limit: int = 200) -> list[LiveComment]:
    query = select(LiveComment).where(LiveComment.room_id == room.id)
    if status:
        if status not in {s.value for s in LiveCommentStatus}:
            raise InvalidInput(
                "status is one of queued, aired, unmatched, rejected.", code="bad_field"
            )
        query = query.where(LiveComment.status == status)
    return list(db.session.scalars(query.order_by(LiveComment.created_at.desc()).limit(limit)))


def comment_json(c: LiveComment) -> dict[str, Any]:
    return {
        "id": c.id,
        "source": c.source,
        "author": c.author,
        "text": c.text,
        "status": c.status,
        "item_id": c.item_id,
        "score": c.score,
        "created_at": c.created_at.isoformat(),
        "aired_at": c.aired_at.isoformat() if c.aired_at else None,
    }


_SLUG = re.compile(r"^[A-Za-z0-9_-]{8,32}$")


def valid_slug(slug: str) -> bool:
    return bool(_SLUG.fullmatch(slug))
