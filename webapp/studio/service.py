"""Avatars, training and renders: the service functions the API and the pages share."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any

from flask import current_app
from sqlalchemy import func, select

from compliance import media
from compliance.audit import EventTag
from compliance.moderation import moderate
from pipeline.face.composite import TONES

from .. import jobs, likeness, sanctions
from ..audit import record_event
from ..billing import ledger
from ..billing.service import training_paid
from ..consent import binding
from ..errors import Conflict, DomainError, Forbidden, InvalidInput
from ..extensions import db
from ..models import (
    Avatar,
    AvatarStatus,
    ConsentRecord,
    ConsentStatus,
    Job,
    KycStatus,
    Render,
    RenderStatus,
    Subject,
    Upload,
    UploadStatus,
    User,
    utcnow,
)
from ..ownership import get_owned_or_404, get_referenced
from ..registry import MediaOverLimit, media_limits
from ..storage import store

# 2D styles, and the 3D looks of the avatar's 3D rig (pipeline.face3d.scene.LOOKS)
STYLES = ("real2d", "cartoon2d", "3d_realistic", "3d_semi", "3d_cartoon")
FRAMINGS = ("half", "full")
LANGUAGES = ("en",)  # Chinese comes with a Chinese base voice
_HEX = re.compile(r"#[0-9a-fA-F]{6}")
WORDS_PER_SECOND = 2.5  # a calm presenter; used to reserve credits before rendering
LABEL_SECONDS = 2  # the spoken AI notice at the start of every render (R9)
# What a render is for, set only by the server (never from a client's options): a Q&A
# avatar's answer clip and idle loop and a live show's clips (segments, idle loop,
# operator lines) are stamped without the audible notice, which their conversation or show
# plays separately (R26; compliance.stamping.QA_ANSWER). Anything else, notices included:
# every label.
PURPOSES = ("video", "qa_answer", "qa_notice", "qa_idle", "live_clip", "live_notice")
IN_SESSION = ("qa_answer", "qa_idle", "live_clip")  # no audible notice: never exported alone
IDLE_SECONDS = 8  # a Q&A avatar's idle loop (purpose qa_idle): silence, mouth closed


class QuotaExceeded(DomainError):
    status, code = 429, "render_quota"


def create_avatar(
    owner: User, subject_id: str, name: str, style: str = "real2d", framing: str = "half"
) -> Avatar:
    subject = get_owned_or_404(Subject, subject_id, owner.id)
    sanctions.require_may_create(owner)
    if not name.strip():
        raise InvalidInput("Give the avatar a name.", code="missing_fields")
    _choice("style", style, STYLES)
    _choice("framing", framing, FRAMINGS)
    avatar = Avatar(
        owner_id=owner.id,
        subject_id=subject.id,
        name=name.strip()[:120],
        style=style,
        framing=framing,
    )
    db.session.add(avatar)
    db.session.commit()
    return avatar


def _choice(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidInput(f"{field} must be one of {', '.join(allowed)}.", code=f"bad_{field}")


def upload_training_video(
    avatar: Avatar, stream: IO[bytes] | None, filename: str | None
) -> tuple[Upload, Job]:
    """Store the footage encrypted under the subject's key and queue its check (no file,
    or one without a name: 422)."""
    if stream is None or not filename:
        raise InvalidInput("Attach the recording as multipart field 'video'.", code="missing_file")
    likeness.require_not_withdrawn(avatar.subject)
    _refuse_over_limits(stream)
    blob_id, size, sha = store(avatar.subject_id, stream)
    upload = Upload(
        owner_id=avatar.owner_id,
        subject_id=avatar.subject_id,
        avatar_id=avatar.id,
        kind="training_video",
        blob_id=blob_id,
        filename=filename[:255],
        size=size,
        sha256=sha,
    )
    db.session.add(upload)
    db.session.flush()
    record_event(EventTag.UPLOAD_STORED, actor_id=avatar.owner_id, data={"upload": upload.id})
    job = jobs.submit("probe_upload", avatar.owner_id, upload.id)
    db.session.commit()
    return upload, job


def _refuse_over_limits(stream: IO[bytes]) -> None:
    """422 naming the limit when the header (or, without a duration, the packets) shows the
    file is over ``DHF_MEDIA_MAX_*``; nothing is decoded. Unreadable files are stored and
    the probe job explains them."""
    try:
        media.probe(stream, media_limits())
    except media.MediaLimitExceeded as exc:
        raise MediaOverLimit.from_exc(exc) from None
    except media.MediaError:
        pass
    finally:
        stream.seek(0)


def training_inputs(avatar: Avatar) -> tuple[Upload, list[Upload]]:
    """The valid training video and the accepted voice samples, or a clear 422."""
    video = db.session.scalar(
        select(Upload)
        .where(
            Upload.avatar_id == avatar.id,
            Upload.kind == "training_video",
            Upload.status == UploadStatus.VALID,
        )
        .order_by(Upload.created_at.desc())
        .limit(1)
    )
    if video is None:
        raise InvalidInput(
            "Upload a training video (about 3 minutes) and wait for its check.",
            code="training_video_missing",
        )
    samples = list(
        db.session.scalars(
            select(Upload).where(
                Upload.avatar_id == avatar.id,
                Upload.kind == "voice_sample",
                Upload.status.in_((UploadStatus.VALID, UploadStatus.STORED)),
            )
        )
    )
    need = int(current_app.config["VOICE_MIN_SAMPLES"])
    if len(samples) < need:
        raise InvalidInput(
            f"Record at least {need} voice sentences (you have {len(samples)}).",
            code="voice_samples_missing",
        )
    return video, samples


def start_training(avatar: Avatar, *, waive_payment: bool = False, enqueue: bool = True) -> Job:
    """Queue ``train_avatar``: needs KYC, the subject's verified consent, payment, inputs.

    ``waive_payment`` and ``enqueue=False`` are for operators (``dhf avatar train``).
    """
    likeness.require(avatar.subject, avatar)
    if not waive_payment and not training_paid(avatar.id):
        raise Forbidden(
            "Pay for this avatar's training first (POST /api/v1/checkout).", code="payment_required"
        )
    training_inputs(avatar)
    binding.require_one_person(avatar.subject)
    job = jobs.submit("train_avatar", avatar.owner_id, avatar.id, enqueue=enqueue)
    avatar.status = AvatarStatus.TRAINING
    db.session.commit()
    return job


def estimate_seconds(script: str) -> int:
    """Credits (seconds of video) to hold for a script before it is rendered."""
    words = len(script.split())
    return LABEL_SECONDS + max(1, math.ceil(words / WORDS_PER_SECOND))


def estimate_for(script: str, purpose: str) -> int:
    """Credits to hold for a render of ``purpose``: an idle loop says nothing and runs
    ``IDLE_SECONDS``; anything else is its script read aloud."""
    return IDLE_SECONDS if purpose == "qa_idle" else estimate_seconds(script)


def render_options(raw: dict[str, Any], avatar: Avatar) -> dict[str, Any]:
    """Validated render options with defaults from the avatar."""
    options = {
        "language": raw.get("language") or "en",
        "background": raw.get("background") or "original",
        "tone": raw.get("tone") or "natural",
        "style": raw.get("style") or avatar.style,
        "framing": raw.get("framing") or avatar.framing,
    }
    _choice("language", options["language"], LANGUAGES)
    _choice("tone", options["tone"], TONES)
    _choice("style", options["style"], STYLES)
    _choice("framing", options["framing"], FRAMINGS)
    if options["background"] != "original" and not _HEX.fullmatch(options["background"]):
        raise InvalidInput(
            "background must be 'original' or a colour like #1e90ff.", code="bad_background"
        )
    return options


def create_render(
    owner: User,
    avatar_id: str,
    script: str,
    raw: dict[str, Any],
    *,
    enqueue: bool = True,
    purpose: str = "video",
    card: dict[str, Any] | None = None,
) -> Render:
    """Moderate the script, check the likeness rights, hold credits, queue ``render``.

    ``purpose`` comes from the calling service (``webapp.qa.deploy`` for answer clips,
    ``webapp.live`` for a show's clips), never from the request: ``render_options`` keeps
    only the known client options; so does ``card`` (a live segment's product card,
    checked by ``webapp.live.cards``)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown render purpose {purpose!r}")
    avatar = get_owned_or_404(Avatar, avatar_id, owner.id)
    sanctions.require_may_create(owner)
    script = " ".join(script.split())
    limit = int(current_app.config["RENDER_MAX_CHARS"])
    if not script:
        raise InvalidInput("Write the script to speak.", code="missing_fields")
    if len(script) > limit:
        raise InvalidInput(f"Scripts are limited to {limit} characters.", code="script_too_long")
    likeness.require(avatar.subject, avatar)
    if avatar.status != AvatarStatus.READY:
        raise Forbidden("This avatar is not trained yet.", code="avatar_not_ready")
    if avatar.model_purged_at is not None:
        raise Conflict(
            "This avatar's trained model was deleted under our retention schedule "
            "(unused for too long): train it again to render.",
            code="model_deleted",
        )
    options = render_options(raw, avatar)
    if purpose != "video":
        options["purpose"] = purpose
    if card:
        options["card"] = card
    _within_daily_quota(owner)
    verdict = moderate(script)
    record_event(
        EventTag.MODERATION_VERDICT,
        actor_id=owner.id,
        data={
            "avatar": avatar.id,
            "allowed": verdict.allowed,
            "category": verdict.category,
            "matched": verdict.matched,
        },
    )
    if not verdict.allowed:
        db.session.commit()
        raise InvalidInput(
            f"This script falls under our policy on {verdict.category} content "
            f'("{verdict.matched}"); change it and try again.',
            code=f"moderation_{verdict.category}",
        )
    render = Render(owner_id=owner.id, avatar_id=avatar.id, script=script, options=options)
    db.session.add(render)
    db.session.flush()
    ledger.reserve(render, estimate_for(script, purpose))
    jobs.submit("render", owner.id, render.id, enqueue=enqueue)
    record_event(
        EventTag.RENDER_CREATED, actor_id=owner.id, data={"render": render.id, "avatar": avatar.id}
    )
    db.session.commit()
    return render


def _within_daily_quota(owner: User) -> None:
    """Renders per account per day (R23)."""
    quota = int(current_app.config["RENDERS_PER_DAY"])
    since = utcnow() - timedelta(days=1)
    count = db.session.scalar(
        select(func.count(Render.id)).where(Render.owner_id == owner.id, Render.created_at >= since)
    )
    if (count or 0) >= quota:
        raise QuotaExceeded(f"You reached today's limit of {quota} renders; try again tomorrow.")


STEPS = ("identity", "consent", "voice", "video", "payment", "training", "render")


def latest_job(target_id: str, kind: str | None = None) -> Job | None:
    query = select(Job).where(Job.target_id == target_id)
    if kind:
        query = query.where(Job.kind == kind)
    return db.session.scalar(query.order_by(Job.created_at.desc()).limit(1))


@dataclass(frozen=True)
class _Facts:
    """What an avatar's steps are decided from, read once per call of :func:`steps`."""

    owner: User
    consent: ConsentRecord | None  # the subject's newest consent record
    samples: int  # voice sentences uploaded, whatever their check says
    need: int  # DHF_VOICE_MIN_SAMPLES
    video: Upload | None  # the newest training video
    train: Job | None  # the newest training job
    paid: bool  # the training is paid for
    rendered: bool  # a finished render exists


def _facts(avatar: Avatar) -> _Facts:
    return _Facts(
        owner=get_referenced(User, avatar.owner_id),
        consent=likeness.latest_consent(avatar.subject_id),
        samples=_count(Upload, Upload.avatar_id == avatar.id, Upload.kind == "voice_sample"),
        need=int(current_app.config["VOICE_MIN_SAMPLES"]),
        video=_latest_training_video(avatar.id),
        train=latest_job(avatar.id, "train_avatar"),
        paid=training_paid(avatar.id),
        rendered=_count(Render, Render.avatar_id == avatar.id, Render.status == RenderStatus.READY)
        > 0,
    )


def _count(model: type[Upload] | type[Render], *where: Any) -> int:
    return db.session.scalar(select(func.count(model.id)).where(*where)) or 0


def _latest_training_video(avatar_id: str) -> Upload | None:
    return db.session.scalar(
        select(Upload)
        .where(Upload.avatar_id == avatar_id, Upload.kind == "training_video")
        .order_by(Upload.created_at.desc())
        .limit(1)
    )


def _done(avatar: Avatar, facts: _Facts) -> dict[str, bool]:
    """Which steps are complete."""
    return {
        "identity": facts.owner.kyc_status == KycStatus.VERIFIED,
        "consent": facts.consent is not None and facts.consent.status == ConsentStatus.VERIFIED,
        "voice": facts.samples >= facts.need,
        "video": facts.video is not None and facts.video.status == UploadStatus.VALID,
        "payment": facts.paid,
        "training": avatar.status == AvatarStatus.READY,
        "render": facts.rendered,
    }


def _details(avatar: Avatar, facts: _Facts) -> dict[str, str]:
    """The short text the page shows beside each step."""
    train = facts.train
    return {
        "identity": facts.owner.kyc_status,
        "consent": facts.consent.status if facts.consent else "missing",
        "voice": f"{facts.samples} / {facts.need}",
        "video": facts.video.status if facts.video else "missing",
        "payment": "paid" if facts.paid else "unpaid",
        "training": f"{train.stage} {round(train.progress * 100)}%" if train else avatar.status,
        "render": "",
    }


def _states(done: dict[str, bool]) -> dict[str, str]:
    """``done`` steps, the first open one ``active``, the rest ``todo``."""
    first_open = next((step for step in STEPS if not done[step]), None)
    return {
        step: "done" if done[step] else ("active" if step == first_open else "todo")
        for step in STEPS
    }


def _job_summary(job: Job | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {
        "id": job.id,
        "status": job.status,
        "progress": job.progress,
        "stage": job.stage,
        "error": job.error,
    }


def steps(avatar: Avatar) -> dict[str, dict[str, Any]]:
    """Where an avatar stands on the self-service path: each step's state and detail.

    States: ``done``, ``active`` (the next thing to do or running now), ``todo``,
    ``blocked`` (every step once consent is withdrawn, with ``reason`` the code
    ``consent_revoked`` of :mod:`webapp.likeness`; the page explains it).
    """
    facts = _facts(avatar)
    detail = _details(avatar, facts)
    states = _states(_done(avatar, facts))
    out: dict[str, dict[str, Any]] = {s: {"state": states[s], "detail": detail[s]} for s in STEPS}
    if avatar.status == AvatarStatus.REVOKED:
        for step in out.values():
            step.update(state="blocked", reason="consent_revoked")
    out["video"]["reasons"] = list(facts.video.reasons) if facts.video else []
    out["training"]["job"] = _job_summary(facts.train)
    return out
