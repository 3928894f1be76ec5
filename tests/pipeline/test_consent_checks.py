"""Consent checks on real recordings: the GRID speaker saying a passcode (cut from the
corpus by its word timings), against his own and other people's faces and voices."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from compliance import media
from compliance.consent import (
    SAY_DIGIT,
    TURN_LEFT,
    Challenge,
    ConsentThresholds,
    Cue,
    Evidence,
    Likeness,
    Reason,
    decide,
    statement,
)
from pipeline import bundled
from pipeline.consent_media import analyse, face_embeddings, voice_embedding

from ..conftest import SHARED_DATA

pytestmark = pytest.mark.slow
GRID = SHARED_DATA / "grid_s1"
PASSCODE = "3205"
# GRID cannot say our statement: these tests waive the statement words and check them apart
NO_STATEMENT = ConsentThresholds(statement_words=0)
# The face, voice and liveness checks run on features measured from this real recording;
# the words and their timing are given (the challenge is tested in tests/compliance and on
# whole recordings in tests/webapp).
CHALLENGE = Challenge(
    (
        Cue(SAY_DIGIT, 2.0),
        Cue(SAY_DIGIT, 4.8),
        Cue(TURN_LEFT, 7.6),
        Cue(SAY_DIGIT, 10.4),
        Cue(SAY_DIGIT, 13.2),
    )
)
HEARD = (("3", 2.5), ("2", 5.3), ("0", 10.9), ("5", 13.7))
TURNED = ((8.2, "left"),)
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _digit_cut(clip: Path, out: Path) -> None:
    """The clip's spoken digit (5th word), 0.15 s either side, from its .align timings."""
    words = [line.split() for line in clip.with_suffix(".align").read_text().splitlines()]
    start, end, _ = [w for w in words if w[2] != "sil"][4]
    begin, finish = int(start) / 25000 - 0.15, int(end) / 25000 + 0.15
    media.ffmpeg(
        [
            "-ss",
            f"{begin:.3f}",
            "-to",
            f"{finish:.3f}",
            "-i",
            str(clip),
            "-c:v",
            "libx264",
            "-crf",
            "12",
            "-c:a",
            "aac",
            str(out),
        ]
    )


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):  # type: ignore[no-untyped-def]
    if not GRID.exists():
        pytest.skip("shared data missing")
    work = tmp_path_factory.mktemp("consent")
    parts = []
    for i, name in enumerate(["bbil3s", "bgbb2p", "brimzp", "bwat5a"]):  # 3, 2, 0, 5
        parts.append(work / f"d{i}.mp4")
        _digit_cut(GRID / "heldout" / f"{name}.mpg", parts[-1])
    live = work / "consent.mp4"
    media.concat(parts, live)
    still_frame = work / "still.png"
    media.ffmpeg(["-i", str(live), "-frames:v", "1", str(still_frame)])
    still = work / "still.mp4"
    loop = ["-loop", "1", "-i", str(still_frame), "-i", str(live), "-map", "0:v", "-map", "1:a"]
    codecs = ["-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    media.ffmpeg([*loop, *codecs, str(still)])
    train = sorted((GRID / "train").glob("*.mpg"))[:12]
    training = [face_embeddings(list(media.frames(c, every=40))[:2]) for c in train[:4]]
    refs = Likeness(
        kyc_face=face_embeddings(list(media.frames(train[-1], every=50))[:1])[0],
        training_faces=np.concatenate(training),
        take_voices=np.array([voice_embedding(media.audio(c, 16000)) for c in train]),
    )
    return analyse(live), analyse(still), refs


def _evidence(features, **changes) -> Evidence:  # type: ignore[no-untyped-def]
    base = Evidence(
        transcript="",
        digits=HEARD,
        turns=TURNED,
        faces=features.faces,
        voice=features.voice,
        motion=features.motion,
        issued_at=NOW,
        recorded_at=NOW + timedelta(minutes=5),
        is_adult=True,
    )
    return replace(base, **changes)


def _decide(evidence, refs, passcode=PASSCODE, thresholds=NO_STATEMENT):  # type: ignore[no-untyped-def]
    return decide(evidence, CHALLENGE, lambda s: s == passcode, refs, (), thresholds)


def test_the_real_speaker_saying_the_code_is_verified(recordings):
    live, _, refs = recordings
    decision = _decide(_evidence(live), refs)
    assert decision.status == "verified", decision
    assert decision.scores["face_kyc"] < 0.45 and decision.scores["voice"] >= 0.75


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"passcode": "9999"}, Reason.PASSCODE_NOT_HEARD),
        ({"recorded_at": NOW + timedelta(minutes=31)}, Reason.PASSCODE_EXPIRED),
        ({"is_adult": False}, Reason.UNDERAGE),
    ],
)
def test_each_failure_has_its_own_reason(recordings, change, reason):
    live, _, refs = recordings
    passcode = change.pop("passcode", PASSCODE)
    decision = _decide(_evidence(live, **change), refs, passcode)
    assert decision.status == "rejected" and decision.reasons == [reason]


def test_another_persons_face_is_rejected(recordings):
    live, _, refs = recordings
    astronaut = bundled.face_embedding(bundled.test_face())
    decision = _decide(_evidence(live), replace(refs, kyc_face=astronaut))
    assert decision.reasons == [Reason.FACE_MISMATCH_KYC, Reason.TRAINING_MISMATCH_KYC]
    assert decision.scores["face_kyc"] > 0.6


def test_another_persons_voice_is_rejected(recordings):
    live, _, refs = recordings
    slt = [
        voice_embedding(media.audio(p, 16000))
        for p in sorted((SHARED_DATA / "voice_slt" / "train").glob("*.wav"))[:12]
    ]
    decision = _decide(_evidence(live), replace(refs, take_voices=np.array(slt)))
    assert decision.reasons == [Reason.VOICE_MISMATCH]
    piper, rate = bundled.piper_say("three two zero five, I agree to this.", deterministic=True)
    fake = voice_embedding(media.resample(piper.astype(np.float32) / 32768, rate, 16000))
    decision = _decide(_evidence(live, voice=fake), refs)
    assert Reason.VOICE_MISMATCH in decision.reasons


def test_a_still_image_with_the_right_audio_is_not_live(recordings):
    live, still, refs = recordings
    assert still.motion < 1.0 <= live.motion
    decision = _decide(_evidence(still), refs)
    assert decision.reasons == [Reason.NOT_LIVE]


def test_the_statement_must_be_heard_by_default(recordings):
    live, _, refs = recordings
    decision = _decide(_evidence(live), refs, thresholds=ConsentThresholds())
    assert decision.reasons == [Reason.STATEMENT_NOT_HEARD]
    spoken = statement("Ada").lower().replace(".", "").replace(",", "")
    evidence = _evidence(live, transcript=spoken)
    assert _decide(evidence, refs, thresholds=ConsentThresholds()).status == "verified"


def test_borderline_goes_to_review(recordings):
    live, _, refs = recordings
    strict = ConsentThresholds(statement_words=0, face_accept=0.05)
    decision = _decide(_evidence(live), refs, thresholds=strict)
    assert decision.status == "needs_review" and Reason.FACE_BORDERLINE in decision.reasons


def test_the_spoken_statement_and_code_are_recognised():
    """Whisper hears a fluent reading of the statement and the code (the shipped voice)."""
    from pipeline import asr

    audio, rate = bundled.piper_say("4 7 1 9. " + statement("Ada"), deterministic=True)
    heard = asr.transcribe(audio.astype(np.float32) / 32768, rate)
    assert [d for d, _, _ in asr.spoken_digits(heard.words)][:4] == list("4719"), heard.text
    assert {"agree", "digital", "likeness", "face", "voice"} <= {w.text for w in heard.words}
