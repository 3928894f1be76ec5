"""Consent checks (R4, R6): a live, timed statement and one person across every input.

**Liveness the server decides.** With the one-time passcode (valid 30 minutes) the server
issues a :class:`Challenge`: each digit of the code and one head turn are cued at moments
it chooses (seconds after the recording starts). The page shows each cue at its moment;
the recording passes only when every digit is heard near its cue (ASR word timings) and
the head turns to the cued side near its cue (FaceMesh head pose). A pre-made video or a
replay of an earlier genuine recording has the wrong digits at the wrong times; a still
image neither moves nor turns. Nothing the client says about itself counts.

**One person per avatar.** The consent recording, the training footage, the voice takes
and the KYC selfie (where the provider gives one) must show the same face / voice.
:func:`bind` compares every pair whose two members exist; the web app calls it when the
second member of a pair arrives, and for all pairs again at the training gate. For a
subject who is not the account holder, the consent face must also be clearly *another*
face than the holder's own.

A hard failure ``rejected``s; a borderline score sends it to ``needs_review`` (a person
decides). Default thresholds come from measurements on real data (README, "Consent"):
- dlib face distance: same person 0.09-0.36 (GRID s1 across clips), different person
  0.745-0.816 (GRID s1 vs the astronaut photo). Accept <= 0.45, reject > 0.60.
- Resemblyzer cosine to the mean of the reference utterances: same person 0.78-0.95,
  different 0.39-0.61 (slt, GRID s1 and the piper voice). Accept >= 0.75, reject < 0.65.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

PASSCODE_TTL = timedelta(minutes=30)
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
STATEMENT_WORDS = ("agree", "digital", "likeness", "face", "voice")
SAY_DIGIT, TURN_LEFT, TURN_RIGHT = "say_digit", "turn_left", "turn_right"
MAX_DIGITS_HEARD = 12  # the subsequences of the heard digits tried against the code


class Reason(StrEnum):
    PASSCODE_EXPIRED = "passcode_expired"
    PASSCODE_NOT_HEARD = "passcode_not_heard"
    CHALLENGE_TIMING = "challenge_timing"  # the code was said, but not at its cues
    HEAD_TURN_MISSING = "head_turn_missing"
    STATEMENT_NOT_HEARD = "statement_not_heard"
    NO_FACE = "no_face"
    FACE_MISMATCH_KYC = "face_mismatch_kyc"
    FACE_MISMATCH_TRAINING = "face_mismatch_training"
    TRAINING_MISMATCH_KYC = "training_mismatch_kyc"
    SAME_PERSON_AS_HOLDER = "same_person_as_holder"
    FACE_BORDERLINE = "face_borderline"
    NO_VOICE = "no_voice"
    VOICE_MISMATCH = "voice_mismatch_samples"
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
    cue_early_s: float = 0.3  # a cued word or turn may start this much before its cue (ASR timing)
    cue_late_s: float = 2.2  # ... and this much after it (reading the cue, reacting)


# -- the timed challenge ------------------------------------------------------------------


@dataclass(frozen=True)
class Cue:
    kind: str  # SAY_DIGIT | TURN_LEFT | TURN_RIGHT (the person's own left / right)
    at_s: float  # seconds after the recording starts


@dataclass(frozen=True)
class Challenge:
    cues: tuple[Cue, ...]

    def as_json(self) -> list[dict[str, Any]]:
        return [{"cue": c.kind, "at_s": c.at_s} for c in self.cues]

    @classmethod
    def from_json(cls, data: Sequence[dict[str, Any]]) -> Challenge:
        return cls(tuple(Cue(str(c["cue"]), float(c["at_s"])) for c in data))

    def with_digits(self, passcode: str) -> list[dict[str, Any]]:
        """The cues as the page and API clients get them: each digit cue names its digit."""
        digits = iter(passcode)
        return [
            {**c, "digit": next(digits)} if c["cue"] == SAY_DIGIT else c for c in self.as_json()
        ]

    @property
    def ends_at(self) -> float:
        return self.cues[-1].at_s if self.cues else 0.0


def new_passcode(digits: int = 4) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(digits))


def new_challenge(digits: int = 4, rng: secrets.SystemRandom | None = None) -> Challenge:
    """Cue times the server picks: the first 1.5-2.5 s in, then every 2.6-3.4 s (0.1 s
    steps), one head turn to a random side somewhere after the first digit."""
    rng = rng or secrets.SystemRandom()
    kinds = [SAY_DIGIT] * digits
    kinds.insert(rng.randint(1, digits), rng.choice((TURN_LEFT, TURN_RIGHT)))
    at, cues = rng.randint(15, 25) / 10, []
    for kind in kinds:
        cues.append(Cue(kind, round(at, 1)))
        at += rng.randint(26, 34) / 10
    return Challenge(tuple(cues))


def statement(name: str) -> str:
    """What the person reads after the cued digits and the head turn."""
    return (
        f"I, {name}, agree that Digital Human Factory may create a digital likeness "
        "of my face and voice."
    )


def _near(moment: float, cue: Cue, t: ConsentThresholds) -> bool:
    return cue.at_s - t.cue_early_s <= moment <= cue.at_s + t.cue_late_s


def challenge_reasons(
    challenge: Challenge,
    digits: Sequence[tuple[str, float]],
    turns: Sequence[tuple[float, str]],
    is_passcode: Callable[[str], bool],
    t: ConsentThresholds,
) -> list[Reason]:
    """Was each digit of the code heard near its cue, and did the head turn as cued?

    ``digits``: every digit heard, in order, with its start time (the code may sit among
    misheard extra digits: every subsequence is tried); ``turns``: every head
    turn seen, ``(start_s, "left" | "right")`` in the person's own terms; ``is_passcode``
    says whether a digit string is the issued code (the server keeps only its HMAC).
    """
    reasons = []
    cues = [c for c in challenge.cues if c.kind == SAY_DIGIT]
    heard = digits[:MAX_DIGITS_HEARD]  # the code among a flood of digits is not "heard"
    runs = [
        [heard[i] for i in pick] for pick in itertools.combinations(range(len(heard)), len(cues))
    ]
    said = [run for run in runs if is_passcode("".join(d for d, _ in run))]
    if not said:
        reasons.append(Reason.PASSCODE_NOT_HEARD)
    elif not any(
        all(_near(at, c, t) for (_, at), c in zip(run, cues, strict=True)) for run in said
    ):
        reasons.append(Reason.CHALLENGE_TIMING)
    for cue in (c for c in challenge.cues if c.kind != SAY_DIGIT):
        side = cue.kind.removeprefix("turn_")
        if not any(direction == side and _near(at, cue, t) for at, direction in turns):
            reasons.append(Reason.HEAD_TURN_MISSING)
    return reasons


# -- one person across every input ------------------------------------------------------


@dataclass(frozen=True)
class Likeness:
    """Identity templates of the inputs that show one person; any may be missing."""

    consent_faces: npt.NDArray[Any] | None = None  # (n, 128) dlib, frames of the consent recording
    consent_voice: npt.NDArray[Any] | None = None  # (256,) Resemblyzer, the consent recording
    kyc_face: npt.NDArray[Any] | None = None  # (128,) the KYC selfie
    training_faces: npt.NDArray[Any] | None = None  # (n, 128) frames of the training footage
    take_voices: npt.NDArray[Any] | None = None  # (k, 256) the read sentences
    holder_faces: npt.NDArray[Any] | None = (
        None  # (m, 128) the account holder, for 'other' subjects
    )


@dataclass(frozen=True)
class Binding:
    reasons: list[Reason]
    scores: dict[str, float]

    @property
    def status(self) -> str:
        return _status(self.reasons)


def _present(x: npt.NDArray[Any] | None) -> TypeGuard[npt.NDArray[Any]]:
    return x is not None and len(x) > 0


def face_distance(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """Median dlib distance over all pairs of faces of the two inputs."""
    a2, b2 = np.atleast_2d(a), np.atleast_2d(b)
    return float(np.median(np.linalg.norm(a2[:, None] - b2[None], axis=2)))


def voice_similarity(voice: npt.NDArray[Any], samples: npt.NDArray[Any]) -> float:
    """Cosine of one utterance's embedding to the mean of the reference utterances."""
    mean = np.mean(np.atleast_2d(samples), axis=0)
    return float(voice @ (mean / np.linalg.norm(mean)))


FACE_PAIRS = (  # (first, second, score name, reason when they are two people)
    ("consent_faces", "kyc_face", "face_kyc", Reason.FACE_MISMATCH_KYC),
    ("consent_faces", "training_faces", "face_training", Reason.FACE_MISMATCH_TRAINING),
    ("training_faces", "kyc_face", "training_kyc", Reason.TRAINING_MISMATCH_KYC),
)


def bind(likeness: Likeness, t: ConsentThresholds) -> Binding:
    """Compare every pair of inputs that are both present: one person, or reasons."""
    reasons, scores = [], {}
    for first, second, name, mismatch in FACE_PAIRS:
        a, b = getattr(likeness, first), getattr(likeness, second)
        if _present(a) and _present(b):
            scores[name] = distance = round(face_distance(a, b), 4)
            if distance > t.face_reject:
                reasons.append(mismatch)
            elif distance > t.face_accept:
                reasons.append(Reason.FACE_BORDERLINE)
    voice, takes = likeness.consent_voice, likeness.take_voices
    if voice is not None and _present(takes):
        scores["voice"] = similarity = round(voice_similarity(voice, takes), 4)
        if similarity < t.voice_reject:
            reasons.append(Reason.VOICE_MISMATCH)
        elif similarity < t.voice_accept:
            reasons.append(Reason.VOICE_BORDERLINE)
    for name in ("consent_faces", "kyc_face", "training_faces"):  # 'other' is not the holder
        face = getattr(likeness, name)
        if _present(face) and _present(likeness.holder_faces):
            distance = round(face_distance(face, likeness.holder_faces), 4)
            scores[f"{name.split('_')[0]}_holder"] = distance
            if distance <= t.face_reject:  # not clearly another person
                reasons.append(Reason.SAME_PERSON_AS_HOLDER)
    return Binding(list(dict.fromkeys(reasons)), scores)


# -- the decision on one consent recording ------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """Features of the consent recording (pipeline.consent_media.analyse) and context."""

    transcript: str
    digits: tuple[tuple[str, float], ...]  # every digit heard, with its start time (s)
    turns: tuple[tuple[float, str], ...]  # every head turn seen: (start_s, "left" | "right")
    faces: npt.NDArray[Any]  # (n, 128)
    voice: npt.NDArray[Any] | None  # (256,)
    motion: float
    issued_at: datetime  # when the passcode was issued
    recorded_at: datetime  # when the recording arrived
    is_adult: bool | None  # from KYC


@dataclass(frozen=True)
class ProtectedTemplate:
    """One person of the protected-person gallery (R19): templates only."""

    person_id: str
    face: npt.NDArray[Any] | None  # (128,) dlib face template
    voice: npt.NDArray[Any] | None  # (256,) Resemblyzer embedding, unit length


@dataclass(frozen=True)
class ConsentDecision:
    status: str  # verified | rejected | needs_review
    reasons: list[Reason]
    scores: dict[str, float] = field(default_factory=dict)
    protected_matches: list[str] = field(default_factory=list)  # person ids of the gallery


def _resembles(evidence: Evidence, person: ProtectedTemplate, t: ConsentThresholds) -> bool:
    """Not clearly another person: the reject thresholds decide, so a public figure's
    likeness never passes unseen (a human looks at anything short of "someone else")."""
    if person.face is not None and len(evidence.faces) > 0:
        if face_distance(evidence.faces, person.face) <= t.face_reject:
            return True
    if person.voice is not None and evidence.voice is not None:
        return float(evidence.voice @ person.voice) >= t.voice_reject
    return False


def _status(reasons: Sequence[Reason]) -> str:
    if any(r not in FOR_REVIEW for r in reasons):
        return "rejected"
    return "needs_review" if reasons else "verified"


def decide(
    evidence: Evidence,
    challenge: Challenge,
    is_passcode: Callable[[str], bool],
    others: Likeness = Likeness(),
    protected: Sequence[ProtectedTemplate] = (),
    thresholds: ConsentThresholds | None = None,
) -> ConsentDecision:
    """Every check of one consent recording against its challenge and the person's other
    inputs (``others``: whatever of KYC selfie, footage, takes and holder exists now)."""
    t = thresholds or ConsentThresholds()
    reasons: list[Reason] = []
    if evidence.recorded_at - evidence.issued_at > PASSCODE_TTL:
        reasons.append(Reason.PASSCODE_EXPIRED)
    reasons += challenge_reasons(challenge, evidence.digits, evidence.turns, is_passcode, t)
    heard = set(re.findall(r"[a-z]+", evidence.transcript.lower()))
    if sum(w in heard for w in STATEMENT_WORDS) < t.statement_words:
        reasons.append(Reason.STATEMENT_NOT_HEARD)
    if evidence.is_adult is False:
        reasons.append(Reason.UNDERAGE)
    if evidence.motion < t.min_motion:
        reasons.append(Reason.NOT_LIVE)
    if len(evidence.faces) == 0:
        reasons.append(Reason.NO_FACE)
    if evidence.voice is None and _present(others.take_voices):
        reasons.append(Reason.NO_VOICE)
    mine = Likeness(
        **{**others.__dict__, "consent_faces": evidence.faces, "consent_voice": evidence.voice}
    )
    binding = bind(mine, t)
    reasons += binding.reasons
    matches = [p.person_id for p in protected if _resembles(evidence, p, t)]
    if matches:
        reasons.append(Reason.PROTECTED_PERSON)
    scores = {**binding.scores, "motion": round(evidence.motion, 3)}
    return ConsentDecision(_status(reasons), reasons, scores, matches)
