"""The public watch page ``/live/<slug>`` and the HLS files it plays.

The stream is served only while the show is live and the likeness may be used; the page
says it is an AI avatar (R26) and takes comments through the API
(``POST /api/v1/live/<slug>/comments``, rate-limited per IP).
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, render_template, send_from_directory

from .. import likeness
from ..errors import Forbidden, NotFound
from ..extensions import db
from ..models import Avatar, LiveRoom, LiveRoomStatus, Subject
from . import service
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
