"""The self-service studio pages: one path from a new avatar to a verified download.

Every action calls the same service functions as the API; errors come back as flash
messages that say what to do. The avatar page polls ``status.json`` for live progress.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from ..consent import service as consent
from ..errors import DomainError
from ..extensions import db
from ..models import Avatar, Render
from ..ownership import get_owned_or_404
from ..portal import service as portal
from . import delivery, export3d, service

bp = Blueprint("studio", __name__, url_prefix="/studio")


def _avatar(avatar_id: str) -> Avatar:
    return get_owned_or_404(Avatar, avatar_id, current_user.id)


def _back(avatar_id: str, message: str | None = None, category: str = "ok") -> Response:
    if message:
        flash(message, category)
    return redirect(url_for("studio.avatar", avatar_id=avatar_id))


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    if request.method == "POST":
        form = request.form
        try:
            subject, token = consent.create_subject(
                current_user,
                form.get("person", ""),
                form.get("relation", "self"),
                form.get("contact_email"),
            )
            avatar = service.create_avatar(
                current_user,
                subject.id,
                form.get("name", ""),
                form.get("style", "real2d"),
                form.get("framing", "half"),
            )
        except DomainError as exc:
            flash(exc.message, "error")
            return render_template("studio/new.html", form=form), 422
        # the link is shown once (only its hash is stored); keep it for this browser session
        session.setdefault("consent_links", {})[avatar.id] = url_for(
            "consent.consent_page", token=token, _external=True
        )
        session.modified = True
        return _back(avatar.id, "Avatar created. Next: the person's own consent.")
    return render_template("studio/new.html", form={})


def _renders(avatar: Avatar) -> list[dict[str, Any]]:
    rows = db.session.scalars(
        select(Render)
        .where(Render.avatar_id == avatar.id)
        .order_by(Render.created_at.desc())
        .limit(20)
    )
    return [delivery.render_status(r) for r in rows]


@bp.get("/avatars/<avatar_id>")
@login_required
def avatar(avatar_id: str):
    avatar = _avatar(avatar_id)
    return render_template(
        "studio/avatar.html",
        avatar=avatar,
        steps=service.steps(avatar),
        renders=_renders(avatar),
        consent_link=session.get("consent_links", {}).get(avatar.id),
        uses=portal.uses(avatar.subject),
        tones=service.TONES,
        styles=service.STYLES,
        framings=service.FRAMINGS,
    )


@bp.get("/avatars/<avatar_id>/3d")
@login_required
def model3d(avatar_id: str):
    """The avatar's 3D model, animated in the browser (three.js, vendored)."""
    return render_template("studio/model3d.html", avatar=_avatar(avatar_id))


@bp.get("/avatars/<avatar_id>/model.glb")
@login_required
def model_glb(avatar_id: str):
    """The same export as ``GET /api/v1/avatars/{id}/model.glb``, for the page."""
    data, _content = export3d.export_glb(_avatar(avatar_id))
    return Response(data, mimetype=export3d.GLB_MIME)


@bp.get("/avatars/<avatar_id>/status.json")
@login_required
def status(avatar_id: str):
    avatar = _avatar(avatar_id)
    return jsonify(
        status=avatar.status,
        steps=service.steps(avatar),
        quality=avatar.quality,
        renders=_renders(avatar),
    )


@bp.post("/avatars/<avatar_id>/video")
@login_required
def upload_video(avatar_id: str):
    avatar = _avatar(avatar_id)
    file = request.files.get("video")
    try:
        service.upload_training_video(
            avatar, file.stream if file else None, file.filename if file else ""
        )
    except DomainError as exc:
        return _back(avatar.id, exc.message, "error")
    return _back(avatar.id, "Video received; we are checking it now.")


@bp.post("/avatars/<avatar_id>/train")
@login_required
def train(avatar_id: str):
    try:
        service.start_training(_avatar(avatar_id))
    except DomainError as exc:
        return _back(avatar_id, exc.message, "error")
    return _back(avatar_id, "Training started: follow its progress below.")


@bp.post("/avatars/<avatar_id>/renders")
@login_required
def render(avatar_id: str):
    form = request.form
    background = form.get("background_colour") if form.get("background") == "colour" else None
    options = {
        "background": background or "original",
        "tone": form.get("tone"),
        "style": form.get("style"),
        "framing": form.get("framing"),
    }
    try:
        service.create_render(current_user, avatar_id, form.get("script", ""), options)
    except DomainError as exc:
        return _back(avatar_id, exc.message, "error")
    return _back(avatar_id, "Rendering: the video appears below when it is ready.")


@bp.get("/renders/<render_id>/file")
@login_required
def render_file(render_id: str):
    """Play or download (``?download=1``) a finished render."""
    render = get_owned_or_404(Render, render_id, current_user.id)
    chunks = delivery.stream_output(render, actor_id=current_user.id)
    disposition = "attachment" if request.args.get("download") else "inline"
    header = f'{disposition}; filename="dhf-{render.content_id}.mp4"'
    return Response(chunks, mimetype="video/mp4", headers={"Content-Disposition": header})


@bp.get("/avatars/<avatar_id>/plots/<name>")
@login_required
def plot(avatar_id: str, name: str):
    """A quality-report plot (PNG, kept encrypted with the subject's data)."""
    from ..storage import vault

    avatar = _avatar(avatar_id)
    blob_id = (avatar.quality.get("plot_blobs") or {}).get(name)
    if not blob_id:
        return jsonify(error="not_found", message="No such plot."), 404
    return Response(vault().read(avatar.subject_id, blob_id), mimetype="image/png")


@bp.get("/avatars/<avatar_id>/samples/<name>")
@login_required
def sample(avatar_id: str, name: str):
    """A quality-report voice sample (WAV, kept encrypted with the subject's data; the clone
    and base voice clips carry the AI notice and watermark): the avatar's owner only."""
    from ..storage import vault

    avatar = _avatar(avatar_id)
    blob_id = ((avatar.quality or {}).get("sample_blobs") or {}).get(name)
    if not blob_id:
        return jsonify(error="not_found", message="No such sample."), 404
    return Response(
        vault().read(avatar.subject_id, blob_id),
        mimetype="audio/wav",
        headers={
            "Content-Disposition": f'inline; filename="dhf-sample-{name}"',
            "Cache-Control": "private, no-store",
        },
    )
