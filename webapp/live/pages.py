"""The owner's live-show pages: plan a show, watch its clips render, start and stop it.

Every action calls the same service functions as ``/api/v1/live-rooms`` (nothing is
checked here that the service does not check itself); a refusal comes back as a flash
message with the server's words and its error code. The room page polls ``status.json``
(the API's room document) for each clip's render progress and the show's state.
"""

from __future__ import annotations

import itertools
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from ..errors import DomainError
from ..extensions import db
from ..models import Avatar, AvatarStatus, DeploymentStatus, LiveRoom, QADeployment
from ..ownership import get_owned_or_404
from . import service

bp = Blueprint("live_pages", __name__, url_prefix="/studio/live")

SEGMENT_SLOTS = 3  # empty segment rows on a new plan (the page adds more on request)


def _room(room_id: str) -> LiveRoom:
    return get_owned_or_404(LiveRoom, room_id, current_user.id)


def _failed(exc: DomainError) -> None:
    db.session.rollback()
    flash(f"{exc.message} ({exc.code})", "error")


def _choices() -> dict[str, Any]:
    """The owner's trained avatars and running Q&A deployments, for the form's menus."""
    avatars = db.session.scalars(
        select(Avatar)
        .where(Avatar.owner_id == current_user.id, Avatar.status == AvatarStatus.READY)
        .order_by(Avatar.created_at)
    )
    deployments = db.session.scalars(
        select(QADeployment)
        .where(
            QADeployment.owner_id == current_user.id,
            QADeployment.status != DeploymentStatus.STOPPED,
        )
        .order_by(QADeployment.created_at)
    )
    return {"avatars": list(avatars), "deployments": list(deployments)}


def _starts_at(value: str) -> str | None:
    """A ``datetime-local`` value is the page's UTC time (the form says so)."""
    value = value.strip()
    if not value:
        return None
    has_zone = value.endswith("Z") or "+" in value[10:] or value[10:].count("-")
    return value if has_zone else f"{value}+00:00"


def body_from(form: MultiDict[str, str], *, plan: bool) -> dict[str, Any]:
    """The API's request body from the page's form (``plan``: the segments too)."""
    body: dict[str, Any] = {
        "name": form.get("name", ""),
        "loop": form.get("loop") == "on",
        "starts_at": _starts_at(form.get("starts_at", "")),
        "outputs": [u for u in form.get("outputs", "").splitlines() if u.strip()],
        "qa_deployment_id": form.get("qa_deployment_id") or None,
    }
    seconds = form.get("max_minutes", "").strip()
    if seconds:
        try:
            body["max_seconds"] = round(float(seconds) * 60)
        except ValueError:
            body["max_seconds"] = seconds  # the service explains the limits
    if plan:
        body["avatar_id"] = form.get("avatar_id", "")
        body["idle_script"] = form.get("idle_script", "")
        body["segments"] = _segments(form)
    return body


def _segments(form: MultiDict[str, str]) -> list[dict[str, Any]]:
    """The plan's rows (empty ones left out), each with its product card if it has one."""
    rows = itertools.zip_longest(
        form.getlist("segment_title"),
        form.getlist("segment_script"),
        form.getlist("card_title"),
        form.getlist("card_price"),
        fillvalue="",
    )
    out = []
    for n, (title, script, card_title, price) in enumerate(rows):
        picture = _picture(n)
        if not (title.strip() or script.strip() or card_title.strip() or picture):
            continue
        segment: dict[str, Any] = {"title": title, "script": script}
        if card_title.strip() or price.strip() or picture:
            segment["card"] = {"title": card_title, "price": price, "image": picture}
        out.append(segment)
    return out


def _picture(n: int) -> bytes | None:
    """Row ``n``'s card picture, read no further than one byte past its limit (the
    service refuses it then, before decoding)."""
    upload = request.files.get(f"card_image_{n}")
    if upload is None or not upload.filename:
        return None
    try:
        return upload.stream.read(int(current_app.config["LIVE_CARD_IMAGE_MAX_BYTES"]) + 1)
    finally:
        upload.close()  # a large upload is spooled to a temporary file


@bp.get("")
@login_required
def index():
    rooms = db.session.scalars(
        select(LiveRoom)
        .where(LiveRoom.owner_id == current_user.id)
        .order_by(LiveRoom.created_at.desc())
    )
    return render_template("live/rooms.html", rooms=[service.sync(r) for r in rooms])


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    form = request.form if request.method == "POST" else MultiDict()
    if request.method == "POST":
        try:
            room = service.create_room(current_user, body_from(request.form, plan=True))
        except DomainError as exc:
            _failed(exc)
            return render_template("live/plan.html", form=form, slots=0, **_choices()), 422
        flash("Show planned: its clips are rendering.", "ok")
        return redirect(url_for("live_pages.room", room_id=room.id))
    return render_template("live/plan.html", form=form, slots=SEGMENT_SLOTS, **_choices())


@bp.get("/<room_id>")
@login_required
def room(room_id: str):
    room = service.sync(_room(room_id))
    return render_template("live/room.html", room=room, doc=service.room_json(room), **_choices())


@bp.get("/<room_id>/status.json")
@login_required
def status(room_id: str):
    return jsonify(service.room_json(service.sync(_room(room_id))))


@bp.post("/<room_id>")
@login_required
def save(room_id: str):
    return _act(room_id, "save")


@bp.post("/<room_id>/<any(start, stop):action>")
@login_required
def act(room_id: str, action: str):
    return _act(room_id, action)


def _act(room_id: str, action: str) -> Response:
    """Save the settings, go live or stop; back to the room page with the outcome."""
    room = _room(room_id)
    try:
        if action == "save":
            body = body_from(request.form, plan=False)
            if not body["outputs"] and request.form.get("clear_outputs") != "on":
                body.pop("outputs")  # the saved keys are masked on the page: keep them
            service.update_room(room, body)
            flash("Saved.", "ok")
        elif action == "start":
            service.start(room, current_user)
            flash("Going live: the stream starts in a second.", "ok")
        else:
            service.stop(room, current_user)
            flash("Stopping the show.", "ok")
    except DomainError as exc:
        _failed(exc)
    return redirect(url_for("live_pages.room", room_id=room_id))


@bp.post("/<room_id>/delete")
@login_required
def delete(room_id: str):
    try:
        service.delete_room(_room(room_id))
    except DomainError as exc:
        _failed(exc)
        return redirect(url_for("live_pages.room", room_id=room_id))
    flash("Show deleted (its clips stay registered for verification).", "ok")
    return redirect(url_for("live_pages.index"))
