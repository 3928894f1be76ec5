"""The recording page: one sentence at a time, recorded in the browser, checked on upload."""

from __future__ import annotations

from flask import jsonify, render_template, request
from flask_login import current_user, login_required

from ..errors import DomainError
from ..models import Avatar
from ..ownership import get_owned_or_404
from . import bp, service


@bp.get("/avatars/<avatar_id>/voice")
@login_required
def record(avatar_id: str):
    avatar = get_owned_or_404(Avatar, avatar_id, current_user.id)
    done = {u.text for u in service.samples(avatar)}
    sentences = [{**p, "done": p["text"] in done} for p in service.prompt_list()]
    return render_template(
        "voice/record.html", avatar=avatar, sentences=sentences, progress=service.progress(avatar)
    )


@bp.post("/avatars/<avatar_id>/voice/samples")
@login_required
def upload(avatar_id: str):
    """JSON for the page's script, errors included (the app's HTML error pages are for /)."""
    avatar = get_owned_or_404(Avatar, avatar_id, current_user.id)
    form = request.form
    try:
        counts = service.add_sample(avatar, request.files.get("audio"), None, form.get("prompt_id"))
    except DomainError as exc:
        return jsonify(error=exc.code, message=exc.message), exc.status
    return jsonify(counts), 201
