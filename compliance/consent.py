"""Automated checks of a live consent statement (R4, R6): each failure has its own reason.

The subject reads a statement with a one-time passcode (valid 30 minutes). A recording
is ``verified`` only when the passcode and the statement are heard, the face matches the
KYC selfie and the training footage, the voice matches the voice samples, it is live, and
the subject is an adult. A hard failure ``rejected``s it; a borderline score sends it to
``needs_review`` (a person decides).

Default thresholds come from measurements on the shared real data (closing note of the
consent work; ``tests/compliance/test_consent.py`` re-derives the separations):
- dlib face distance: same person 0.09-0.36 (1260 pairs, GRID s1 train vs held-out frames),
  different person 0.745-0.816 (GRID s1 vs the astronaut photo). Accept <= 0.45, reject > 0.60.
- Resemblyzer cosine against the mean of >= 10 reference utterances: same person 0.78-0.95,
  different 0.39-0.61 (slt, GRID s1 and the piper voice). Accept >= 0.75, reject < 0.65.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import numpy as np

PASSCODE_TTL = timedelta(minutes=30)
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
STATEMENT_WORDS = ("agree", "digital", "likeness", "face", "voice")


class Reason(StrEnum):
    PASSCODE_EXPIRED = "passcode_expired"
    PASSCODE_NOT_HEARD = "passcode_not_heard"
    STATEMENT_NOT_HEARD = "statement_not_heard"
    NO_FACE = "no_face"
    FACE_MISMATCH_KYC = "face_mismatch_kyc"
    FACE_MISMATCH_TRAINING = "face_mismatch_training"
    FACE_BORDERLINE = "face_borderline"
    NO_VOICE = "no_voice"
    VOICE_MISMATCH = "voice_mismatch"
    VOICE_BORDERLINE = "voice_borderline"
    NOT_LIVE = "not_live"
    UNDERAGE = "underage"
    PROTECTED_PERSON = "protected_person"


BORDERLINE = {Reason.FACE_BORDERLINE, Reason.VOICE_BORDERLINE}
# a person decides: borderline scores, or a likeness of someone in the protected gallery (R19)
FOR_REVIEW = BORDERLINE | {Reason.PROTECTED_PERSON}


@dataclass(frozen=True)
class ConsentThresholds:
    face_accept: float = 0.45  # dlib distance at or below: same person
    face_reject: float = 0.60  # above: another person
    voice_accept: float = 0.75  # cosine to the mean voice sample at or above: same person
    voice_reject: float = 0.65  # below: another person
    min_motion: float = 1.0  # median frame-to-frame change; a still image or frozen video is ~0
    statement_words: int = 3  # of STATEMENT_WORDS that ASR must hear


@dataclass(frozen=True)
class Evidence:
    """Features of the consent recording (pipeline.consent_media.analyse) and context."""

    transcript: str
    faces: np.ndarray  # (n, 128)
    voice: np.ndarray | None  # (256,)
    motion: float
    issued_at: datetime  # when the passcode was issued
    recorded_at: datetime  # when the recording arrived
    is_adult: bool | None  # from KYC


@dataclass(frozen=True)
class ProtectedTemplate:
    """One person of the protected-person gallery (R19): templates only."""

    person_id: str
    face: np.ndarray | None  # (128,) dlib face template
    voice: np.ndarray | None  # (256,) Resemblyzer embedding, unit length


@dataclass(frozen=True)
class References:
    kyc_face: np.ndarray | None = None  # (128,) from the KYC selfie
    training_faces: np.ndarray | None = None  # (n, 128) from the training video
    voice_samples: np.ndarray | None = None  # (k, 256) from the read sentences
    protected: tuple[ProtectedTemplate, ...] = ()  # the protected-person gallery


@dataclass(frozen=True)
class ConsentDecision:
    status: str  # verified | rejected | needs_review
    reasons: list[Reason]
    scores: dict[str, float] = field(default_factory=dict)
    protected_matches: list[str] = field(default_factory=list)  # person ids of the gallery


def new_passcode(digits: int = 4) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(digits))


def statement(name: str, passcode: str) -> str:
    spaced = " ".join(passcode)
    return (
        f"I, {name}, agree that Digital Human Factory may create a digital likeness "
        f"of my face and voice. My code is {spaced}."
    )


def passcode_heard(transcript: str, passcode: str) -> bool:
    """The passcode's digits, in order and adjacent, among the words heard."""
    words = re.findall(r"[a-z]+", transcript.lower())
    wanted = [DIGITS[int(d)] for d in passcode]
    return any(words[i : i + len(wanted)] == wanted for i in range(len(words)))


def _face(
    evidence: Evidence, refs: References, t: ConsentThresholds
) -> tuple[list[Reason], dict[str, float]]:
    if len(evidence.faces) == 0:
        return [Reason.NO_FACE], {}
    reasons, scores = [], {}
    for name, ref, mismatch in (
        ("face_kyc", refs.kyc_face, Reason.FACE_MISMATCH_KYC),
        ("face_training", refs.training_faces, Reason.FACE_MISMATCH_TRAINING),
    ):
        if ref is None or len(ref) == 0:
            continue
        refs2d = np.atleast_2d(ref)
        distance = float(np.median(np.linalg.norm(evidence.faces[:, None] - refs2d[None], axis=2)))
        scores[name] = round(distance, 4)
        if distance > t.face_reject:
            reasons.append(mismatch)
        elif distance > t.face_accept:
            reasons.append(Reason.FACE_BORDERLINE)
    return reasons, scores


def _voice(
    evidence: Evidence, refs: References, t: ConsentThresholds
) -> tuple[list[Reason], dict[str, float]]:
    if refs.voice_samples is None or len(refs.voice_samples) == 0:
        return [], {}
    if evidence.voice is None:
        return [Reason.NO_VOICE], {}
    mean = np.mean(refs.voice_samples, axis=0)
    similarity = float(evidence.voice @ (mean / np.linalg.norm(mean)))
    if similarity < t.voice_reject:
        return [Reason.VOICE_MISMATCH], {"voice": round(similarity, 4)}
    if similarity < t.voice_accept:
        return [Reason.VOICE_BORDERLINE], {"voice": round(similarity, 4)}
    return [], {"voice": round(similarity, 4)}


def _resembles(evidence: Evidence, person: ProtectedTemplate, t: ConsentThresholds) -> bool:
    """Not clearly another person: the reject thresholds decide, so a public figure's
    likeness never passes unseen (a human looks at anything short of "someone else")."""
    if person.face is not None and len(evidence.faces) > 0:
        distance = float(np.median(np.linalg.norm(evidence.faces - person.face, axis=1)))
        if distance <= t.face_reject:
            return True
    if person.voice is not None and evidence.voice is not None:
        return float(evidence.voice @ person.voice) >= t.voice_reject
    return False


def decide(
    evidence: Evidence,
    refs: References,
    passcode: str,
    thresholds: ConsentThresholds | None = None,
) -> ConsentDecision:
    t = thresholds or ConsentThresholds()
    reasons: list[Reason] = []
    if evidence.recorded_at - evidence.issued_at > PASSCODE_TTL:
        reasons.append(Reason.PASSCODE_EXPIRED)
    if not passcode_heard(evidence.transcript, passcode):
        reasons.append(Reason.PASSCODE_NOT_HEARD)
    heard = set(re.findall(r"[a-z]+", evidence.transcript.lower()))
    if sum(w in heard for w in STATEMENT_WORDS) < t.statement_words:
        reasons.append(Reason.STATEMENT_NOT_HEARD)
    if evidence.is_adult is False:
        reasons.append(Reason.UNDERAGE)
    if evidence.motion < t.min_motion:
        reasons.append(Reason.NOT_LIVE)
    face_reasons, scores = _face(evidence, refs, t)
    voice_reasons, voice_scores = _voice(evidence, refs, t)
    reasons += face_reasons + voice_reasons
    scores |= voice_scores | {"motion": round(evidence.motion, 3)}
    matches = [p.person_id for p in refs.protected if _resembles(evidence, p, t)]
    if matches:
        reasons.append(Reason.PROTECTED_PERSON)
    if any(r not in FOR_REVIEW for r in reasons):
        status = "rejected"
    elif reasons:
        status = "needs_review"
    else:
        status = "verified"
    return ConsentDecision(status, reasons, scores, matches)
