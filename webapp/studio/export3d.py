"""The avatar's 3D model as a GLB (``GET /api/v1/avatars/{id}/model.glb``).

Owner only, and only while the likeness may be used (KYC, consent, freeze: the same gate
as a render). Every export is a new file with its own content and watermark ids,
registered in the content registry (R15) and audited: the watermark is embedded in the
texture image (the same video watermark as renders; whether it survives a third party's
rendering of the model is not measured yet), and ``asset.extras`` carries the AIGC label
(R11) and a C2PA-style provenance record."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from compliance import aigc
from compliance.audit import EventTag
from compliance.payload import new_watermark_id
from compliance.stamping import ContentSpec
from compliance.watermark import embed_frame

from .. import likeness, registry
from ..audit import record_event
from ..errors import Conflict, Forbidden
from ..extensions import db
from ..models import Avatar, AvatarStatus, ContentRecord, utcnow
from . import tasks

GLB_MIME = "model/gltf-binary"


def export_glb(avatar: Avatar) -> tuple[bytes, ContentSpec]:
    """The GLB of an owned avatar (the caller checked the owner) and its ids."""
    likeness.require(avatar.subject, avatar)
    if avatar.status != AvatarStatus.READY or avatar.model_blob_id is None:
        raise Forbidden("This avatar is not trained yet.", code="avatar_not_ready")
    if avatar.model_purged_at is not None:
        raise Conflict(
            "This avatar's trained model was deleted under our retention schedule: "
            "train it again to export its 3D model.",
            code="model_deleted",
        )
    content = ContentSpec(uuid.uuid4().hex, new_watermark_id())
    data = _build(avatar, content)
    _register(avatar, content)
    return data, content


def _build(avatar: Avatar, content: ContentSpec) -> bytes:
    from pipeline.face.render import FaceRig
    from pipeline.face3d import gltf
    from pipeline.face3d.rig import load_or_build

    settings = registry.compliance_settings()
    bits = settings.codec().encode(content.watermark_id)

    def mark(rgb: npt.NDArray[Any]) -> npt.NDArray[Any]:
        bgr = embed_frame(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), bits)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    with tempfile.TemporaryDirectory(prefix="dhf-glb-") as tmp:
        model = tasks.model_dir(avatar, Path(tmp) / "model")
        face = FaceRig.load(model / "face")
        rig = load_or_build(model / "face")
        closed = face.trained.space.decode(face.trained.neutral[None])[0]
        extras = provenance(avatar, content, settings)
        return gltf.write(rig, face.arrays["shapes"], closed, extras, mark)


def provenance(avatar: Avatar, content: ContentSpec, settings: Any) -> dict[str, Any]:
    """``asset.extras``: the signed AIGC label and a C2PA-style provenance record."""
    label = aigc.build(settings.producer, content.content_id, content.watermark_id, settings.keys)
    return {
        "AIGC": label,
        "provenance": {
            "claim_generator": "Digital Human Factory",
            "digital_source_type": (
                "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
            ),
            "actions": [{"action": "c2pa.created", "when": utcnow().isoformat()}],
            "content_id": content.content_id,
            "watermark_id": content.watermark_id,
            "watermark": "embedded in the texture image (the video watermark of our renders)",
            "ai_generated": True,
            "notice": "AI-generated 3D likeness, made with the depicted person's consent.",
            "verify": "/api/v1/verify",
        },
    }


def _register(avatar: Avatar, content: ContentSpec) -> None:
    consent = likeness.latest_consent(avatar.subject_id)
    db.session.add(
        ContentRecord(
            content_id=content.content_id,
            owner_id=avatar.owner_id,
            avatar_id=avatar.id,
            subject_id=avatar.subject_id,
            consent_record_id=consent.id if consent else None,
            produce_id=content.content_id,
            watermark_id=content.watermark_id,
        )
    )
    record_event(
        EventTag.AVATAR_MODEL_EXPORTED,
        actor_id=avatar.owner_id,
        data={
            "avatar": avatar.id,
            "content": content.content_id,
            "watermark": content.watermark_id,
        },
    )
    db.session.commit()
