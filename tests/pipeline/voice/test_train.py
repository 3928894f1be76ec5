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
from pipeline.voice.samples import KINDS, heldback
from pipeline.voice.synthesize import sentences, synthesize
from pipeline.voice.train import takes_in

from ...conftest import SHARED_DATA

pytestmark = pytest.mark.slow
SLT = SHARED_DATA / "voice_slt"
# Whisper WER of the tiny clone (16 takes) on the first 3 held-out sentences: measured
# 0.33, 0.0, 0.18 (mean 0.17); speech Whisper cannot follow scores near 1
WER_MAX = 0.3


@pytest.fixture(scope="module")
def trained(tiny_voice: tuple[Path, dict]) -> tuple[Path, dict]:  # type: ignore[type-arg]
    return tiny_voice


def test_tiny_training_writes_a_checkpoint_and_a_report(trained) -> None:  # type: ignore[no-untyped-def]
    checkpoint, report = trained
    assert checkpoint.exists() and (checkpoint.parent / "report.png").stat().st_size > 1000
    assert report["sentences"] == 16 and report["settings"]["name"] == "tiny"
    assert report["loss_train"][-1] < report["loss_train"][0]  # it learned something
    model = VoiceModel.load(checkpoint)
    assert model.settings == settings_for("tiny")


def test_the_report_plays_three_held_back_sentences(trained) -> None:  # type: ignore[no-untyped-def]
    checkpoint, report = trained
    takes = takes_in(SLT / "train")[:16]
    held = [takes[i].text for i in heldback(16)]
    samples = report["samples"]
    assert [s["sentence"] for s in samples] == held and len(held) == 3
    assert isinstance(report["samples_similarity_gain"], float)
    for s in samples:
        for kind in KINDS:
            wav = checkpoint.parent / s["files"][kind]
            assert wav.stat().st_size > 16000, wav  # real audio, not an empty file
            assert 0 <= s["wer"][kind] <= 1.5 and -1 <= s["similarity"][kind] <= 1
        assert s["rate_hz"] == {"real": 16000, "clone": 22050, "base": 22050}
        assert s["wer"]["real"] <= 0.3  # the speaker's own read take: Whisper follows it


def test_held_back_sentences_are_one_in_twenty_and_three_for_small_sets() -> None:
    assert heldback(100) == [0, 20, 40, 60, 80] and heldback(75) == [0, 20, 40, 60]
    assert heldback(16) == [0, 5, 10] and heldback(45) == [0, 15, 30] and heldback(4) == []


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
