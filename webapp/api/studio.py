"""Avatars, training and renders (API.md): thin views over webapp.studio.service."""

from __future__ import annotations

from flask import Response, jsonify, request

from ..models import Avatar, Render
from ..ownership import get_owned_or_404
from ..studio import delivery, export3d, service
from . import bp
from .auth import api_user, token_required
from .routes import _json_body

RENDER_OPTIONS = ("language", "background", "tone", "style", "framing")


@bp.post("/avatars")
@token_required
def create_avatar():
    body = _json_body("subject_id", "name", style=str, framing=str)
    avatar = service.create_avatar(
        api_user(),
        body["subject_id"],
        body["name"],
        body.get("style") or "real2d",
        body.get("framing") or "half",
    )
    return jsonify(id=avatar.id, status=avatar.status), 201


@bp.post("/avatars/<avatar_id>/train")
@token_required
def train_avatar(avatar_id: str):
    job = service.start_training(get_owned_or_404(Avatar, avatar_id, api_user().id))
    return jsonify(job_id=job.id), 202


@bp.get("/avatars/<avatar_id>/model.glb")
@token_required
def export_model(avatar_id: str):
    """The avatar's 3D model (owner only, consent checked, registered and audited)."""
    data, content = export3d.export_glb(get_owned_or_404(Avatar, avatar_id, api_user().id))
    return Response(
        data,
        mimetype=export3d.GLB_MIME,
        headers={"Content-Disposition": f'attachment; filename="dhf-{content.content_id}.glb"'},
    )


@bp.post("/renders")
@token_required
def create_render():
    body = _json_body("avatar_id", "script", **dict.fromkeys(RENDER_OPTIONS, str))
    render = service.create_render(api_user(), body["avatar_id"], body["script"], body)
    return jsonify(id=render.id, status=render.status), 202


@bp.get("/renders/<render_id>")
@token_required
def get_render(render_id: str):
    return jsonify(delivery.render_status(get_owned_or_404(Render, render_id, api_user().id)))


@bp.get("/renders/<render_id>/download")
def download_render(render_id: str):
    """With a bearer token, or with the signed, expiring ``t`` of ``download_url``."""
    if request.args.get("t"):
        render = delivery.render_for_link(render_id, request.args["t"])
    else:
        render = token_required(lambda: get_owned_or_404(Render, render_id, api_user().id))()
    chunks = delivery.stream_output(render, actor_id=render.owner_id)
    return Response(
        chunks,
        mimetype="video/mp4",
        headers={"Content-Disposition": f'attachment; filename="dhf-{render.content_id}.mp4"'},
    )
