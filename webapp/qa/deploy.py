"""Deploying a Q&A set on an avatar: every spoken answer pre-rendered as a clip.

Each clip is an ordinary render (``studio.service.create_render``): moderated, billed
from render credits, counted in the daily quota, rendered on the ``gpu`` queue, stamped
(labels, watermark, AIGC metadata, C2PA), registered and listed to the depicted person.
A visitor never reaches that path: the conversation only serves finished clips.

Stamping profile (R26): answer clips are renders of purpose ``qa_answer``, stamped with
every label but the audible notice (``compliance.stamping.QA_ANSWER``); each deployment
also has one notice clip (key ``notice:en``, purpose ``qa_notice``, stamped with every
label: the spoken notice, then the avatar reading ``AI_NOTICE``), which every
conversation is served before any answer (``talk``), and one idle loop (key ``idle``,
purpose ``qa_idle``: ``studio.service.IDLE_SECONDS`` of the looped template with the mouth
closed and no sound, rendered forwards then back so it repeats without a seam, stamped
like an answer), which the page loops between answers.

What a visitor gets for an answer is an :class:`AnswerMedia`: a ``clip`` in the avatar's
voice, or a ``subtitle`` over the idle avatar for a language no voice speaks yet (Chinese
today; see ``service.media_kind``). When a Chinese voice ships, ``studio.service.LANGUAGES``
gains ``"zh"`` and Chinese answers are rendered like English ones: nothing else changes.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from compliance.moderation import moderate

from .. import likeness
from ..billing import ledger
from ..errors import Conflict, DomainError, Forbidden, InvalidInput
from ..extensions import db
from ..models import (
    Avatar,
    AvatarStatus,
    DeploymentStatus,
    QAClip,
    QADeployment,
    QAItem,
    QASet,
    QASetStatus,
    Render,
    RenderStatus,
    User,
    utcnow,
)
from ..ownership import get_owned_or_404
from ..studio import service as studio
from . import service

FALLBACK = "fallback:"  # clip key prefix of a set's fallback answers
NOTICE = "notice:en"  # clip key of a deployment's AI notice, played once per conversation
IDLE = "idle"  # clip key of a deployment's idle loop, played between answers
IDLE_TEXT = "(The avatar listens in silence, mouth closed.)"  # the idle render's script
AI_NOTICE = (
    "You are talking to an AI avatar, not a live person. It is a digital likeness, used "
    "with that person's consent, and it only says answers its owner wrote and approved."
)
RENDERED_MEDIA = ("clip", "notice", "idle")  # clip_status rows that are renders
_ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$")


@dataclass(frozen=True)
class AnswerMedia:
    """One answer as the visitor receives it."""

    kind: str  # "clip": play the render; "subtitle": show ``text`` over the idle avatar
    text: str  # the approved answer text (also the clip's caption)
    lang: str
    render: Render | None = None  # the ready clip, for kind == "clip"


def answers(qaset: QASet) -> list[tuple[str, str, str]]:
    """Every answer of a set as ``(clip key, text, lang)``: items, then the fallbacks."""
    rows = [(i.id, i.answer, i.lang) for i in service.items_of(qaset)]
    return rows + [(FALLBACK + lang, text, lang) for lang, text in sorted(qaset.fallback.items())]


def spoken(qaset: QASet) -> list[tuple[str, str, str]]:
    return [a for a in answers(qaset) if service.media_kind(a[2]) == "clip"]


def rendered(qaset: QASet) -> list[tuple[str, str, str]]:
    """Every clip a deployment of the set needs: the AI notice, the idle loop, then the
    spoken answers."""
    return [(NOTICE, AI_NOTICE, "en"), (IDLE, IDLE_TEXT, "en"), *spoken(qaset)]


def purpose_of(key: str) -> str:
    """The render purpose, hence the stamping profile, of a clip (studio.service.PURPOSES)."""
    return {NOTICE: "qa_notice", IDLE: "qa_idle"}.get(key, "qa_answer")


def clean_origins(raw: Any) -> list[str]:
    """Sites allowed to embed the talk page: ``https://shop.example[:port]``, no path."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(o, str) for o in raw):
        raise InvalidInput(
            'origins must be a list like ["https://shop.example"].', code="bad_origin"
        )
    out = []
    for origin in raw:
        origin = origin.strip().rstrip("/").lower()
        if not _ORIGIN.fullmatch(origin):
            raise InvalidInput(
                f"{origin!r} is not an origin: write it as "
                "https://your-site.example (scheme, host, optional port).",
                code="bad_origin",
            )
        if origin not in out:
            out.append(origin)
    limit = int(current_app.config["QA_MAX_ORIGINS"])
    if len(out) > limit:
        raise InvalidInput(f"At most {limit} origins may embed one avatar.", code="bad_origin")
    return out


def origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None


# -- attaching ------------------------------------------------------------------------------


def _precheck(owner: User, avatar: Avatar, qaset: QASet) -> None:
    """Refuse before anything is rendered: rights, a ready avatar, the fallbacks the set
    needs, every answer through moderation, credits and the daily quota for all clips."""
    likeness.require(avatar.subject, avatar)
    if avatar.status != AvatarStatus.READY:
        raise Forbidden("This avatar is not trained yet.", code="avatar_not_ready")
    langs = {i.lang for i in service.items_of(qaset)}
    if "zh" in langs and "zh" not in qaset.fallback:
        raise InvalidInput(
            "This set has Chinese answers: add a Chinese fallback answer first.",
            code="fallback_missing",
        )
    clips = rendered(qaset)
    for key, text, _ in clips:
        verdict = moderate(text)
        if not verdict.allowed:
            raise InvalidInput(
                f"The answer {_label(key, text)} falls under our policy on {verdict.category} "
                f'content ("{verdict.matched}"); change it and try again.',
                code=f"moderation_{verdict.category}",
            )
    need = sum(studio.estimate_for(text, purpose_of(key)) for key, text, _ in clips)
    have = ledger.balance(owner.id)
    if have < need:
        raise ledger.InsufficientCredits(
            f"Rendering this set's {len(clips)} clips needs {need} s of credits; you have "
            f"{max(have, 0)} s. Buy render credits on the pricing page."
        )


def _label(key: str, text: str) -> str:
    return f'"{text[:40]}..."' if len(text) > 40 else f'"{text}"'


def attach(owner: User, qaset: QASet, avatar_id: str, origins: Any = None) -> QADeployment:
    """Deploy ``qaset`` on one of the owner's ready avatars and render its clips."""
    avatar = get_owned_or_404(Avatar, avatar_id, owner.id)
    origins = clean_origins(origins)
    taken = db.session.scalar(
        select(QADeployment).where(
            QADeployment.set_id == qaset.id, QADeployment.avatar_id == avatar.id
        )
    )
    if taken is not None and taken.status != DeploymentStatus.STOPPED:
        raise Conflict("This set is already on this avatar.", code="already_deployed")
    _precheck(owner, avatar, qaset)
    if taken is not None:  # re-attaching a stopped deployment keeps its address
        dep, dep.origins, dep.status = taken, origins, DeploymentStatus.RENDERING
    else:
        dep = QADeployment(
            owner_id=owner.id,
            set_id=qaset.id,
            avatar_id=avatar.id,
            slug=secrets.token_urlsafe(12),
            origins=origins,
        )
        db.session.add(dep)
    qaset.status = QASetStatus.RENDERING if qaset.status == QASetStatus.DRAFT else qaset.status
    db.session.commit()
    for key, text, lang in rendered(qaset):
        clip = _clip(dep, key)
        if clip is None or clip.text != text or not _usable(clip):
            render_clip(dep, key, text, lang)
    sync(dep)
    return dep


def _clip(dep: QADeployment, key: str) -> QAClip | None:
    return db.session.scalar(
        select(QAClip).where(QAClip.deployment_id == dep.id, QAClip.key == key)
    )


def _usable(clip: QAClip) -> bool:
    render = db.session.get(Render, clip.render_id) if clip.render_id else None
    return render is not None and render.status not in (
        RenderStatus.FAILED,
        RenderStatus.QUARANTINED,
        RenderStatus.CANCELED,
        RenderStatus.TAKEN_DOWN,
    )


def render_clip(dep: QADeployment, key: str, text: str, lang: str) -> QAClip:
    """One answer through the ordinary render path (moderation, credits, quota, stamping)."""
    owner = db.session.get(User, dep.owner_id)
    render = studio.create_render(
        owner, dep.avatar_id, text, {"language": lang}, purpose=purpose_of(key)
    )
    clip = _clip(dep, key)
    if clip is None:
        clip = QAClip(deployment_id=dep.id, key=key, text=text)
        db.session.add(clip)
    clip.render_id, clip.text = render.id, text
    db.session.commit()
    return clip


def rerender(dep: QADeployment, key: str) -> QAClip:
    """The owner asks for one answer again (a failed or unsatisfying clip)."""
    qaset = db.session.get(QASet, dep.set_id)
    found = [a for a in rendered(qaset) if a[0] == key]
    if not found:
        raise InvalidInput("No spoken answer with that id in this set.", code="not_spoken")
    _, text, lang = found[0]
    return render_clip(dep, key, text, lang)


def deployments_of(qaset: QASet, *, active: bool = True) -> list[QADeployment]:
    query = select(QADeployment).where(QADeployment.set_id == qaset.id)
    if active:
        query = query.where(QADeployment.status != DeploymentStatus.STOPPED)
    return list(db.session.scalars(query.order_by(QADeployment.created_at)))


def answer_changed(qaset: QASet, key: str) -> None:
    """An answer's text changed (or was added): its clips are out of date. They are
    rendered again on the next :func:`refresh`; until then that answer is not served."""
    for dep in deployments_of(qaset):
        clip = _clip(dep, key)
        if clip is not None:
            clip.render_id = None


def answer_removed(qaset: QASet, key: str) -> None:
    for dep in deployments_of(qaset, active=False):
        clip = _clip(dep, key)
        if clip is not None:
            db.session.delete(clip)


def refresh(qaset: QASet) -> dict[str, Any]:
    """Render every spoken answer of the set's deployments that has no current clip (after
    an edit). The edit itself is saved whatever happens here: a refusal (credits, quota)
    is returned as ``error`` and the answer waits, shown as pending, for a re-render."""
    started = 0
    for dep in deployments_of(qaset):
        for key, text, lang in rendered(qaset):
            clip = _clip(dep, key)
            if clip is None or clip.render_id is None or clip.text != text:
                try:
                    render_clip(dep, key, text, lang)
                except DomainError as exc:
                    db.session.rollback()
                    return {"started": started, "error": exc.message, "code": exc.code}
                started += 1
    return {"started": started, "error": None, "code": None}


# -- state ----------------------------------------------------------------------------------


def clip_status(dep: QADeployment, qaset: QASet) -> list[dict[str, Any]]:
    """Each answer of the set on this deployment: how it is delivered and how far it is."""
    from ..studio.service import latest_job

    out = []
    for key, text, lang in [(NOTICE, AI_NOTICE, "en"), (IDLE, IDLE_TEXT, "en"), *answers(qaset)]:
        row: dict[str, Any] = {
            "key": key,
            "text": text,
            "lang": lang,
            "media": {NOTICE: "notice", IDLE: "idle"}.get(key) or service.media_kind(lang),
        }
        if row["media"] in RENDERED_MEDIA:
            clip = _clip(dep, key)
            render = db.session.get(Render, clip.render_id) if clip and clip.render_id else None
            job = latest_job(render.id) if render else None
            row.update(
                render_id=render.id if render else None,
                status=render.status if render else "pending",
                progress=job.progress if job else 0.0,
            )
        else:
            row.update(render_id=None, status="subtitle", progress=1.0)
        out.append(row)
    return out


def ready_clip(dep: QADeployment, key: str) -> Render | None:
    clip = _clip(dep, key)
    render = db.session.get(Render, clip.render_id) if clip and clip.render_id else None
    ok = render is not None and render.status == RenderStatus.READY and render.output_blob_id
    return render if ok else None


def sync(dep: QADeployment) -> QADeployment:
    """A rendering deployment goes live once its notice and every spoken answer have a
    ready clip."""
    qaset = db.session.get(QASet, dep.set_id)
    if dep.status == DeploymentStatus.RENDERING and all(
        ready_clip(dep, key) is not None for key, _, _ in rendered(qaset)
    ):
        dep.status, dep.live_at = DeploymentStatus.LIVE, utcnow()
    states = {d.status for d in deployments_of(qaset)}
    qaset.status = (
        QASetStatus.LIVE
        if DeploymentStatus.LIVE in states
        else QASetStatus.RENDERING
        if states
        else QASetStatus.DRAFT
    )
    db.session.commit()
    return dep


def detach(dep: QADeployment) -> None:
    dep.status = DeploymentStatus.STOPPED
    sync(dep)


def set_origins(dep: QADeployment, origins: Any) -> QADeployment:
    dep.origins = clean_origins(origins)
    db.session.commit()
    return dep


def deployment_json(dep: QADeployment, *, clips: bool = True) -> dict[str, Any]:
    from flask import url_for

    qaset = db.session.get(QASet, dep.set_id)
    out: dict[str, Any] = {
        "id": dep.id,
        "set_id": dep.set_id,
        "avatar_id": dep.avatar_id,
        "slug": dep.slug,
        "status": dep.status,
        "origins": list(dep.origins),
        "talk_url": url_for("qa.talk_page", slug=dep.slug, _external=True),
        "embed_url": url_for("qa.embed_script", slug=dep.slug, _external=True),
    }
    if clips:
        rows = clip_status(dep, qaset)
        out["clips"] = rows
        spoken_rows = [r for r in rows if r["media"] in RENDERED_MEDIA]
        done = sum(1 for r in spoken_rows if r["status"] == "ready")
        out["progress"] = {"ready": done, "total": len(spoken_rows)}
    return out


def item_for(qaset: QASet, item_id: str) -> QAItem | None:
    item = db.session.get(QAItem, item_id)
    return item if item is not None and item.set_id == qaset.id else None
