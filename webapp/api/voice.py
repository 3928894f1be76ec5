"""Voice prompts and voice samples (one validated take per sentence)."""

from __future__ import annotations

from flask import jsonify, request

from ..models import Avatar
from ..ownership import get_owned_or_404
from ..voice import service
from . import bp
from .auth import api_user, token_required


@bp.get("/voice-prompts")
@token_required
def voice_prompts():
    """The sentences the speaker reads, in reading order: {prompts: [{id, text}]}."""
    return jsonify(prompts=service.prompt_list())


@bp.post("/avatars/<avatar_id>/voice-samples")
@token_required
def upload_voice_sample(avatar_id: str):
    """One validated take (multipart `audio` + `prompt_id` or `text`): {count, remaining}.

    A bad take is refused with 422 and its reason code; a new take of a sentence replaces
    the earlier one."""
    avatar = get_owned_or_404(Avatar, avatar_id, api_user().id)
    counts = service.add_sample(
        avatar, request.files.get("audio"), request.form.get("text"), request.form.get("prompt_id")
    )
    return jsonify(counts), 201
