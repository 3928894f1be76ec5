"""Consent checks on real recordings: the GRID speaker saying a passcode (cut from the
corpus by its word timings), against his own and other people's faces and voices."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from compliance import media
from compliance.consent import ConsentThresholds, Evidence, Reason, References, decide, statement
from pipeline import bundled
from pipeline.consent_media import analyse, face_embeddings, voice_embedding

from ..conftest import SHARED_DATA

pytestmark = pytest.mark.slow
GRID = SHARED_DATA / "grid_s1"
PASSCODE = "3205"
# GRID cannot say our statement: these tests waive the statement words and check them apart
NO_STATEMENT = ConsentThresholds(statement_words=0)
# What the speaker said, from the corpus transcripts. Cut out of whole sentences, these
# isolated digits defeat pocketsphinx (open LM: "i'll freeze the tube and zero to eighty
# five"; statement grammar: "of face a two that and zero that two five"), so recognition is
# tested on a fluently spoken statement below; the face, voice and liveness checks run on
# features measured from this real recording.
SAID = "three two zero five"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _digit_cut(clip: Path, out: Path) -> None:
    """The clip's spoken digit (5th word), 0.15 s either side, from its .align timings."""
    words = [line.split() for line in clip.with_suffix(".align").read_text().splitlines()]
    start, end, _ = [w for w in words if w[2] != "sil"][4]
    begin, finish = int(start) / 25000 - 0.15, int(end) / 25000 + 0.15
    media.ffmpeg(["-ss", f"{begin:.3f}", "-to", f"{finish:.3f}", "-i", str(clip),
                  "-c:v", "libx264", "-crf", "12", "-c:a", "aac", str(out)])  # fmt: skip


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
    refs = References(
        kyc_face=face_embeddings(list(media.frames(train[-1], every=50))[:1])[0],
        training_faces=np.concatenate(training),
        voice_samples=np.array([voice_embedding(media.audio(c, 16000)) for c in train]),
    )
    return analyse(live), analyse(still), refs


def _evidence(features, **changes) -> Evidence:  # type: ignore[no-untyped-def]
    base = Evidence(
        transcript=SAID,
        faces=features.faces,
        voice=features.voice,
        motion=features.motion,
        issued_at=NOW,
        recorded_at=NOW + timedelta(minutes=5),
        is_adult=True,
    )
    return replace(base, **changes)


def test_the_real_speaker_saying_the_code_is_verified(recordings):
    live, _, refs = recordings
    decision = decide(_evidence(live), refs, PASSCODE, NO_STATEMENT)
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
    decision = decide(_evidence(live, **change), refs, passcode, NO_STATEMENT)
    assert decision.status == "rejected" and decision.reasons == [reason]


def test_another_persons_face_is_rejected(recordings):
    live, _, refs = recordings
    astronaut = bundled.face_embedding(bundled.test_face())
    decision = decide(_evidence(live), replace(refs, kyc_face=astronaut), PASSCODE, NO_STATEMENT)
    assert decision.reasons == [Reason.FACE_MISMATCH_KYC]
    assert decision.scores["face_kyc"] > 0.6


def test_another_persons_voice_is_rejected(recordings):
    live, _, refs = recordings
    slt = [
        voice_embedding(media.audio(p, 16000))
        for p in sorted((SHARED_DATA / "voice_slt" / "train").glob("*.wav"))[:12]
    ]
    decision = decide(
        _evidence(live), replace(refs, voice_samples=np.array(slt)), PASSCODE, NO_STATEMENT
    )
    assert decision.reasons == [Reason.VOICE_MISMATCH]
    piper, rate = bundled.piper_say("three two zero five, I agree to this.", deterministic=True)
    fake = voice_embedding(media.resample(piper.astype(np.float32) / 32768, rate, 16000))
    decision = decide(_evidence(live, voice=fake), refs, PASSCODE, NO_STATEMENT)
    assert Reason.VOICE_MISMATCH in decision.reasons


def test_a_still_image_with_the_right_audio_is_not_live(recordings):
    live, still, refs = recordings
    assert still.motion < 1.0 <= live.motion
    decision = decide(_evidence(still), refs, PASSCODE, NO_STATEMENT)
    assert decision.reasons == [Reason.NOT_LIVE]


def test_the_statement_must_be_heard_by_default(recordings):
    live, _, refs = recordings
    decision = decide(_evidence(live), refs, PASSCODE)
    assert decision.reasons == [Reason.STATEMENT_NOT_HEARD]
    spoken = statement("Ada", "3205").lower().replace(".", "").replace(",", "")
    spoken = spoken.replace("3 2 0 5", "three two zero five")
    assert decide(_evidence(live, transcript=spoken), refs, PASSCODE).status == "verified"


def test_borderline_goes_to_review(recordings):
    live, _, refs = recordings
    strict = ConsentThresholds(statement_words=0, face_accept=0.05)
    decision = decide(_evidence(live), refs, PASSCODE, strict)
    assert decision.status == "needs_review" and Reason.FACE_BORDERLINE in decision.reasons


def test_the_spoken_statement_and_code_are_recognised():
    """ASR of a fluent reading of the statement (the shipped voice reads it)."""
    from compliance.consent import passcode_heard
    from pipeline.consent_media import transcribe_statement

    audio, rate = bundled.piper_say(statement("Ada", "4719"), deterministic=True)
    heard = transcribe_statement(audio, rate)
    assert passcode_heard(heard, "4719"), heard
    assert not passcode_heard(heard, "4718") and not passcode_heard(heard, "9174")
    assert {"agree", "digital", "likeness", "face", "voice"} <= set(heard.split())
