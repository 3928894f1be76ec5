"""The timed challenge and the pairwise binding, on known inputs (no media: fast)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from compliance.consent import (
    SAY_DIGIT,
    TURN_LEFT,
    Challenge,
    ConsentThresholds,
    Cue,
    Likeness,
    Reason,
    bind,
    challenge_reasons,
    new_challenge,
)

T = ConsentThresholds()
CHALLENGE = Challenge(
    (
        Cue(SAY_DIGIT, 2.0),
        Cue(SAY_DIGIT, 5.0),
        Cue(TURN_LEFT, 8.0),
        Cue(SAY_DIGIT, 11.0),
        Cue(SAY_DIGIT, 14.0),
    )
)
CODE = "4719"


def _said(times, code=CODE):  # type: ignore[no-untyped-def]
    return [(d, t) for d, t in zip(code, times, strict=True)]


def _reasons(digits, turns):  # type: ignore[no-untyped-def]
    return challenge_reasons(CHALLENGE, digits, turns, lambda s: s == CODE, T)


def test_digits_and_turn_on_their_cues_pass():
    assert _reasons(_said([2.6, 5.4, 11.9, 14.5]), [(8.7, "left")]) == []


def test_a_misheard_extra_digit_does_not_hide_the_code():
    digits = _said([2.6, 5.4, 11.9, 14.5])
    digits.insert(2, ("2", 9.5))  # "to" heard as "two"
    assert _reasons(digits, [(8.7, "left")]) == []


def test_a_replayed_recording_says_the_wrong_code():
    """An earlier genuine recording has an earlier code (and earlier cue times)."""
    assert _reasons(_said([2.6, 5.4, 11.9, 14.5], "3205"), [(8.7, "left")]) == [
        Reason.PASSCODE_NOT_HEARD
    ]


def test_the_right_code_at_the_wrong_moments_is_refused():
    """A video made in advance with the right digits, but not at the cues chosen later."""
    assert _reasons(_said([1.0, 2.0, 3.0, 4.0]), [(8.7, "left")]) == [Reason.CHALLENGE_TIMING]
    late = _said([2.6, 5.4, 11.9, 14.0 + T.cue_late_s + 0.5])
    assert _reasons(late, [(8.7, "left")]) == [Reason.CHALLENGE_TIMING]


@pytest.mark.parametrize("turns", [[], [(8.7, "right")], [(3.0, "left")], [(12.0, "left")]])
def test_the_head_turn_must_be_to_the_cued_side_near_its_cue(turns):
    assert _reasons(_said([2.6, 5.4, 11.9, 14.5]), turns) == [Reason.HEAD_TURN_MISSING]


def test_a_flood_of_digits_does_not_brute_force_the_code():
    flood = [(str(d), 2.0 + i * 0.1) for i, d in enumerate(range(10))] * 3
    assert Reason.PASSCODE_NOT_HEARD in _reasons(flood, [(8.7, "left")])


def test_new_challenges_are_unpredictable_and_well_spaced():
    seen = set()
    for seed in range(50):
        challenge = new_challenge(rng=random.Random(seed))  # type: ignore[arg-type]
        kinds = [c.kind for c in challenge.cues]
        assert kinds.count(SAY_DIGIT) == 4 and len(kinds) == 5 and kinds[0] == SAY_DIGIT
        gaps = np.diff([c.at_s for c in challenge.cues])
        assert gaps.min() >= 2.6 - 1e-9 and 1.5 <= challenge.cues[0].at_s <= 2.5
        seen.add(tuple(c.at_s for c in challenge.cues) + tuple(kinds))
    assert len(seen) == 50


def test_the_page_gets_each_digit_on_its_cue():
    cues = CHALLENGE.with_digits(CODE)
    assert [c.get("digit") for c in cues] == ["4", "7", None, "1", "9"]
    assert Challenge.from_json(CHALLENGE.as_json()) == CHALLENGE
    assert all("digit" not in c for c in CHALLENGE.as_json())  # what the database keeps


def _faces(centre: np.ndarray, n: int, spread: float = 0.02) -> np.ndarray:
    return centre + np.random.default_rng(n).normal(0, spread, (n, 128))


def test_every_pair_is_compared_and_named():
    rng = np.random.default_rng(0)
    ada, bob = rng.normal(0, 0.06, 128), rng.normal(0, 0.06, 128)
    assert np.linalg.norm(ada - bob) > T.face_reject
    voice_a = rng.normal(0, 1, 256)
    voice_b = rng.normal(0, 1, 256)
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    takes = np.stack([unit(voice_a)] * 3)
    same = Likeness(
        consent_faces=_faces(ada, 4),
        kyc_face=ada,
        training_faces=_faces(ada, 8),
        consent_voice=unit(voice_a),
        take_voices=takes,
    )
    found = bind(same, T)
    assert found.reasons == [] and set(found.scores) == {
        "face_kyc",
        "face_training",
        "training_kyc",
        "voice",
    }
    swapped = bind(Likeness(**{**same.__dict__, "training_faces": _faces(bob, 8)}), T)
    assert swapped.reasons == [Reason.FACE_MISMATCH_TRAINING, Reason.TRAINING_MISMATCH_KYC]
    other_voice = bind(Likeness(**{**same.__dict__, "take_voices": unit(voice_b)[None]}), T)
    assert other_voice.reasons == [Reason.VOICE_MISMATCH]
    holder = bind(Likeness(consent_faces=_faces(ada, 4), holder_faces=ada[None]), T)
    assert holder.reasons == [Reason.SAME_PERSON_AS_HOLDER]
    assert bind(Likeness(consent_faces=_faces(ada, 4), holder_faces=bob[None]), T).reasons == []


def test_a_missing_input_is_not_compared():
    assert bind(Likeness(consent_faces=np.zeros((3, 128))), T).scores == {}
