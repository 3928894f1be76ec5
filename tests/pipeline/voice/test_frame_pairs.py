"""How training pairs the 5 ms frames of two readings of one text (``frame_pairs``), on
hand-made forced alignments: no audio, no model."""

from __future__ import annotations

import numpy as np

from pipeline.voice.speech import Alignment
from pipeline.voice.train import FRAME_S_WORLD, frame_pairs

Word = tuple[str, list[tuple[str, float]]]  # (word, [(phone, seconds), ...])


def reading(words: list[Word], lead: float = 0.1) -> Alignment:
    """An alignment: ``lead`` s of silence, then each word's phones back to back."""
    phones, spans, t = [("SIL", 0.0, lead)], [("<s>", 0.0, lead)], lead
    for word, parts in words:
        start = t
        for phone, seconds in parts:
            phones.append((phone, t, t + seconds))
            t += seconds
        spans.append((word, start, t))
    return Alignment(phones, spans, 0.7)


HELLO: list[Word] = [
    ("hello", [("HH", 0.05), ("AH", 0.1), ("L", 0.05), ("OW", 0.2)]),
    ("world", [("W", 0.05), ("ER", 0.15), ("L", 0.05), ("D", 0.05)]),
]


def frames(alignment: Alignment) -> int:
    return round(alignment.phones[-1][2] / FRAME_S_WORLD)


def slower(words: list[Word], factor: float) -> list[Word]:
    return [(w, [(p, s * factor) for p, s in parts]) for w, parts in words]


def test_the_same_reading_pairs_each_frame_with_itself() -> None:
    a = reading(HELLO)
    pairs = frame_pairs(a, a, frames(a), frames(a))
    assert pairs is not None
    i, j = pairs
    assert np.array_equal(i, j)
    assert j.tolist() == list(range(20, frames(a)))  # every spoken frame, none of the lead


def test_a_slower_reading_maps_linearly_inside_each_phone() -> None:
    src, tgt = reading(HELLO), reading(slower(HELLO, 2.0), lead=0.2)
    pairs = frame_pairs(src, tgt, frames(src), frames(tgt))
    assert pairs is not None
    i, j = pairs
    assert np.all(np.diff(j) == 1) and np.all(np.diff(i) >= 0)  # in order, target covered
    assert np.abs(i - j / 2).max() <= 1.0  # twice as slow: source frame = target frame / 2
    assert i.min() == 20 and i.max() == frames(src) - 1


def test_phones_that_differ_fall_back_to_the_word_span() -> None:
    other = [("hello", [("HH", 0.05), ("EH", 0.15), ("L", 0.1), ("OW", 0.1)]), HELLO[1]]
    src, tgt = reading(HELLO), reading(other)
    pairs = frame_pairs(src, tgt, frames(src), frames(tgt))
    assert pairs is not None
    i, j = pairs
    first = j < 20 + 80  # hello lasts 0.4 s (80 frames) in both: linear across the word
    assert np.array_equal(i[first], j[first])
    same = frame_pairs(src, src, frames(src), frames(src))
    assert same is not None and np.array_equal(i, same[0]) and np.array_equal(j, same[1])


def test_readings_with_different_words_do_not_pair() -> None:
    assert frame_pairs(reading(HELLO), reading(HELLO[:1]), 200, 200) is None
    assert frame_pairs(reading([]), reading([]), 200, 200) is None  # nothing spoken


def test_frames_past_either_end_are_dropped() -> None:
    src, tgt = reading(HELLO), reading(slower(HELLO, 1.5))
    full, cut = frame_pairs(src, tgt, 10_000, 10_000), frame_pairs(src, tgt, 60, 90)
    assert full is not None and cut is not None
    inside = (full[0] < 60) & (full[1] < 90)
    assert 0 < inside.sum() < len(inside)
    assert np.array_equal(cut[0], full[0][inside]) and np.array_equal(cut[1], full[1][inside])


def test_fillers_and_words_without_phones_are_skipped() -> None:
    a = reading(HELLO)
    noisy = Alignment(a.phones, [*a.words, ("[NOISE]", 0.8, 0.9)], a.score)
    pairs = frame_pairs(a, noisy, frames(a), 200)
    assert pairs is not None and pairs[1].max() < frames(a)
