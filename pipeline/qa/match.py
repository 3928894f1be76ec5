"""Match a visitor's question to a pre-approved Q&A item, or to nothing (the fallback).

An item is ``(item_id, [question phrasings], lang)``. A question's score for an item is the
highest cosine similarity between the question's embedding and any of the item's
phrasings. The best item is the answer if its score reaches the threshold AND it leads the runner-up
item by at least the margin; otherwise the caller plays the fallback answer. Answers
themselves (speech, subtitles) are not here.

Why a margin: a question the set does not answer but that is about the same business (a
"near miss": "do you do a drivers licence medical?") scores about as high as a loosely
worded right question, so one absolute cut-off must either answer near misses or reject
many right answers. But a near miss sits between several items (best minus runner-up:
median 0.04 on the evaluation set) while a right question usually stands out (median
0.15-0.27), so requiring a lead lets the absolute threshold come down.

Language centring: multilingual e5's raw vectors carry the language strongly, so a Chinese
question scores higher against ANY Chinese phrasing than against the English phrasing that
means the same (cross-language top-1 was 13% on the evaluation set, 77% centred). Each
vector therefore has its language's mean subtracted (then is re-normalised), as in
Libovicky et al. 2020, "On the language neutrality of pre-trained multilingual
representations". The means come from ``data/language_reference.json``: 48 everyday
questions and their translations, on topics unrelated to any FAQ, so the difference of
the two means is language rather than topic. Items carry their language; a question's is
detected (``detect_lang``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .embed import embed

# The decision rule (``decide``): answer when the best item scores >= DEFAULT_THRESHOLD and
# leads the runner-up item by >= DEFAULT_MARGIN. Chosen by `python -m pipeline.qa.evaluate`
# (docs/results/qa_match.json) on the hand-written set pipeline/qa/data/eval_set.json: the
# (threshold, margin) with the most right answers at which at most 5% of out-of-scope and
# at most 5% of in-scope questions get a wrong answer. Honest (leave-one-business-out:
# chosen on two businesses, measured on the third) figures: top-1 66% of 127 paraphrases
# (en 70%, zh 81%, cross-language 49%), out-of-scope fallback 94% of 160, in-scope wrong
# item 5.5% (threshold only, 0.51, same split: top-1 59%, fallback 96%, wrong item 3.1%).
# On the whole set: top-1 69% (en 73%, zh 84%, cross 51%), fallback 95%, wrong item 4.7%.
# The folds chose t 0.41-0.475 and m 0.07-0.08. Scores are cosines of language-centred
# vectors, lower than raw e5 cosines (0.8-0.95). Hybrid scorings (character n-gram TF-IDF,
# the answer text as a phrasing or as an e5 passage) were measured the same way and not
# adopted: none beat 66% with both caps held once its weight was chosen inside the folds
# (pipeline/qa/variants.py; pipeline/README.md).
DEFAULT_THRESHOLD = 0.42
DEFAULT_MARGIN = 0.08

LANGS = ("en", "zh")
REFERENCE = Path(__file__).with_name("data") / "language_reference.json"

Item = tuple[str, Sequence[str], str]  # (item_id, question phrasings, lang)
Embedder = Callable[[Sequence[str]], npt.NDArray[np.float32]]


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF  # CJK Unified Ideographs
        or 0x3400 <= cp <= 0x4DBF  # Extension A
        or 0xF900 <= cp <= 0xFAFF  # Compatibility Ideographs
        or 0x20000 <= cp <= 0x2FA1F  # Extensions B-F and compatibility supplement
    )


def detect_lang(text: str) -> str:
    """The language, "zh" or "en", by script: a Chinese character carries about a word,
    so the text is Chinese when it has at least as many CJK ideographs as runs of Latin
    letters.

    "Pro版多少钱" and "Tallybook 怎么退款" are zh; "do you sell 面膜" is en. Text with
    neither (digits, emoji, empty) is "en". Japanese kana and Korean count as neither:
    only en and zh are supported.
    """
    ideographs = sum(_is_cjk(ch) for ch in text)
    words, in_word = 0, False
    for ch in text:
        latin = ch.isascii() and ch.isalpha()
        words += latin and not in_word
        in_word = latin
    return "zh" if ideographs and ideographs >= words else "en"


@functools.cache
def language_means(embedder: Embedder = embed) -> dict[str, npt.NDArray[np.float32]]:
    """Mean raw embedding of each language's half of the parallel reference questions."""
    pairs = json.loads(REFERENCE.read_text(encoding="utf-8"))["pairs"]
    return {
        lang: embedder([pair[i] for pair in pairs]).mean(axis=0).astype(np.float32)
        for i, lang in enumerate(LANGS)
    }


def centre(
    vectors: npt.NDArray[np.float32], langs: Sequence[str], embedder: Embedder = embed
) -> npt.NDArray[np.float32]:
    """Subtract each row's language mean and re-normalise (see the module docstring)."""
    means = language_means(embedder)
    shifted = vectors - np.stack([means[lang] for lang in langs])
    centred: npt.NDArray[np.float32] = shifted / np.linalg.norm(shifted, axis=1, keepdims=True)
    return centred.astype(np.float32)


@dataclass(frozen=True)
class Match:
    """The item chosen for a question."""

    item_id: str
    score: float  # max cosine similarity (language-centred) over the item's phrasings
    question_lang: str  # detected language of the question ("en" or "zh")
    item_lang: str  # the language the item was written in
    lead: float | None = None  # score minus the runner-up item's; None with a single item


def decide(score: float, lead: float | None, threshold: float, margin: float) -> bool:
    """The decision rule: answer when ``score >= threshold`` and ``lead >= margin`` (``lead``:
    best score minus the runner-up's; None when there is no runner-up, which passes)."""
    return score >= threshold and (lead is None or lead >= margin)


def rank_vectors(
    question: npt.NDArray[np.float32], phrasings: npt.NDArray[np.float32], owners: Sequence[str]
) -> list[tuple[str, float]]:
    """Items by descending max cosine: ``phrasings`` (n, d) unit rows, ``owners[i]`` the item
    of row i, ``question`` a unit (d,) vector. Ties keep the items' first-seen order."""
    scores = phrasings @ question
    best: dict[str, float] = {}
    for owner, score in zip(owners, scores.tolist(), strict=True):
        if owner not in best or score > best[owner]:
            best[owner] = score
    return sorted(best.items(), key=lambda pair: -pair[1])


def _validate(items: Iterable[Item]) -> list[Item]:
    checked: list[Item] = []
    seen: set[str] = set()
    for item_id, phrasings, lang in items:
        if item_id in seen:
            raise ValueError(f"item {item_id!r} appears twice; item ids must be unique")
        if lang not in LANGS:
            raise ValueError(f"item {item_id!r} has language {lang!r}; use one of {LANGS}")
        if isinstance(phrasings, str) or not [p for p in phrasings if p.strip()]:
            raise ValueError(f"item {item_id!r} needs a list of non-empty question phrasings")
        seen.add(item_id)
        checked.append((item_id, [p.strip() for p in phrasings if p.strip()], lang))
    return checked


def rank(
    items: Iterable[Item], question: str, *, embedder: Embedder = embed
) -> list[tuple[str, float]]:
    """Rank ``items`` for ``question`` (embeds every phrasing; use ``Matcher`` to reuse)."""
    return Matcher(items, embedder=embedder).rank(question)


class Matcher:
    """Items with their phrasings embedded once; ``answer_for`` applies the decision rule:
    answer with the best item when its score is at least ``threshold`` and at least
    ``margin`` above the runner-up item's (with a single item only the threshold applies).
    ``margin=0`` gives the threshold-only rule."""

    def __init__(
        self,
        items: Iterable[Item],
        *,
        threshold: float = DEFAULT_THRESHOLD,
        embedder: Embedder = embed,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        checked = _validate(items)
        self.threshold = threshold
        self.margin = margin
        self._embed = embedder
        self._lang = {item_id: lang for item_id, _, lang in checked}
        self._owners = [item_id for item_id, phrasings, _ in checked for _ in phrasings]
        texts = [p for _, phrasings, _ in checked for p in phrasings]
        langs = [lang for _, phrasings, lang in checked for _ in phrasings]
        self._vectors = centre(embedder(texts), langs, embedder) if texts else embedder([])

    def rank(self, question: str) -> list[tuple[str, float]]:
        """All items, best first, with their scores; empty for a blank question."""
        question = question.strip()
        if not question or not self._owners:
            return []
        vector = centre(self._embed([question]), [detect_lang(question)], self._embed)[0]
        return rank_vectors(vector, self._vectors, self._owners)

    def answer_for(self, question: str) -> Match | None:
        """The best item if it reaches the threshold and leads the runner-up by the margin,
        else None (play the fallback)."""
        ranked = self.rank(question)
        if not ranked:
            return None
        item_id, score = ranked[0]
        lead = score - ranked[1][1] if len(ranked) > 1 else None
        if not decide(score, lead, self.threshold, self.margin):
            return None
        return Match(item_id, score, detect_lang(question), self._lang[item_id], lead)
