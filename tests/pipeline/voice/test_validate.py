"""Take validation on real speech (CMU ARCTIC slt): each bad take gets its own reason."""

from __future__ import annotations

import numpy as np
import pytest

from compliance.media import audio
from pipeline.voice import prompts
from pipeline.voice.validate import MESSAGES, check_file, check_samples

from ...conftest import SHARED_DATA

SLT = SHARED_DATA / "voice_slt" / "train"


@pytest.fixture(scope="module")
def take() -> tuple[np.ndarray, str]:
    wav = SLT / "arctic_a0001.wav"
    if not wav.exists():
        pytest.skip(f"shared data missing: {wav}")
    return audio(wav, 16000), (SLT / "arctic_a0001.txt").read_text().strip()


def test_a_clean_take_of_the_prompt_passes(take: tuple[np.ndarray, str]) -> None:
    verdict = check_file(SLT / "arctic_a0001.wav", take[1])
    assert verdict.ok, verdict
    assert verdict.info["snr_db"] > 30
    assert verdict.info["wer"] <= 0.6  # Whisper heard the sentence


def test_a_silent_take_is_no_speech(take: tuple[np.ndarray, str]) -> None:
    verdict = check_samples(np.zeros(16000 * 3, np.float32), take[1])
    assert (verdict.ok, verdict.reason) == (False, "no_speech")
    assert verdict.message == MESSAGES["no_speech"]


def test_a_clipped_take_is_clipped(take: tuple[np.ndarray, str]) -> None:
    verdict = check_samples(np.clip(take[0] * 8, -1, 1), take[1])
    assert (verdict.ok, verdict.reason) == (False, "clipped")


def test_a_take_of_another_sentence_is_wrong_words(take: tuple[np.ndarray, str]) -> None:
    other = (SLT / "arctic_a0005.txt").read_text().strip()
    verdict = check_samples(take[0], other)
    assert (verdict.ok, verdict.reason) == (False, "wrong_words")
    assert verdict.message.startswith("The recording does not match the sentence on screen.")


@pytest.mark.parametrize(
    ("transform", "reason"),
    [
        (lambda x: x * 0.01, "too_quiet"),
        (lambda x: x + 0.05 * np.random.default_rng(0).standard_normal(len(x)), "noisy"),
        (lambda x: np.concatenate([x, np.zeros(16000 * 30, np.float32)]), "too_long"),
        (lambda x: x[:16000], "too_short"),
    ],
)
def test_other_bad_takes(take: tuple[np.ndarray, str], transform, reason: str) -> None:  # type: ignore[no-untyped-def]
    verdict = check_samples(transform(take[0]).astype(np.float32), take[1])
    assert (verdict.ok, verdict.reason) == (False, reason)


def test_the_shipped_prompts_cover_every_phone_and_skip_heldout_sentences() -> None:
    shipped = prompts.load()
    assert len(shipped) == 100 and len({p.id for p in shipped}) == 100
    cover = prompts.coverage(p.text for p in shipped)
    assert cover["phones"] == cover["phones_total"] == 39
    heldout = SHARED_DATA / "voice_slt" / "heldout"
    banned = {t.read_text().strip() for t in heldout.glob("*.txt")}
    assert not banned & {p.text for p in shipped}
