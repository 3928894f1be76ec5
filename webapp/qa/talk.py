"""The visitor's side: conversations with a deployed Q&A avatar.

A visitor's words are only ever matched, never spoken: the answer is a finished clip of
an approved text (a short-lived signed link), a subtitle of an approved text, or the
fallback. Nothing here reaches moderation, synthesis or the job queue. Every question
re-checks the likeness gate (consent withdrawn, KYC lapsed, avatar frozen: 403).

The AI notice once per conversation (R26): answer clips carry no spoken notice (stamping
profile ``qa_answer``), so a conversation starts with a token that cannot ask anything and
a signed link to the deployment's notice clip. Fetching that clip returns, in its
``X-Conversation`` header, the token that can: the server answers no question (409
``notice_first``) of a conversation that was not served its notice.
"""

from __future__ import annotations

import io
import secrets
import tempfile
from datetime import timedelta
from typing import Any, BinaryIO

from flask import current_app, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, func, select
from sqlalchemy.engine import CursorResult

from compliance import media

from .. import likeness
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..extensions import db
from ..models import (
    Avatar,
    DeploymentStatus,
    QADeployment,
    QALog,
    QASet,
    Render,
    RenderStatus,
    Subject,
    utcnow,
)
from ..registry import MediaOverLimit
from ..storage import vault
from . import deploy, listen, service
from .deploy import AI_NOTICE, FALLBACK, IDLE, NOTICE, AnswerMedia

AI_LABEL = "AI-generated"
_CONVERSATION_SALT = "dhf-qa-conversation"
_CLIP_SALT = "dhf-qa-clip"
_NOTICE_SALT = "dhf-qa-notice"
CONVERSATION_TTL = 6 * 3600  # a conversation token is accepted this long after the page opened


def _signer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


# -- the deployment a visitor reaches -------------------------------------------------------


def deployment(slug: str) -> QADeployment:
    """The deployment at ``slug`` if it answers visitors: 404 if none (or detached), 403
    with the reason when the likeness may not be used, 409 while its clips render."""
    dep = db.session.scalar(select(QADeployment).where(QADeployment.slug == slug))
    if dep is None or dep.status == DeploymentStatus.STOPPED:
        raise NotFound("No avatar answers at this address.")
    avatar = db.session.get(Avatar, dep.avatar_id)
    reason = likeness.blocked(db.session.get(Subject, avatar.subject_id), avatar)
    if reason:
        raise Forbidden(_stopped(reason), code=reason)
    if dep.status == DeploymentStatus.RENDERING:
        deploy.sync(dep)
    if dep.status != DeploymentStatus.LIVE:
        raise Conflict(
            "This avatar is still preparing its answers: try again in a few minutes.",
            code="not_live",
        )
    return dep


def _stopped(reason: str) -> str:
    if reason == "consent_revoked":
        return "This conversation has ended: the person shown withdrew their consent."
    if reason == "avatar_frozen":
        return "This conversation has ended: the avatar is suspended by our trust & safety team."
    return "This avatar is not available at the moment."


def frame_allowed(
    dep: QADeployment, dest: str | None, site: str | None, referrer: str | None
) -> bool:
    """Whether a request for the talk page may be shown in a frame: top-level and
    same-origin loads always; a cross-site frame only from an allowed origin (the CSP
    ``frame-ancestors`` says the same to the browser; this refuses it on the server)."""
    if dest not in ("iframe", "frame", "embed", "object"):
        return True
    return embedder_allowed(dep, site, referrer)


def embedder_allowed(dep: QADeployment, site: str | None, referrer: str | None) -> bool:
    """Whether the page asking (for the talk page in a frame, or for the embed script) is
    ours or on an allowed origin: a cross-site request needs a Referer naming one (the
    browser sends the embedding page's origin by default; a page that hides it cannot
    embed)."""
    if site in (None, "same-origin", "none"):
        return True
    origin = deploy.origin_of(referrer or "")
    return origin is not None and origin in dep.origins


def frame_ancestors(dep: QADeployment) -> str:
    return " ".join(["'self'", *dep.origins])


def request_origin_allowed(dep: QADeployment, origin: str | None, own: str) -> bool:
    """A visitor's API call from a browser page: ours, or an allowed embedding site."""
    return not origin or origin.lower() == own.lower() or origin.lower() in dep.origins


# -- conversations --------------------------------------------------------------------------


def start(dep: QADeployment) -> dict[str, Any]:
    """A new conversation: a token that may only fetch the notice, the AI notice as text,
    and the signed link of the notice clip (played first). Fetching the notice gives the
    token that may ask and the link of the idle loop (``notice_for_link``)."""
    notice = deploy.ready_clip(dep, NOTICE)
    if notice is None:  # a deployment made before notices: re-rendering adds it
        raise Conflict(
            "This avatar is still preparing its answers: try again in a few minutes.",
            code="not_live",
        )
    conversation = secrets.token_hex(16)
    link = _signer(_NOTICE_SALT).dumps({"d": dep.id, "r": notice.id, "c": conversation})
    return {
        "conversation": _token(dep, conversation, heard=False),
        "label": AI_LABEL,
        "notice": AI_NOTICE,
        "notice_url": url_for("qa.notice", slug=dep.slug, render_id=notice.id, t=link),
    }


def _token(dep: QADeployment, conversation: str, *, heard: bool) -> str:
    return str(_signer(_CONVERSATION_SALT).dumps({"d": dep.id, "c": conversation, "n": int(heard)}))


def notice_for_link(
    slug: str, render_id: str, token: str
) -> tuple[Render, Subject, str, str | None]:
    """The notice clip a conversation's signed link names, the conversation's token that
    may now ask (it records that the notice was served), and the signed link of the idle
    loop the page plays between answers (None on a deployment made before idle loops: the
    page then holds the notice clip's first frame). Nothing but the notice is linked
    before the notice was served."""
    try:
        data = _signer(_NOTICE_SALT).loads(token, max_age=CONVERSATION_TTL)
    except SignatureExpired:
        raise Forbidden(
            "This conversation expired: reload the page.", code="conversation_expired"
        ) from None
    except BadSignature:
        raise Forbidden("This notice link is not valid.", code="bad_link") from None
    dep = deployment(slug)
    render = deploy.ready_clip(dep, NOTICE)
    if render is None or data.get("d") != dep.id or not data.get("r") == render_id == render.id:
        raise NotFound("No such clip.")
    avatar = db.session.get(Avatar, render.avatar_id)
    subject = db.session.get(Subject, avatar.subject_id)
    idle = deploy.ready_clip(dep, IDLE)
    idle_url = clip_url(dep, idle) if idle else None
    return render, subject, _token(dep, str(data["c"]), heard=True), idle_url


def conversation_of(dep: QADeployment, token: str | None, *, heard: bool = True) -> str:
    """The conversation id of a visitor's token; with ``heard`` (asking), only once the
    conversation was served its AI notice (409 ``notice_first``)."""
    if not token:
        raise InvalidInput(
            "Start a conversation first (POST .../conversations).", code="missing_conversation"
        )
    try:
        data = _signer(_CONVERSATION_SALT).loads(token, max_age=CONVERSATION_TTL)
    except SignatureExpired:
        raise Forbidden(
            "This conversation expired: reload the page.", code="conversation_expired"
        ) from None
    except BadSignature:
        raise Forbidden(
            "This conversation is not valid: reload the page.", code="bad_conversation"
        ) from None
    if data.get("d") != dep.id:
        raise Forbidden("This conversation belongs to another avatar.", code="bad_conversation")
    if heard and not data.get("n"):
        raise Conflict(
            "Play the AI notice first: every conversation starts by saying that this is an "
            "AI avatar.",
            code="notice_first",
        )
    return str(data["c"])


def ask(
    dep: QADeployment,
    token: str | None,
    question: Any,
    *,
    spoken: bool = False,
    lang: str | None = None,
) -> dict[str, Any]:
    """Match the question against the approved answers; log it; say what to play."""
    from pipeline.qa.match import detect_lang

    conversation = conversation_of(dep, token)
    limit = int(current_app.config["QA_MAX_QUESTION_CHARS"])
    text = " ".join(question.split()) if isinstance(question, str) else ""
    if not text:
        raise InvalidInput("Ask a question.", code="missing_fields")
    if len(text) > limit:
        raise InvalidInput(f"Questions are limited to {limit} characters.", code="too_long")
    qaset = db.session.get(QASet, dep.set_id)
    found = service.matcher_for(qaset).answer_for(text)
    question_lang = lang or detect_lang(text)
    item = deploy.item_for(qaset, found.item_id) if found else None
    answer = _media(dep, qaset, item.id, item.answer, item.lang) if item else None
    if answer is None:
        answer = _fallback(dep, qaset, question_lang)
    first = not db.session.scalar(
        select(func.count(QALog.id)).where(
            QALog.deployment_id == dep.id, QALog.conversation == conversation
        )
    )
    db.session.add(
        QALog(
            deployment_id=dep.id,
            conversation=conversation,
            question=text,
            item_id=item.id if item and answer.text == item.answer else None,
            score=round(found.score, 4) if found else None,
            lang=question_lang,
            spoken=spoken,
        )
    )
    db.session.commit()
    return {
        "question": text,
        "question_lang": question_lang,
        "matched": item is not None and answer.text == item.answer,
        "score": round(found.score, 4) if found else None,
        "answer": answer_json(dep, answer),
        "notice": AI_NOTICE if first else None,
        "label": AI_LABEL,
    }


def _media(dep: QADeployment, qaset: QASet, key: str, text: str, lang: str) -> AnswerMedia | None:
    """The answer as the visitor receives it, or None when its clip is not ready (an
    edited answer being rendered again: the fallback plays meanwhile)."""
    if service.media_kind(lang) == "subtitle":
        return AnswerMedia("subtitle", text, lang)
    render = deploy.ready_clip(dep, key)
    return AnswerMedia("clip", text, lang, render) if render else None


def _fallback(dep: QADeployment, qaset: QASet, lang: str) -> AnswerMedia:
    for fallback_lang in dict.fromkeys((lang, "en")):
        text = qaset.fallback.get(fallback_lang)
        if text:
            media_ = _media(dep, qaset, FALLBACK + fallback_lang, text, fallback_lang)
            if media_ is not None:
                return media_
    return AnswerMedia("subtitle", qaset.fallback["en"], "en")  # its clip is being re-rendered


def answer_json(dep: QADeployment, answer: AnswerMedia) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": answer.kind, "text": answer.text, "lang": answer.lang}
    if answer.kind == "clip" and answer.render is not None:
        out["url"] = clip_url(dep, answer.render)
        out["content_id"] = answer.render.content_id
    else:
        out["note"] = (
            "Shown as text: this avatar has no voice in this language yet."
            if answer.lang != "en"
            else "Shown as text while its clip is prepared."
        )
    return out


# -- spoken questions -----------------------------------------------------------------------


def transcribe(stream: BinaryIO, lang: str | None) -> tuple[str, str]:
    """A short recorded question as text: size and running time checked on the header
    before anything is decoded, then Whisper base (en or zh), batched (``listen``)."""
    from pipeline import asr

    if lang not in (None, "", "en", "zh"):
        raise InvalidInput("lang must be en or zh.", code="bad_lang")
    cfg = current_app.config
    data = stream.read(int(cfg["QA_AUDIO_MAX_BYTES"]) + 1)
    if len(data) > int(cfg["QA_AUDIO_MAX_BYTES"]):
        raise InvalidInput(
            f"A spoken question may be at most {cfg['QA_AUDIO_MAX_BYTES']} bytes.",
            code="audio_too_large",
        )
    if not data:
        raise InvalidInput("Attach the recording as multipart field 'audio'.", code="missing_file")
    limits = media.MediaLimits(
        max_seconds=float(cfg["QA_AUDIO_MAX_SECONDS"]), max_pixels=1, max_frames=1
    )
    try:
        info = media.probe(io.BytesIO(data), limits)
    except media.MediaLimitExceeded as exc:
        raise MediaOverLimit.from_exc(exc) from None
    except media.MediaError:
        raise InvalidInput("This recording cannot be read.", code="bad_audio") from None
    if not info.has_audio:
        raise InvalidInput("This recording has no sound.", code="bad_audio")
    with tempfile.NamedTemporaryFile(suffix=".audio") as fh:
        fh.write(data)
        fh.flush()
        samples = media.audio(fh.name, asr.RATE, float(cfg["QA_AUDIO_MAX_SECONDS"]))
    heard = listen.listener(cfg).hear(
        samples, lang or "en"
    )  # batched with others asking at the same time
    if not heard.strip():
        raise InvalidInput(
            "We heard no question: hold the button while you speak.", code="nothing_heard"
        )
    return heard.strip(), lang or "en"


# -- clips ----------------------------------------------------------------------------------


def clip_url(dep: QADeployment, render: Render) -> str:
    token = _signer(_CLIP_SALT).dumps({"d": dep.id, "r": render.id})
    return url_for("qa.clip", slug=dep.slug, render_id=render.id, t=token)


def clip_for_link(slug: str, render_id: str, token: str) -> tuple[Render, Subject]:
    """The clip a signed link names, while its deployment may still show it."""
    try:
        data = _signer(_CLIP_SALT).loads(token, max_age=int(current_app.config["QA_CLIP_URL_TTL"]))
    except SignatureExpired:
        raise Forbidden("This clip link expired: ask again.", code="link_expired") from None
    except BadSignature:
        raise Forbidden("This clip link is not valid.", code="bad_link") from None
    dep = deployment(slug)
    render = db.session.get(Render, render_id)
    if data.get("d") != dep.id or data.get("r") != render_id or render is None:
        raise NotFound("No such clip.")
    if render.status != RenderStatus.READY or not render.output_blob_id:
        raise NotFound("This clip is no longer available.", code="not_ready")
    avatar = db.session.get(Avatar, render.avatar_id)
    return render, db.session.get(Subject, avatar.subject_id)


def clip_bytes(render: Render, subject: Subject) -> bytes:
    """The stamped MP4 (clips are short: read whole, so the player may seek by range)."""
    return vault().read(subject.id, render.output_blob_id)


# -- for the owner --------------------------------------------------------------------------


def unanswered(qaset: QASet, limit: int = 50) -> list[dict[str, Any]]:
    """Questions the fallback answered, most frequent first (case and spacing folded)."""
    deps = [d.id for d in deploy.deployments_of(qaset, active=False)]
    if not deps:
        return []
    key = func.lower(QALog.question)
    rows = db.session.execute(
        select(key, func.count(QALog.id), func.max(QALog.created_at), func.min(QALog.lang))
        .where(QALog.deployment_id.in_(deps), QALog.item_id.is_(None))
        .group_by(key)
        .order_by(func.count(QALog.id).desc(), key)
        .limit(limit)
    )
    return [
        {"question": q, "count": n, "last_asked": last.isoformat() if last else None, "lang": lang}
        for q, n, last, lang in rows
    ]


def logs(qaset: QASet, limit: int = 100) -> list[dict[str, Any]]:
    deps = [d.id for d in deploy.deployments_of(qaset, active=False)]
    if not deps:
        return []
    rows = db.session.scalars(
        select(QALog).where(QALog.deployment_id.in_(deps)).order_by(QALog.id.desc()).limit(limit)
    )
    return [
        {
            "question": r.question,
            "item_id": r.item_id,
            "score": r.score,
            "lang": r.lang,
            "spoken": r.spoken,
            "deployment_id": r.deployment_id,
            "asked_at": r.created_at.isoformat(),
        }
        for r in rows
    ]


def usage(qaset: QASet) -> dict[str, Any]:
    deps = [d.id for d in deploy.deployments_of(qaset, active=False)]
    if not deps:
        return {"questions": 0, "conversations": 0, "answered": 0}
    where = QALog.deployment_id.in_(deps)
    total = db.session.scalar(select(func.count(QALog.id)).where(where)) or 0
    answered = (
        db.session.scalar(select(func.count(QALog.id)).where(where, QALog.item_id.is_not(None)))
        or 0
    )
    conversations = (
        db.session.scalar(select(func.count(func.distinct(QALog.conversation))).where(where)) or 0
    )
    return {"questions": total, "conversations": conversations, "answered": answered}


def prune_logs(now: Any = None, *, dry_run: bool = False) -> int:
    """Delete conversation logs older than ``QA_LOG_RETENTION_DAYS``; returns how many (with
    ``dry_run``, how many would go). The daily retention run calls it (``webapp.retention``)."""
    days = int(current_app.config["QA_LOG_RETENTION_DAYS"])
    cutoff = (now or utcnow()) - timedelta(days=days)
    if dry_run:
        where = QALog.created_at < cutoff
        return int(db.session.scalar(select(func.count(QALog.id)).where(where)) or 0)
    result: CursorResult[Any] = db.session.execute(delete(QALog).where(QALog.created_at < cutoff))  # type: ignore[assignment]
    db.session.commit()
    return int(result.rowcount or 0)
