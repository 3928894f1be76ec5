"""Voice-sample services: the prompts, and storing a validated take (one per prompt)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from compliance import media
from compliance.audit import EventTag
from pipeline.consent_media import voice_embedding
from pipeline.voice import prompts
from pipeline.voice.validate import check_file

from .. import likeness
from ..audit import record_event
from ..consent import binding
from ..errors import InvalidInput
from ..extensions import db
from ..models import Avatar, Upload, UploadStatus
from ..storage import store, subject_key, vault

KIND = "voice_sample"


def prompt_list() -> list[dict[str, str]]:
    return [{"id": p.id, "text": p.text} for p in prompts.load()]


def sentence_for(text: str | None, prompt_id: str | None) -> tuple[str, str | None]:
    """(sentence, prompt id or None) from a ``prompt_id`` or a free ``text``."""
    if prompt_id:
        prompt = prompts.by_id().get(prompt_id)
        if prompt is None:
            raise InvalidInput(f"No voice prompt with id {prompt_id}.", code="unknown_prompt")
        return prompt.text, prompt.id
    if text and text.strip():
        return text.strip(), None
    raise InvalidInput(
        "Send the sentence you read as 'text', or its 'prompt_id'.", code="missing_text"
    )


def samples(avatar: Avatar) -> list[Upload]:
    query = select(Upload).where(Upload.avatar_id == avatar.id, Upload.kind == KIND)
    return list(db.session.scalars(query.order_by(Upload.created_at)))


def progress(avatar: Avatar) -> dict[str, int]:
    count = len(samples(avatar))
    return {"count": count, "remaining": max(len(prompts.load()) - count, 0)}


def _validate(file: FileStorage, sentence: str) -> tuple[dict[str, Any], np.ndarray | None]:
    """Run the take checks on a temporary copy; raise 422 with the reason code if bad.
    Returns the take's facts and its speaker embedding."""
    fd, tmp = tempfile.mkstemp(prefix="dhf-take-")
    try:
        with os.fdopen(fd, "wb") as out:
            file.save(out)
        verdict = check_file(tmp, sentence)
        voice = voice_embedding(media.audio(tmp, 16000, 60.0)) if verdict.ok else None
    finally:
        os.unlink(tmp)
    if not verdict.ok:
        raise InvalidInput(verdict.message or "The take was rejected.", code=verdict.reason)
    return verdict.info, voice


def _same_voice_as_consent(avatar: Avatar, voice: np.ndarray | None) -> None:
    """A take must be read by the person who gave consent (R4): 422 otherwise."""
    if voice is None:
        return
    found = binding.check_arrival(avatar.subject, take_voices=voice[None])
    hard = [r for r in found.reasons if r not in binding.REVIEW]
    if hard:
        record_event(
            EventTag.UPLOAD_REFUSED,
            actor_id=avatar.owner_id,
            data={"avatar": avatar.id, "reasons": [str(r) for r in hard], "scores": found.scores},
        )
        db.session.commit()
        raise InvalidInput(binding.MESSAGES[hard[0]], code=str(hard[0]))


def add_sample(
    avatar: Avatar, file: FileStorage | None, text: str | None, prompt_id: str | None
) -> dict[str, int]:
    """Validate and store one take; a new take of the same sentence replaces the old one."""
    if file is None or not file.filename:
        raise InvalidInput("Attach the recording as multipart field 'audio'.", code="missing_file")
    likeness.require_not_withdrawn(avatar.subject)
    sentence, pid = sentence_for(text, prompt_id)
    info, voice = _validate(file, sentence)
    _same_voice_as_consent(avatar, voice)
    for old in samples(avatar):
        if old.text == sentence:
            vault().delete(subject_key(old), old.blob_id)
            db.session.delete(old)
    file.stream.seek(0)
    blob_id, size, sha = store(avatar.subject_id, file.stream)
    upload = Upload(
        owner_id=avatar.owner_id,
        subject_id=avatar.subject_id,
        avatar_id=avatar.id,
        kind=KIND,
        blob_id=blob_id,
        filename=(file.filename or "take")[:255],
        size=size,
        sha256=sha,
        text=sentence,
        status=UploadStatus.VALID,
        info={**info, "prompt_id": pid},
    )
    db.session.add(upload)
    db.session.flush()
    if voice is not None:
        binding.keep_template(upload, voice=voice)
    record_event(EventTag.UPLOAD_STORED, actor_id=avatar.owner_id, data={"upload": upload.id})
    db.session.commit()
    return progress(avatar)
