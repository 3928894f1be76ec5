"""Live shows (issue 19): rooms, going live and stopping, and viewers' comments.

Owners (bearer token): ``/live-rooms`` CRUD, ``start``, ``stop``, the comment list, the
comment ingest for platforms' comment webhooks (rate-limited per room), operator lines and
the operator log. Viewers (public,
rate-limited per IP): ``/live/<slug>/comments`` from the watch page.
"""

from __future__ import annotations

from flask import jsonify, request
from sqlalchemy import select

from .. import ratelimits
from ..extensions import db
from ..live import control, service
from ..models import LiveRoom
from ..ownership import get_owned_or_404
from . import bp
from .auth import api_user, token_required
from .routes import _json_body


def _room(room_id: str) -> LiveRoom:
    return get_owned_or_404(LiveRoom, room_id, api_user().id)


@bp.get("/live-rooms")
@token_required
def list_live_rooms():
    """The account's live rooms."""
    rows = db.session.scalars(
        select(LiveRoom).where(LiveRoom.owner_id == api_user().id).order_by(LiveRoom.created_at)
    )
    return jsonify(live_rooms=[service.room_json(service.sync(r)) for r in rows])


@bp.post("/live-rooms")
@token_required
def create_live_room():
    """Plan a show: its segments are queued as renders (moderated, billed, stamped)."""
    body = _json_body(
        "avatar_id",
        "name",
        segments=list,
        idle_script=str,
        loop=bool,
        max_seconds=int,
        starts_at=str,
        outputs=list,
        qa_deployment_id=str,
    )
    room = service.create_room(api_user(), body)
    return jsonify(service.room_json(room)), 202


@bp.get("/live-rooms/<room_id>")
@token_required
def get_live_room(room_id: str):
    """A room: its plan with each clip's render status, outputs (keys masked), state."""
    return jsonify(service.room_json(service.sync(_room(room_id))))


@bp.patch("/live-rooms/<room_id>")
@token_required
def update_live_room(room_id: str):
    """Change name, loop, max_seconds, starts_at, outputs or qa_deployment_id."""
    body = _json_body(
        name=str, loop=bool, max_seconds=int, starts_at=str, outputs=list, qa_deployment_id=str
    )
    return jsonify(service.room_json(service.update_room(_room(room_id), body)))


@bp.delete("/live-rooms/<room_id>")
@token_required
def delete_live_room(room_id: str):
    """Delete a room that is not live (its renders stay registered)."""
    service.delete_room(_room(room_id))
    return "", 204


@bp.post("/live-rooms/<room_id>/start")
@token_required
def start_live_room(room_id: str):
    """Go live: 202 with the show's job once the idle clip and first segment are ready."""
    room = _room(room_id)
    job = service.start(room, api_user())
    return jsonify(job_id=job.id, **service.room_json(room)), 202


@bp.post("/live-rooms/<room_id>/stop")
@token_required
def stop_live_room(room_id: str):
    """End the show: the stream closes cleanly within a second."""
    return jsonify(service.room_json(service.stop(_room(room_id), api_user())))


@bp.get("/live-rooms/<room_id>/comments")
@token_required
def list_live_comments(room_id: str):
    """Comments, newest first; ``?status=unmatched`` is the operator's list."""
    rows = service.comments(_room(room_id), request.args.get("status"))
    return jsonify(comments=[service.comment_json(c) for c in rows])


@bp.post("/live-rooms/<room_id>/comments")
@token_required
@ratelimits.live_comments
def post_live_comment(room_id: str):
    """Ingest a platform's comment {text, author?}: moderated, matched, maybe answered."""
    body = _json_body("text", author=str)
    comment = service.add_comment(
        _room(room_id), body["text"], source="api", author=body.get("author")
    )
    return jsonify(service.comment_json(comment)), 201


@bp.post("/live/<slug>/comments")
@ratelimits.live_watch
def watch_comment(slug: str):
    """A viewer's question from the watch page {text}: moderated, matched, maybe answered."""
    body = _json_body("text")
    room = service.room_by_slug(slug) if service.valid_slug(slug) else None
    if room is None:
        from ..errors import NotFound

        raise NotFound("No show at this address.")
    comment = service.add_comment(room, body["text"], source="watch")
    return jsonify(id=comment.id, status=comment.status), 201


@bp.get("/live-rooms/<room_id>/lines")
@token_required
def list_live_lines(room_id: str):
    """The operator's typed lines, newest first: state and when each airs (estimate)."""
    room = _room(room_id)
    return jsonify(lines=[control.line_json(line) for line in control.lines(room)])


@bp.post("/live-rooms/<room_id>/lines")
@token_required
def post_live_line(room_id: str):
    """Type a line {text} during the show: moderated, rendered on the gpu queue (billed like
    a render), spliced in at the next boundary once ready. Needs a KYC-verified account."""
    body = _json_body("text")
    line = control.add_line(_room(room_id), api_user(), body["text"])
    return jsonify(control.line_json(line)), 201


@bp.get("/live-rooms/<room_id>/log")
@token_required
def live_operator_log(room_id: str):
    """The room's operator log (who drove the show and when) and its credits in minutes."""
    room = _room(room_id)
    return jsonify(log=control.operator_log(room), credits=control.credits_json(room))
