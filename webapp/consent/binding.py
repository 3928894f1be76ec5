"""One person per avatar (R4): every input that shows the subject, compared pairwise.

Each biometric upload gets an identity template (dlib faces of sampled frames, or a
Resemblyzer voice embedding), computed once and kept encrypted in the vault under the
subject's key, so it is shredded with everything else on withdrawal (R5, R7).
:func:`likeness` gathers the templates of a subject's inputs; ``compliance.consent.bind``
compares every pair that exists. The checks run when the second member of a pair
arrives (consent recording, footage, voice take, KYC selfie) and for every pair again at
the training gate (:func:`require_one_person`).
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
from flask import current_app
from sqlalchemy import select

from compliance.consent import (
    Binding,
    ConsentThresholds,
    Likeness,
    Reason,
    bind,
    face_distance,
)

from ..errors import Forbidden
from ..extensions import db
from ..models import (
    ConsentRecord,
    ConsentStatus,
    IdentityCheck,
    KycStatus,
    Subject,
    Upload,
    UploadStatus,
)
from ..storage import store, subject_key, vault

FOOTAGE_FACES = 8  # frames of the footage whose faces stand for it
MIN_FACES = FOOTAGE_FACES // 2  # sampled frames of the footage that must show a face
REVIEW = (Reason.FACE_BORDERLINE, Reason.VOICE_BORDERLINE)  # a reviewer decides at the gate

MESSAGES = {
    "face_unverifiable": "We could not see the face in enough of the training video to "
    "compare it with the person who consented: film the face throughout.",
    Reason.FACE_MISMATCH_KYC: "The face in the consent recording is not the face of the "
    "identity check.",
    Reason.FACE_MISMATCH_TRAINING: "The face in the training video is not the person who gave "
    "consent: upload footage of that person.",
    Reason.TRAINING_MISMATCH_KYC: "The face in the training video is not the face of the "
    "identity check.",
    Reason.VOICE_MISMATCH: "The voice in the recorded sentences is not the voice of the person "
    "who gave consent: that person must read them.",
    Reason.SAME_PERSON_AS_HOLDER: "The other person's consent shows the account holder: the "
    "depicted person must verify and record their consent themselves.",
    Reason.FACE_BORDERLINE: "A face comparison is borderline: a reviewer will check it.",
    Reason.VOICE_BORDERLINE: "A voice comparison is borderline: a reviewer will check it.",
}


def thresholds() -> ConsentThresholds:
    cfg = current_app.config
    return ConsentThresholds(
        face_accept=float(cfg["CONSENT_FACE_ACCEPT"]),
        face_reject=float(cfg["CONSENT_FACE_REJECT"]),
        voice_accept=float(cfg["CONSENT_VOICE_ACCEPT"]),
        voice_reject=float(cfg["CONSENT_VOICE_REJECT"]),
        min_motion=float(cfg["CONSENT_MIN_MOTION"]),
        statement_words=int(cfg["CONSENT_STATEMENT_WORDS"]),
        cue_early_s=float(cfg["CONSENT_CUE_EARLY_S"]),
        cue_late_s=float(cfg["CONSENT_CUE_LATE_S"]),
    )


# -- templates ---------------------------------------------------------------------------


def keep_template(upload: Upload, **arrays: np.ndarray | None) -> str:
    """Store ``faces`` and/or ``voice`` of an upload, encrypted under its subject's key;
    returns the template's blob id."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v for k, v in arrays.items() if v is not None})
    buffer.seek(0)
    upload.template_blob_id, _, _ = store(subject_key(upload), buffer)
    return upload.template_blob_id


def _compute(upload: Upload) -> dict[str, np.ndarray]:
    from compliance import media
    from pipeline.consent_media import face_embeddings, sample_frames, voice_embedding

    with tempfile.TemporaryDirectory(prefix="dhf-template-") as tmp:
        path = vault().export(subject_key(upload), upload.blob_id, Path(tmp) / "media")
        try:
            if upload.kind == "voice_sample":
                voice = voice_embedding(media.audio(path, 16000, 60.0))
                return {} if voice is None else {"voice": voice}
            return {"faces": face_embeddings(sample_frames(path, FOOTAGE_FACES))}
        except (media.MediaError, av.error.FFmpegError, ValueError, IndexError):
            # an unreadable file shows nobody; footage like this is refused at the gate
            # (face_unverifiable), and training could not read it either
            return {}


def template(upload: Upload) -> dict[str, np.ndarray]:
    """The upload's identity template (made and kept on first use)."""
    blob_id = upload.template_blob_id
    if blob_id is None:
        blob_id = keep_template(upload, **_compute(upload))
    raw = vault().read(subject_key(upload), blob_id)
    with np.load(io.BytesIO(raw), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _stack(arrays: list[np.ndarray], width: int) -> np.ndarray | None:
    found = [a.reshape(-1, width) for a in arrays if a.size]
    return np.concatenate(found) if found else None


# -- the inputs of one subject --------------------------------------------------------------


def _uploads(subject: Subject, kind: str) -> list[Upload]:
    query = select(Upload).where(
        Upload.subject_id == subject.id,
        Upload.kind == kind,
        Upload.status.in_((UploadStatus.STORED, UploadStatus.VALID)),
    )
    return list(db.session.scalars(query.order_by(Upload.created_at)))


def consent_upload(subject: Subject) -> Upload | None:
    """The recording of the subject's standing consent (verified or awaiting review)."""
    record = db.session.scalar(
        select(ConsentRecord).where(
            ConsentRecord.subject_id == subject.id,
            ConsentRecord.status.in_((ConsentStatus.VERIFIED, ConsentStatus.NEEDS_REVIEW)),
        )
    )
    if record is None or record.recording_upload_id is None:
        return None
    return db.session.get(Upload, record.recording_upload_id)


def verified_identity(subject: Subject) -> IdentityCheck | None:
    """The verified KYC of the depicted person: the account holder's own for 'self'."""
    query = select(IdentityCheck).where(IdentityCheck.status == KycStatus.VERIFIED)
    if subject.relation == "self":
        query = query.where(
            IdentityCheck.user_id == subject.owner_id, IdentityCheck.subject_id.is_(None)
        )
    else:
        query = query.where(IdentityCheck.subject_id == subject.id)
    return db.session.scalar(query.order_by(IdentityCheck.created_at.desc()).limit(1))


def holder_faces(owner_id: str) -> np.ndarray | None:
    """The account holder's own face: their KYC selfie and their own consent recordings."""
    from ..identity.self_hosted import selfie_template

    faces = []
    own = db.session.scalars(
        select(IdentityCheck).where(
            IdentityCheck.user_id == owner_id,
            IdentityCheck.subject_id.is_(None),
            IdentityCheck.face_blob_id.is_not(None),
        )
    )
    faces += [t for check in own if (t := selfie_template(check)) is not None]
    selves = db.session.scalars(
        select(Subject).where(
            Subject.owner_id == owner_id,
            Subject.relation == "self",
            Subject.key_destroyed_at.is_(None),
        )
    )
    for self_subject in selves:
        if (upload := consent_upload(self_subject)) is not None:
            faces.append(template(upload).get("faces", np.zeros((0, 128))))
    return _stack(faces, 128)


FIELDS = (
    "consent_faces",
    "consent_voice",
    "kyc_face",
    "training_faces",
    "take_voices",
    "holder_faces",
)
# what a newly arrived input is compared with
PARTNERS = {
    "consent": ("kyc_face", "training_faces", "take_voices", "holder_faces"),
    "training_faces": ("consent_faces", "kyc_face", "holder_faces"),
    "take_voices": ("consent_voice",),
    "kyc_face": ("consent_faces", "training_faces", "holder_faces"),
}


def holder_reasons(check: IdentityCheck, selfie: np.ndarray, scores: dict[str, float]) -> list[str]:
    """Another person's KYC must show another face than the account holder's own (R2)."""
    holder = holder_faces(check.user_id)
    if holder is None:
        return []
    scores["face_holder"] = distance = round(face_distance(selfie, holder), 4)
    return ["same_person_as_holder"] if distance <= thresholds().face_reject else []


def likeness(subject: Subject, fields: tuple[str, ...] = FIELDS) -> Likeness:
    """The templates of the subject's inputs that exist now, for ``fields`` only."""
    from ..identity.self_hosted import selfie_template

    found: dict[str, np.ndarray | None] = {}
    if {"consent_faces", "consent_voice"} & set(fields):
        if (upload := consent_upload(subject)) is not None:
            kept = template(upload)
            found["consent_faces"], found["consent_voice"] = kept.get("faces"), kept.get("voice")
    if "kyc_face" in fields and (identity := verified_identity(subject)) is not None:
        found["kyc_face"] = selfie_template(identity)
    if "training_faces" in fields:
        footage = [
            template(u).get("faces", np.zeros((0, 128)))
            for u in _uploads(subject, "training_video")
        ]
        found["training_faces"] = _stack(footage, 128)
    if "take_voices" in fields:
        takes = [
            template(u).get("voice", np.zeros((0, 256))) for u in _uploads(subject, "voice_sample")
        ]
        found["take_voices"] = _stack(takes, 256)
    if "holder_faces" in fields and subject.relation == "other":
        found["holder_faces"] = holder_faces(subject.owner_id)
    return Likeness(**{k: v for k, v in found.items() if k in fields})


def check_arrival(subject: Subject, **new: np.ndarray | None) -> Binding:
    """Compare a newly arrived input (``training_faces=``, ``take_voices=`` or
    ``kyc_face=``) with the subject's inputs it pairs with."""
    ((name, value),) = new.items()
    have = likeness(subject, PARTNERS[name])
    return bind(replace(have, **{name: value}), thresholds())


def require_one_person(subject: Subject) -> Binding:
    """The training gate: every pair of inputs shows one person, or 403 with the reason.

    Borderline pairs pass only once a reviewer approved the consent after the newest input.
    """
    for footage in _uploads(subject, "training_video"):
        if len(template(footage).get("faces", ())) < MIN_FACES:
            raise Forbidden(MESSAGES["face_unverifiable"], code="face_unverifiable")
    binding = bind(likeness(subject), thresholds())
    hard = [
        r for r in binding.reasons if r not in (Reason.FACE_BORDERLINE, Reason.VOICE_BORDERLINE)
    ]
    if hard:
        raise Forbidden(MESSAGES.get(hard[0], str(hard[0])), code=str(hard[0]))
    if binding.reasons and not _reviewed_after_inputs(subject):
        _to_review(subject, binding)
        raise Forbidden(MESSAGES[binding.reasons[0]], code="needs_review")
    return binding


def _to_review(subject: Subject, found: Binding) -> None:
    """A borderline pair: the consent waits for a reviewer (/admin/consent) again."""
    record = db.session.scalar(select(ConsentRecord).where(ConsentRecord.subject_id == subject.id))
    if record is not None and record.status == ConsentStatus.VERIFIED:
        record.status = ConsentStatus.NEEDS_REVIEW
        record.reasons = [str(r) for r in found.reasons]
        record.scores = found.scores
        db.session.commit()


def _reviewed_after_inputs(subject: Subject) -> bool:
    record = db.session.scalar(select(ConsentRecord).where(ConsentRecord.subject_id == subject.id))
    newest = db.session.scalar(
        select(Upload.created_at)
        .where(Upload.subject_id == subject.id)
        .order_by(Upload.created_at.desc())
        .limit(1)
    )
    if record is None or record.reviewed_at is None or newest is None:
        return False
    return _aware(record.reviewed_at) >= _aware(newest)


def _aware(moment):
    from ..models import utcnow

    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
