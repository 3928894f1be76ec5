"""The face pipeline on a synthetic talking face (tiny profile) and validation rejects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.face import ingest, train
from pipeline.face import landmarks as lm
from pipeline.face.model import AudioToShape
from pipeline.face.render import FaceRig, loop_order, render_frames
from pipeline.face.train import LIP_LO, LIP_UP, load_checkpoint, predict

from . import synthetic


@pytest.fixture(scope="module")
def avatar(tmp_path_factory: pytest.TempPathFactory) -> FaceRig:
    """The tiny profile trained on 16 s of the synthetic talking face."""
    root = tmp_path_factory.mktemp("face")
    synthetic.talking_video(root / "train.mp4", 16.0, seed=1)
    ingest.ingest([root / "train.mp4"], root / "work", "tiny")
    train.train(root / "work", root / "work" / "model", "tiny")
    return FaceRig.load(root / "work")


def predicted_opening(model: AudioToShape, avatar: FaceRig, samples: np.ndarray) -> np.ndarray:
    """Inner-lip gap of the model's shape for ``samples`` (canonical units)."""
    from pipeline.face import features

    t = avatar.trained
    n = int(len(samples) / synthetic.RATE * synthetic.FPS)
    mel = features.log_mel(samples, synthetic.RATE, n, synthetic.FPS)
    shapes = t.space.decode(predict(model, (mel - t.mel_mean) / t.mel_std))
    return shapes[:, LIP_LO, 1] - shapes[:, LIP_UP, 1]


def test_tiny_model_learns_the_mouth_from_the_audio(avatar: FaceRig) -> None:
    env = synthetic.envelope(8.0, seed=99)  # audio the model never heard
    samples = synthetic.speech(env, seed=99)
    truth = synthetic.openings(env, int(8.0 * synthetic.FPS))
    base = synthetic.face()
    frames = [synthetic.open_mouth(base, float(o)) for o in truth]
    measured = lm.opening(np.stack([p[:, :2] for p in lm.detect(frames)]))  # the real gap
    trained = load_checkpoint(avatar.work / "model" / "model.pt").model
    torch.manual_seed(0)
    untrained = AudioToShape(avatar.trained.cfg, len(avatar.trained.space.scale)).eval()
    ours = predicted_opening(trained, avatar, samples)
    theirs = predicted_opening(untrained, avatar, samples)
    assert np.corrcoef(ours, truth)[0, 1] > 0.8  # the known function, reproduced
    assert np.mean((ours - measured) ** 2) < 0.25 * np.mean((theirs - measured) ** 2)
    report = (avatar.work / "model" / "report.json").read_text()
    assert '"ridge_baseline"' in report
    assert (avatar.work / "model" / "loss.png").stat().st_size > 1000


def test_rendering_silence_keeps_the_mouth_closed(avatar: FaceRig) -> None:
    speaking = synthetic.speech(synthetic.envelope(3.0, seed=5), seed=5)
    frames = render_frames(avatar, np.zeros(2 * synthetic.RATE, np.float32), synthetic.RATE)
    talking = render_frames(avatar, speaking, synthetic.RATE)
    silent_gap = lm.opening(np.stack([p[:, :2] for p in lm.detect(frames, video=False)]))
    talking_gap = lm.opening(np.stack([p[:, :2] for p in lm.detect(talking, video=False)]))
    closed, wide = np.percentile(avatar_openings(avatar), [5, 95])
    assert silent_gap.max() < closed + 0.2 * (wide - closed)
    assert talking_gap.max() > closed + 0.5 * (wide - closed)  # the mouth does move with speech


def test_an_idle_loop_plays_forwards_then_back_to_where_it_began(avatar: FaceRig) -> None:
    assert [len(loop_order(n)) for n in (1, 2, 3, 24, 25)] == [1, 2, 3, 24, 25]
    assert loop_order(6) == [0, 1, 2, 3, 2, 1] and loop_order(7) == [0, 1, 2, 3, 3, 2, 1]
    frames = render_frames(avatar, np.zeros(synthetic.RATE, np.float32), synthetic.RATE, loop=True)
    assert len(frames) == synthetic.FPS  # as long as its (silent) sound
    k = len(frames) // 2
    for i in range(1, k):  # the way back shows the way out: no seam when it repeats
        assert np.array_equal(frames[i], frames[len(frames) - i]), i
    moved = [float(np.abs(frames[i].astype(int) - frames[0]).mean()) for i in (1, k)]
    assert moved[1] > moved[0] > 0  # the template moves (not one frame held)


def avatar_openings(avatar: FaceRig) -> np.ndarray:
    return lm.opening(avatar.arrays["points"])


def test_ingest_writes_a_manifest_with_loop_points(avatar: FaceRig) -> None:
    manifest = avatar.manifest
    assert manifest["frames"] == 400 and manifest["face_found"] > 0.95
    assert manifest["clips"][0]["loop_points"], "the pauses with a closed mouth are loop points"
    assert Path(avatar.work / "crops.npy").exists()


def test_render_video_composites_and_stamps(avatar: FaceRig, tmp_path: Path) -> None:
    """... with a live segment's product card drawn before stamping: the card is in the
    frames and the AI label and corner mark are intact over it."""
    from PIL import Image

    from compliance import media
    from compliance.keys import init_keys
    from compliance.labels import find_label, find_mark
    from compliance.payload import new_watermark_id
    from compliance.stamping import ComplianceSettings, ContentSpec
    from pipeline.face.composite import CompositeOptions
    from pipeline.face.render import render_video
    from pipeline.live.card import Card, CardOverlay
    from pipeline.live.measure import frames_at

    keys, _ = init_keys(tmp_path / "keys")
    settings = ComplianceSettings(keys.directory, (("k1", bytes(range(32))),), producer="DHFTEST")
    content = ContentSpec("face-test-1", new_watermark_id())
    samples = synthetic.speech(synthetic.envelope(2.0, seed=7), seed=7)
    options = CompositeOptions(
        size=(256, 256), framing="half", background=(0, 90, 200), tone="warm"
    )
    card = CardOverlay(Card("Kettle", "¥199", Image.new("RGB", (64, 64), (0, 200, 0))))
    out = tmp_path / "out.mp4"
    record = render_video(
        avatar, samples, synthetic.RATE, out, content, settings, options, overlay=card
    )
    info = media.probe(out)
    assert record.content_id == "face-test-1" and record.watermark_id == content.watermark_id
    assert (info.width, info.height) == (256, 256) and info.has_audio
    assert info.duration_s >= 2.0
    opening, later = frames_at(out, [0.2, 1.8])
    x, y, w, h = card.box(256, 256)
    picture = later[y : y + h, x : x + w].astype(int)
    assert (np.abs(picture - (0, 200, 0)).sum(axis=2) < 60).sum() > 200  # the card's picture
    assert find_label(opening) is not None and find_mark(later) is not None  # stamped over it
