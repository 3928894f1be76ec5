"""The public watch page ``/live/<slug>`` and the HLS files it plays; the operator's console.

The stream is served only while the show is live and the likeness may be used; the page
says it is an AI avatar (R26) and takes comments through the API
(``POST /api/v1/live/<slug>/comments``, rate-limited per IP).

The console ``/live-rooms/<id>/console`` is the room owner's, signed in and KYC-verified
(``control.require_operator``, on every request): it polls ``console.json`` (comments, the
unmatched list, lines with when they air, the operator log, credits in minutes) and posts
typed lines (session cookie + CSRF token header). Its JSON endpoints answer errors as JSON.
"""

from __future__ import annotations

import re

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    send_from_directory,
)
from flask_login import current_user, login_required

from .. import likeness
from ..errors import DomainError, Forbidden, InvalidInput, NotFound
from ..extensions import db
from ..models import Avatar, LiveRoom, LiveRoomStatus, Subject
from ..ownership import get_owned_or_404
from . import control, service
from .show import hls_dir

bp = Blueprint("live", __name__)

AI_LABEL = "AI生成 · AI-generated"
AI_NOTICE = (
    "This live show is presented by an AI avatar, not a live person: a digital likeness "
    "used with that person's consent. It only says scripts and answers its owner approved."
)
_HLS_FILE = re.compile(r"^(index\.m3u8|seg[0-9]{6}\.ts)$")


def _room(slug: str) -> LiveRoom:
    if not service.valid_slug(slug):
        raise NotFound("No show at this address.")
    return service.room_by_slug(slug)


@bp.get("/live/<slug>")
def watch(slug: str):
    room = _room(slug)
    return render_template(
        "live/watch.html", room=room, label=AI_LABEL, notice=AI_NOTICE, live=_on_air(room)
    )


def _on_air(room: LiveRoom) -> bool:
    avatar = db.session.get(Avatar, room.avatar_id)
    subject = db.session.get(Subject, avatar.subject_id) if avatar else None
    if avatar is None or subject is None:
        return False
    return room.status == LiveRoomStatus.LIVE and likeness.blocked(subject, avatar) is None


@bp.get("/live/<slug>/hls/<name>")
def hls(slug: str, name: str) -> Response:
    room = _room(slug)
    if not _HLS_FILE.fullmatch(name):
        raise NotFound("No such stream file.")
    if not _on_air(room):
        raise Forbidden("This show is not on air.", code="not_live")
    folder = hls_dir(room)
    if not (folder / name).is_file():
        raise NotFound("The stream is starting: try again in a second.")
    mimetype = "application/vnd.apple.mpegurl" if name.endswith(".m3u8") else "video/mp2t"
    response = send_from_directory(folder, name, mimetype=mimetype, max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response


# -- the operator's console -----------------------------------------------------------------


def _operated(room_id: str) -> LiveRoom:
    room = get_owned_or_404(LiveRoom, room_id, current_user.id)
    control.require_operator(room, current_user)
    return room


@bp.get("/live-rooms/<room_id>/console")
@login_required
def console(room_id: str):
    room = _operated(room_id)
    return render_template(
        "live/console.html",
        room=room,
        label=AI_LABEL,
        max_chars=int(current_app.config["LIVE_MAX_LINE_CHARS"]),
    )


def _json_error(exc: DomainError) -> tuple[Response, int]:
    return jsonify(error=exc.code, message=exc.message), exc.status


@bp.get("/live-rooms/<room_id>/console.json")
@login_required
def console_state(room_id: str):
    """Everything the console shows, polled every second or two."""
    try:
        room = service.sync(_operated(room_id))
    except DomainError as exc:
        return _json_error(exc)
    recent = service.comments(room, limit=50)
    return jsonify(
        status=room.status,
        stop_reason=room.stop_reason,
        comments=[service.comment_json(c) for c in recent],
        unmatched=[service.comment_json(c) for c in service.comments(room, "unmatched", 50)],
        lines=[control.line_json(line) for line in control.lines(room, 50)],
        log=control.operator_log(room, 50),
        credits=control.credits_json(room),
    )


@bp.post("/live-rooms/<room_id>/console/lines")
@login_required
def console_line(room_id: str):
    """A typed line from the console: the same path as ``POST /api/v1/.../lines``."""
    try:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise InvalidInput("Send a JSON object body with Content-Type: application/json.")
        line = control.add_line(_operated(room_id), current_user, body.get("text"))
    except DomainError as exc:
        return _json_error(exc)
    return jsonify(control.line_json(line)), 201
