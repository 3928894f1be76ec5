"""Delivering rendered files: signed, expiring download links and the decrypting stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import current_app, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from compliance.audit import EventTag

from .. import likeness
from ..audit import record_event
from ..errors import DomainError, Forbidden, NotFound
from ..extensions import db
from ..models import Avatar, Render, RenderStatus, Subject
from ..ownership import get_referenced
from ..storage import vault
from .service import IN_SESSION

_SALT = "dhf-render-download"


class TakenDown(DomainError):
    status, code = 410, "taken_down"


def refuse_taken_down(render: Render) -> None:
    """410 ``taken_down``: a link that was valid a second ago stops with the takedown."""
    if render.status == RenderStatus.TAKEN_DOWN:
        raise TakenDown("This video was taken down by our trust & safety team.")


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def link_token(render: Render) -> str:
    return link_token_for(render.id, render.content_id)


def link_token_for(render_id: str, content_id: str | None) -> str:
    return _signer().dumps({"render": render_id, "content": content_id})


def render_for_link(render_id: str, token: str) -> Render:
    try:
        data = _signer().loads(token, max_age=int(current_app.config["DOWNLOAD_LINK_TTL"]))
    except SignatureExpired:
        raise Forbidden(
            "This download link expired: open the render again for a new one.", code="link_expired"
        ) from None
    except BadSignature:
        raise Forbidden("This download link is not valid.", code="bad_link") from None
    render = db.session.get(Render, render_id)
    if render is None or data.get("render") != render.id:
        raise NotFound("No such render.", code="not_found")
    refuse_taken_down(render)
    return render


class ConversationOnly(DomainError):
    status, code = 409, "qa_answer_clip"


def conversation_only(render: Render) -> bool:
    """A Q&A answer clip or idle loop, or a live show's clip: stamped without the spoken
    notice, which its conversation or show plays separately (R26), so never exported on its
    own (R9, R10)."""
    return (render.options or {}).get("purpose") in IN_SESSION


def stream_output(
    render: Render, actor_id: str | None, *, for_subject: bool = False
) -> Iterator[bytes]:
    """The stamped MP4, decrypted chunk by chunk; only ready renders of a consenting subject.
    A Q&A answer clip only to the depicted person (``for_subject``, the portal)."""
    refuse_taken_down(render)
    if conversation_only(render) and not for_subject:
        raise ConversationOnly(
            "This is a Q&A answer or live-show clip: it plays only in its conversation or "
            "show, after the spoken AI notice. Render the text as a video to get a file to "
            "download."
        )
    if render.purged_at is not None:
        raise NotFound(
            "This render's file was deleted under our retention schedule.", code="file_deleted"
        )
    if render.status != RenderStatus.READY or not render.output_blob_id:
        raise NotFound("This render has no file yet.", code="not_ready")
    avatar = get_referenced(Avatar, render.avatar_id)
    subject = get_referenced(Subject, avatar.subject_id)
    if likeness.blocked(subject) == "consent_revoked":
        raise Forbidden(likeness.MESSAGES["consent_revoked"], code="consent_revoked")
    chunks = vault().open(subject.id, render.output_blob_id)
    first = next(chunks)  # fail here (not mid-response) if the file cannot be read
    record_event(
        EventTag.RENDER_DOWNLOADED,
        actor_id=actor_id,
        data={"render": render.id, "content": render.content_id},
    )
    db.session.commit()

    def body() -> Iterator[bytes]:
        yield first
        yield from chunks

    return body()


def render_status(render: Render) -> dict[str, Any]:
    """What the API and the pages show of a render, with a signed link once it is ready."""
    from .service import latest_job

    job = latest_job(render.id)
    out: dict[str, Any] = {
        "id": render.id,
        "avatar_id": render.avatar_id,
        "status": render.status,
        "progress": job.progress if job else 0.0,
        "stage": job.stage if job else render.status,
        "content_id": render.content_id,
        "options": render.options,
        "error": job.error
        if job and render.status in (RenderStatus.FAILED, RenderStatus.QUARANTINED)
        else None,
    }
    out["file_deleted"] = render.purged_at is not None
    if render.status == RenderStatus.READY and render.purged_at is None:
        if conversation_only(render):
            return out
        out["download_url"] = url_for(
            "api.download_render", render_id=render.id, t=link_token(render), _external=True
        )
    return out
