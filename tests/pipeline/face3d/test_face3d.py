"""The 3D rig and its looks, on real footage (two GRID clips, built once per module).

The audio model here is the tiny profile trained for a few epochs only: these tests
check the rig, the renderer and the stamp, not learning (tests/pipeline/face proves
the audio model learns)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pygltflib
import pytest

from compliance import media
from compliance.consent import face_distance
from compliance.payload import new_watermark_id
from compliance.stamping import ContentSpec
from compliance.verification import verify
from pipeline.consent_media import face_embeddings
from pipeline.face import landmarks as lm
from pipeline.face.composite import CompositeOptions
from pipeline.face.render import FaceRig
from pipeline.face3d import gltf, mesh
from pipeline.face3d import render as render3d
from pipeline.face3d.rig import EYES, Rig, eye_openness
from pipeline.face3d.scene import LOOKS, Scene

from ... import factories
from ...conftest import REPO, Face3dFootage, pack_face


@dataclass
class Footage:
    avatar: FaceRig
    rig: Rig
    clip: Path


@pytest.fixture(scope="module")
def footage(face3d_footage: Face3dFootage) -> Footage:
    face = face3d_footage.face
    return Footage(FaceRig.load(face), Rig.load(face / "rig3d"), face3d_footage.clip)


def test_rig_builds_from_real_footage(footage: Footage) -> None:
    rig, points = footage.rig, footage.avatar.arrays["points"]
    assert rig.triangles.shape == (mesh.TRIANGLES, 3) and rig.face.shape == (468, 3)
    gap = lm.opening(points)
    assert gap[rig.neutral] <= np.percentile(gap, 20)  # a closed mouth
    assert gap[rig.teeth_frame] >= np.percentile(gap, 95)  # the person's open mouth
    assert rig.relief.shape[0] > 300 and rig.relief_triangles.max() < rig.relief.shape[0]
    alpha = rig.image("texture")[..., 3]
    assert ((alpha > 10) & (alpha < 245)).mean() > 0.002  # a soft cut-out edge
    assert (alpha == 0).mean() > 0.2 and (alpha == 255).mean() > 0.2
    assert rig.build_seconds < 60
    nose = rig.face_deform[lm.NOSE_TIP].sum()
    lip = rig.face_deform[lm.LIP_LO]
    assert nose == 0 and lip.argmax() == lm.SHAPE.index(lm.LIP_LO) and lip.max() > 0.99


def _driver(footage: Footage) -> render3d.Driver:
    shapes = footage.avatar.arrays["shapes"]
    return render3d.Driver(footage.rig, shapes[footage.rig.neutral])


def test_open_and_closed_mouth_render_differently(footage: Footage) -> None:
    shapes, rig = footage.avatar.arrays["shapes"], footage.rig
    scene = Scene(rig, "3d_realistic")
    try:
        still = np.eye(3, dtype=np.float32)
        closed = scene.draw(_driver(footage).pose(shapes[rig.neutral], still))
        wide = scene.draw(_driver(footage).pose(shapes[rig.teeth_frame], still))
    finally:
        scene.close()
    found = [p for p in lm.detect([closed, wide], video=False)]
    assert all(p is not None for p in found)
    gaps = [float(lm.opening(p[:, :2])) for p in found if p is not None]
    real = lm.opening(footage.avatar.arrays["points"][[rig.neutral, rig.teeth_frame]])
    assert gaps[1] - gaps[0] > 0.5 * (real[1] - real[0])  # it opens by most of the real gap
    x0, y0 = rig.face[list(mesh.INNER_LIPS), :2].min(0).astype(int) - 4
    x1, y1 = rig.face[list(mesh.INNER_LIPS), :2].max(0).astype(int) + 12
    mouth = np.abs(closed[y0:y1, x0:x1].astype(int) - wide[y0:y1, x0:x1]).mean()
    assert mouth > 8
    assert np.abs(closed[: y0 - 30].astype(int) - wide[: y0 - 30]).mean() < 0.5  # eyes, hair


def test_the_rig_tracks_the_footages_blinks_and_gaze(footage: Footage) -> None:
    rig, points = footage.rig, footage.avatar.arrays["points"]
    assert rig.blink.shape == (len(points),) and rig.gaze.shape == (len(points), 2)
    gap = eye_openness(points)
    shut, wide = gap < 0.5 * np.median(gap), gap > 0.9 * np.median(gap)
    assert shut.sum() >= 2  # the two GRID clips hold blinks
    assert (rig.blink[shut] > 0.6).all() and (rig.blink[wide] == 0).mean() > 0.95
    assert rig.blink[rig.neutral] == 0 and np.abs(rig.gaze).max() < 0.15 * 0.5 * footage_iod(rig)
    drop = rig.face[145, 1] - rig.face[159, 1]  # the right eye's lid gap at its middle
    assert abs(rig.lid_move[159, 1] - drop) < 0.1 * drop and not rig.lid_move[145].any()
    assert not rig.lid_move[[1, 13, 14, 152, 105, 334]].any()  # nose, lips, chin, brows


def footage_iod(rig: Rig) -> float:
    return float(np.linalg.norm(rig.face[33, :2] - rig.face[263, :2]))


def _eye_boxes(rig: Rig) -> list[tuple[slice, slice]]:
    boxes = []
    for eye in EYES:
        ring = rig.face[[*eye.upper, *eye.lower, *eye.corners], :2]
        (x0, y0), (x1, y1) = ring.min(0).astype(int) - 1, ring.max(0).astype(int) + 2
        boxes.append((slice(y0, y1), slice(x0, x1)))
    return boxes


def _dark_centre_x(gray: np.ndarray) -> float:  # type: ignore[type-arg]
    weight = np.clip(100 - gray, 0, None)
    return float((weight * np.arange(gray.shape[1])[None]).sum() / weight.sum())


def test_a_footage_blink_shuts_the_lids_and_the_gaze_moves_the_irises(footage: Footage) -> None:
    rig, shapes = footage.rig, footage.avatar.arrays["shapes"]
    driver, still = _driver(footage), np.eye(3, dtype=np.float32)
    blink = int(np.argmax(rig.blink))  # where the person blinked in the footage
    scene = Scene(rig, "3d_realistic")
    try:
        open_, shut = (
            scene.draw(driver.footage_pose(shapes[rig.neutral], still, t)).astype(int)
            for t in (rig.neutral, blink)
        )
        right = scene.draw(driver.pose(shapes[rig.neutral], still, gaze=np.array([2.0, 0.0])))
    finally:
        scene.close()
    for box in _eye_boxes(rig):
        eye_open, eye_shut = open_[box].mean(-1), shut[box].mean(-1)
        assert np.abs(eye_open - eye_shut).mean() > 6
        assert (eye_shut < 80).sum() < 0.5 * (eye_open < 80).sum()  # the dark iris covered
        assert _dark_centre_x(right[box].mean(-1)) - _dark_centre_x(eye_open) > 0.5
    below = int(rig.face[lm.NOSE_TIP, 1])
    assert np.abs(open_[below:] - shut[below:]).mean() < 0.5  # only the eyes move


def test_realistic_and_semi_frames_keep_the_identity(footage: Footage) -> None:
    avatar, rig = footage.avatar, footage.rig
    real = list(media.frames(footage.clip))[::25]
    picks = np.linspace(0, len(avatar.arrays["shapes"]) - 1, 3).astype(int)
    motions = render3d.head_motions(avatar.manifest, avatar.arrays, picks, rig.face[:, :2].mean(0))
    driver = _driver(footage)
    for look in ("3d_realistic", "3d_semi"):
        scene = Scene(rig, look)
        try:
            frames = [
                scene.draw(driver.pose(avatar.arrays["shapes"][p], m))
                for p, m in zip(picks, motions, strict=True)
            ]
        finally:
            scene.close()
        assert all(p is not None for p in lm.detect(frames, video=False))  # FaceMesh finds it
        distance = face_distance(face_embeddings(frames), face_embeddings(real))
        assert distance <= 0.45, (look, distance)


def test_a_3d_render_is_stamped_and_verifies_as_ours(
    footage: Footage, stamped_media, tmp_path: Path
) -> None:
    samples = media.audio(footage.clip, 16000)[: 16000 * 2]
    content = ContentSpec(uuid.uuid4().hex, new_watermark_id())
    out = tmp_path / "render3d.mp4"
    record = render3d.render_video(
        footage.rig,
        footage.avatar,
        samples,
        16000,
        "3d_cartoon",
        out,
        content,
        stamped_media.settings,
        CompositeOptions(framing="half", background=(20, 60, 120)),
    )
    assert record.content_id == content.content_id
    result = verify(out, stamped_media.settings)
    assert result.verdict == "ai_generated_by_us"
    assert result.watermark.watermark_id == content.watermark_id


def test_every_look_renders_and_an_unknown_one_is_refused(footage: Footage) -> None:
    looks = {}
    pose = _driver(footage).pose(footage.avatar.arrays["shapes"][footage.rig.neutral], np.eye(3))
    for look in LOOKS:
        scene = Scene(footage.rig, look, (256, 205))
        try:
            looks[look] = scene.draw(pose).astype(int)
        finally:
            scene.close()
        assert looks[look].shape == (205, 256, 3) and looks[look].std() > 20
    assert np.abs(looks["3d_realistic"] - looks["3d_cartoon"]).mean() > 10
    with pytest.raises(ValueError, match="unknown 3D look"):
        Scene(footage.rig, "4d_hologram")


VALIDATOR = REPO / ".tools" / "gltf-validator" / "node_modules"


def validator_issues(glb: Path) -> dict:  # type: ignore[type-arg]
    """The Khronos glTF validator's issues (``make gltf-validator`` installs it)."""
    if not (VALIDATOR / "gltf-validator").exists() or shutil.which("node") is None:
        pytest.skip("gltf-validator not installed: run `make gltf-validator` (needs npm)")
    script = REPO / "tests" / "tools" / "validate_gltf.js"
    done = subprocess.run(
        ["node", str(script), str(glb)],
        env={**os.environ, "NODE_PATH": str(VALIDATOR)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_glb_export_passes_the_validator_with_visemes_and_animations(
    footage: Footage, tmp_path: Path
) -> None:
    shapes = footage.avatar.arrays["shapes"]
    data = gltf.write(footage.rig, shapes, shapes[footage.rig.neutral], {"content_id": "c1"})
    doc = pygltflib.GLTF2.load_from_bytes(data)
    assert doc.asset.extras == {"content_id": "c1"}
    names = doc.meshes[0].extras["targetNames"]
    assert names == [f"viseme_{k}" for k in range(gltf.VISEMES)] + ["breath", "blink"]
    assert all(len(p.targets) == len(names) for p in doc.meshes[0].primitives)
    assert [a.name for a in doc.animations] == ["idle", "talk"]
    idle = gltf._idle(len(names))
    assert idle[:, -1].max() == 1 and (np.diff((idle[:, -1] > 0.5).astype(int)) == 1).sum() == 2
    glb = tmp_path / "model.glb"
    glb.write_bytes(data)
    issues = validator_issues(glb)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]


def test_model_glb_is_the_owners_only_registered_audited_and_needs_consent(
    make_app, stamped_media, footage: Footage
) -> None:
    from compliance.audit import EventTag
    from webapp.consent import service as consent
    from webapp.extensions import db
    from webapp.models import AuditEvent, ConsentRecord, ContentRecord
    from webapp.storage import vault

    app = make_app(
        SIGNING_DIR=str(stamped_media.settings.signing_dir),
        WATERMARK_KEYS=stamped_media.watermark_keys,
    )
    with app.app_context():
        owner, other = factories.user(), factories.user()
        subject, _ = factories.consented_subject(owner)
        avatar = factories.avatar(owner, subject)
        avatar.model_blob_id = vault().put(subject.id, io.BytesIO(pack_face(footage.avatar.work)))[
            0
        ]
        avatar.status = "ready"
        db.session.commit()
        mine, theirs, avatar_id = factories.token_for(owner), factories.token_for(other), avatar.id
        subject_id = subject.id
    client = app.test_client()
    for style, status in (("3d_semi", 201), ("4d_hologram", 422)):
        body = {"subject_id": subject_id, "name": "Ada in 3D", "style": style}
        assert client.post("/api/v1/avatars", json=body, headers=mine).status_code == status
    url = f"/api/v1/avatars/{avatar_id}/model.glb"
    assert client.get(url, headers=theirs).status_code == 404
    res = client.get(url, headers=mine)
    assert res.status_code == 200 and res.mimetype == "model/gltf-binary"
    extras = pygltflib.GLTF2.load_from_bytes(res.data).asset.extras
    with app.app_context():
        record = db.session.get(ContentRecord, extras["provenance"]["content_id"])
        assert record is not None and record.avatar_id == avatar_id
        assert record.watermark_id == extras["provenance"]["watermark_id"]
        assert json.loads(extras["AIGC"])["ProduceID"] == record.content_id
        events = db.session.query(AuditEvent).filter_by(tag=str(EventTag.AVATAR_MODEL_EXPORTED))
        assert [e.data["content"] for e in events] == [record.content_id]
        consent.revoke(db.session.query(ConsentRecord).filter_by(subject_id=subject_id).one())
    refused = client.get(url, headers=mine)
    assert refused.status_code == 403 and refused.json["error"] == "consent_revoked"
