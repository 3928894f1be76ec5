"""The tiny profile trains a real model on a few slt takes, and it learned the speaker:
its speech is closer to slt's held-out recordings than the base voice is, and Whisper
still understands it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compliance.media import audio, resample
from pipeline.voice.evaluate import _embed, _wer
from pipeline.voice.features import OUTPUT_RATE, RATE, base_voice
from pipeline.voice.model import VoiceModel, settings_for
from pipeline.voice.synthesize import sentences, synthesize
from pipeline.voice.train import takes_in, train

from ...conftest import SHARED_DATA

pytestmark = pytest.mark.slow
SLT = SHARED_DATA / "voice_slt"
# Whisper WER of the tiny clone (16 takes) on the first 3 held-out sentences: measured
# 0.33, 0.0, 0.18 (mean 0.17); speech Whisper cannot follow scores near 1
WER_MAX = 0.3


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    if not SLT.exists():
        pytest.skip(f"shared data missing: {SLT}")
    sixteen = tmp_path_factory.mktemp("takes")
    for take in takes_in(SLT / "train")[:16]:
        for part in (take.wav, take.wav.with_suffix(".txt")):
            (sixteen / part.name).symlink_to(part)
    return train(sixteen, tmp_path_factory.mktemp("voice"), "tiny", progress=lambda f, s: None)


def test_tiny_training_writes_a_checkpoint_and_a_report(trained) -> None:  # type: ignore[no-untyped-def]
    checkpoint, report = trained
    assert checkpoint.exists() and (checkpoint.parent / "report.png").stat().st_size > 1000
    assert report["sentences"] == 16 and report["settings"]["name"] == "tiny"
    assert report["loss_train"][-1] < report["loss_train"][0]  # it learned something
    model = VoiceModel.load(checkpoint)
    assert model.settings == settings_for("tiny")


@pytest.fixture(scope="module")
def heldout_speech(trained) -> tuple[list, list[np.ndarray]]:  # type: ignore[no-untyped-def]
    """Three held-out sentences in the tiny clone's voice, back at the judges' 16 kHz."""
    model = VoiceModel.load(trained[0])
    heldout = takes_in(SLT / "heldout")[:3]
    return heldout, [resample(next(sentences(model, t.text)), OUTPUT_RATE, RATE) for t in heldout]


def test_the_cloned_voice_is_closer_to_the_speaker_than_the_base_voice(heldout_speech) -> None:  # type: ignore[no-untyped-def]
    heldout, speech = heldout_speech
    real = [_embed(audio(t.wav, RATE)) for t in heldout]
    gen = [_embed(x) for x in speech]
    base = [_embed(base_voice(t.text)) for t in heldout]
    sim_gen = np.mean([g @ r for g in gen for r in real])
    sim_base = np.mean([b @ r for b in base for r in real])
    assert sim_gen > sim_base + 0.02, (sim_gen, sim_base)


def test_whisper_understands_the_cloned_voice(heldout_speech) -> None:  # type: ignore[no-untyped-def]
    heldout, speech = heldout_speech
    wer = [_wer(x, t.text) for x, t in zip(speech, heldout, strict=True)]
    assert np.mean(wer) <= WER_MAX, wer


def test_synthesize_joins_sentences_at_the_target_loudness(trained) -> None:  # type: ignore[no-untyped-def]
    samples, rate = synthesize(trained[0], "He will follow us soon. Will we ever forget it?")
    assert rate == OUTPUT_RATE == 22050 and 1.5 < len(samples) / rate < 6
    loud = np.sort(np.square(samples[: len(samples) // 320 * 320].reshape(-1, 320)).mean(1))
    dbfs = 10 * np.log10(loud[len(loud) // 2 :].mean())
    assert -25 < dbfs < -21
