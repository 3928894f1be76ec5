"""Scoring variants tried against the shipped rule (issue 18), measured the same way.

None is used by ``match``; ``evaluate`` reports them under ``variants``. Each variant gives
every item of a business a score for a question; the rule is still "best score >= t and
lead over the runner-up >= m", with (t, m) chosen exactly as for the shipped rule, and the
figures are leave-one-business-out (``evaluate.cross_validate``'s split). Signals:

- ``e_phr``: the shipped score, best language-centred cosine over the item's phrasings;
- ``e_ans``: centred cosine with the item's answer text, embedded like a phrasing ("query: ");
- ``p_ans``: the e5 asymmetric setting, "query: " question against "passage: " answer, each
  centred by its own prefix's language mean (the reference file embedded both ways);
- ``l_phr`` / ``l_ans``: lexical, cosine of character 2-4-gram TF-IDF vectors (no tokenizer,
  so English and Chinese alike), best over the phrasings / against the answer; the IDF is
  fitted per business on its own phrasings and answers only, never on questions.

Families: weighted sums (``e_phr + w * signal``), the answer as an extra down-weighted
phrasing (``max(e_phr, b * e_ans)``), and "either signal confident" rules (answer when the
shipped rule passes OR a second signal ranks the same item first with score >= ts and lead
>= ms, all four chosen on the two training businesses). Choosing a variant's weight by its
cross-validated figure tunes on the held-out business, so ``nested`` also chooses the weight
inside each fold (on the two training businesses) among the family and the shipped score.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import evaluate as ev
from .embed import embed, embed_passages
from .match import Matcher, centre, detect_lang

Floats = npt.NDArray[np.float64]
SIGNALS = ("e_phr", "e_ans", "p_ans", "l_phr", "l_ans")


def char_ngrams(text: str, lo: int = 2, hi: int = 4) -> Counter[str]:
    """Character n-grams (lo..hi) of the case-folded text, punctuation as spaces, padded
    with one space each side; n-grams that are only spaces are dropped."""
    flat = re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.casefold())).strip()
    padded = f" {flat} "
    grams: Counter[str] = Counter()
    for n in range(lo, hi + 1):
        for i in range(len(padded) - n + 1):
            gram = padded[i : i + n]
            if gram.strip():
                grams[gram] += 1
    return grams


class CharTfidf:
    """Character n-gram TF-IDF (sublinear tf, smoothed idf, unit vectors) fitted on ``docs``;
    n-grams not seen in ``docs`` are ignored."""

    def __init__(self, docs: Sequence[str], lo: int = 2, hi: int = 4) -> None:
        self.lo, self.hi = lo, hi
        df = Counter(gram for doc in docs for gram in char_ngrams(doc, lo, hi))
        n = len(docs)
        self.idf = {gram: math.log((1 + n) / (1 + k)) + 1 for gram, k in df.items()}

    def vector(self, text: str) -> dict[str, float]:
        counts = char_ngrams(text, self.lo, self.hi)
        weights = {
            gram: (1 + math.log(k)) * self.idf[gram]
            for gram, k in counts.items()
            if gram in self.idf
        }
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {gram: w / norm for gram, w in weights.items()}

    @staticmethod
    def cosine(a: dict[str, float], b: dict[str, float]) -> float:
        if len(a) > len(b):
            a, b = b, a
        return sum(w * b.get(gram, 0.0) for gram, w in a.items())


@dataclass(frozen=True)
class Scored:
    """One question put to one business: every signal's score for each of its items."""

    business: str
    text: str
    lang: str
    group: str
    expected: str | None
    ids: tuple[str, ...]
    signals: dict[str, Floats]


def score_set(data: dict[str, Any]) -> list[Scored]:
    """Every evaluation question, with all signals against its business's items."""
    out: list[Scored] = []
    for business in data["businesses"]:
        items = business["items"]
        ids = tuple(it["id"] for it in items)
        langs = [it["lang"] for it in items]
        answers = [it["answer"] for it in items]
        matcher = Matcher(ev.items_of(business))
        ans_q = centre(embed(answers), langs)
        ans_p = centre(embed_passages(answers), langs, embed_passages)
        tfidf = CharTfidf([q for it in items for q in it["questions"]] + answers)
        phr_lex = [[tfidf.vector(q) for q in it["questions"]] for it in items]
        ans_lex = [tfidf.vector(a) for a in answers]
        for text, lang, group, expected in ev.questions_of(data, business):
            shipped = dict(matcher.rank(text))
            question = centre(embed([text]), [detect_lang(text)])[0]
            q_lex = tfidf.vector(text)
            signals = {
                "e_phr": np.array([shipped[i] for i in ids]),
                "e_ans": (ans_q @ question).astype(np.float64),
                "p_ans": (ans_p @ question).astype(np.float64),
                "l_phr": np.array([max(CharTfidf.cosine(q_lex, p) for p in ps) for ps in phr_lex]),
                "l_ans": np.array([CharTfidf.cosine(q_lex, a) for a in ans_lex]),
            }
            # lexical bonus for items in the question's language, centred on their mean;
            # 0 for items in the other language (which share almost no n-grams with it)
            same = np.array([item_lang == detect_lang(text) for item_lang in langs])
            lex = signals["l_phr"]
            signals["l_same"] = np.where(same, lex - lex[same].mean() if same.any() else 0.0, 0.0)
            out.append(Scored(business["id"], text, lang, group, expected or None, ids, signals))
    return out


Combine = Callable[[dict[str, Floats]], Floats]


def _sum(signal: str, w: float) -> Combine:
    return lambda s: s["e_phr"] + w * s[signal]


def _lex_with_answer(w: float) -> Combine:
    return lambda s: s["e_phr"] + w * np.maximum(s["l_phr"], 0.5 * s["l_ans"])


def _answer_as_phrasing(b: float) -> Combine:
    return lambda s: np.maximum(s["e_phr"], b * s["e_ans"])


# family -> [(variant, combine)]; each family's weights were a grid fixed before measuring.
FAMILIES: dict[str, list[tuple[str, Combine]]] = {
    "lexical_sum": [(f"e_phr + {w} * l_phr", _sum("l_phr", w)) for w in (0.1, 0.2, 0.3, 0.5, 1.0)],
    "lexical_with_answer_sum": [
        (f"e_phr + {w} * max(l_phr, 0.5 * l_ans)", _lex_with_answer(w))
        for w in (0.1, 0.2, 0.3, 0.5)
    ],
    "lexical_same_language_sum": [
        (f"e_phr + {w} * l_same", _sum("l_same", w)) for w in (0.1, 0.2, 0.3, 0.5)
    ],
    "answer_as_phrasing": [
        (f"max(e_phr, {b} * e_ans)", _answer_as_phrasing(b)) for b in (0.6, 0.7, 0.8, 0.9, 1.0)
    ],
    "answer_query_sum": [(f"e_phr + {g} * e_ans", _sum("e_ans", g)) for g in (0.1, 0.2, 0.3, 0.5)],
    "answer_passage_sum": [
        (f"e_phr + {g} * p_ans", _sum("p_ans", g)) for g in (0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
    ],
}
SHIPPED: tuple[str, Combine] = ("e_phr (shipped)", lambda s: s["e_phr"])
# "either signal confident": (name, primary, secondary, secondary score grid, its lead grid)
EITHER: list[tuple[str, Combine, str, list[float], list[float]]] = [
    (
        "e_phr rule OR l_phr agrees",
        SHIPPED[1],
        "l_phr",
        [round(0.2 + 0.05 * i, 3) for i in range(17)],
        [round(0.05 * i, 3) for i in range(9)],
    ),
    (
        "e_phr rule OR p_ans agrees",
        SHIPPED[1],
        "p_ans",
        [round(0.3 + 0.025 * i, 3) for i in range(25)],
        [round(0.02 * i, 3) for i in range(11)],
    ),
    (
        "e_phr rule OR e_ans agrees",
        SHIPPED[1],
        "e_ans",
        [round(0.3 + 0.025 * i, 3) for i in range(25)],
        [round(0.02 * i, 3) for i in range(11)],
    ),
    (
        "e_phr + 0.3 * p_ans rule OR l_phr agrees",
        _sum("p_ans", 0.3),
        "l_phr",
        [round(0.2 + 0.05 * i, 3) for i in range(17)],
        [round(0.05 * i, 3) for i in range(9)],
    ),
]


def trials(scored: list[Scored], combine: Combine) -> list[ev.Trial]:
    """The evaluation's trials under a combined score."""
    out: list[ev.Trial] = []
    for x in scored:
        s = combine(x.signals)
        order = np.argsort(-s, kind="stable")
        top, second = int(order[0]), int(order[1])
        out.append(
            ev.Trial(
                x.business,
                x.text,
                x.lang,
                x.group,
                x.expected,
                x.ids[top],
                float(s[top]),
                x.ids[second],
                float(s[second]),
                0.0,
            )
        )
    return out


def _ranking(some: list[ev.Trial]) -> dict[str, float | None]:
    inside = [x for x in some if x.expected]
    by = {
        g: ev._rate(
            sum(x.top == x.expected for x in inside if x.group == g),
            sum(x.group == g for x in inside),
        )
        for g in ev.IN_SCOPE
    }
    return {"all": ev._rate(sum(x.top == x.expected for x in inside), len(inside))} | by


def _brief(f: dict[str, Any]) -> dict[str, Any]:
    keys = ("top1", "top1_by_group", "out_of_scope_fallback", "in_scope_wrong")
    return {k: f[k] for k in keys} | {
        "out_of_scope_answered": f["out_of_scope_answered"],
        "caps_held": ev.acceptable(f),
    }


def cross_validated(some: list[ev.Trial]) -> dict[str, Any]:
    """The shipped rule's leave-one-business-out figures for these trials."""
    businesses = sorted({x.business for x in some})
    rule = {b: ev.choose([x for x in some if x.business != b]) for b in businesses}
    pooled = ev.figures(some, lambda x: ev.answered(x, *rule[x.business]))
    return {"folds": {b: list(tm) for b, tm in rule.items()}} | _brief(pooled)


def nested(named: dict[str, list[ev.Trial]]) -> dict[str, Any]:
    """Leave one business out, choosing the variant as well as (t, m) on the two training
    businesses (most right answers within the caps; ties: fewer wrong answers)."""
    businesses = sorted({x.business for x in next(iter(named.values()))})
    picks: dict[str, tuple[str, float, float]] = {}
    for held in businesses:
        best: tuple[tuple[bool, float, float], str, float, float] | None = None
        for name, some in named.items():
            train = [x for x in some if x.business != held]
            t, m = ev.choose(train)
            f = ev.metrics(train, t, m)
            key = (ev.acceptable(f), f["top1"], -f["wrong_answer_rate"])
            if best is None or key > best[0]:
                best = (key, name, t, m)
        assert best is not None
        picks[held] = best[1:]
    pooled = [x for b, (name, _, _) in picks.items() for x in named[name] if x.business == b]
    f = ev.figures(pooled, lambda x: ev.answered(x, *picks[x.business][1:]))
    return {"folds": {b: list(p) for b, p in picks.items()}} | _brief(f)


@dataclass(frozen=True)
class _Arrays:
    business: npt.NDArray[np.str_]
    group: npt.NDArray[np.str_]
    score: Floats
    lead: Floats
    right: npt.NDArray[np.bool_]
    inside: npt.NDArray[np.bool_]
    s_score: Floats
    s_lead: Floats
    agree: npt.NDArray[np.bool_]


def _arrays(scored: list[Scored], primary: Combine, secondary: str) -> _Arrays:
    cols: dict[str, list[Any]] = {k: [] for k in _Arrays.__dataclass_fields__}
    for x in scored:
        p, s = primary(x.signals), x.signals[secondary]
        po, so = np.argsort(-p, kind="stable"), np.argsort(-s, kind="stable")
        cols["business"].append(x.business)
        cols["group"].append(x.group)
        cols["score"].append(p[po[0]])
        cols["lead"].append(p[po[0]] - p[po[1]])
        cols["right"].append(x.ids[po[0]] == x.expected)
        cols["inside"].append(x.expected is not None)
        cols["s_score"].append(s[so[0]])
        cols["s_lead"].append(s[so[0]] - s[so[1]])
        cols["agree"].append(so[0] == po[0])
    return _Arrays(**{k: np.array(v) for k, v in cols.items()})


def _either_answers(a: _Arrays, rule: Sequence[float]) -> npt.NDArray[np.bool_]:
    t, m, ts, ms = rule
    first = (a.score >= t) & (a.lead >= m)
    second = a.agree & (a.s_score >= ts) & (a.s_lead >= ms)
    answered: npt.NDArray[np.bool_] = first | second
    return answered


def _choose_either(
    a: _Arrays, mask: npt.NDArray[np.bool_], s_grid: list[float], m_grid: list[float]
) -> tuple[float, float, float, float]:
    """(t, m, ts, ms) with the most right answers within both caps (ties: fewer wrong)."""
    score, lead, right, inside = a.score[mask], a.lead[mask], a.right[mask], a.inside[mask]
    t = np.array(ev.GRID)[:, None, None]
    m = np.array(ev.MARGINS)[None, :, None]
    first = (score >= t) & (lead >= m)
    best: tuple[int, tuple[float, float, float, float]] | None = None
    for ts in s_grid:
        for ms in m_grid:
            second = a.agree[mask] & (a.s_score[mask] >= ts) & (a.s_lead[mask] >= ms)
            ans = first | second
            n_right = (ans & inside & right).sum(-1)
            n_wrong = (ans & inside & ~right).sum(-1)
            n_out = (ans & ~inside).sum(-1)
            ok = (n_wrong / inside.sum() <= ev.MAX_IN_SCOPE_WRONG) & (
                n_out / (~inside).sum() <= ev.MAX_OUT_OF_SCOPE_ANSWERED
            )
            if not ok.any():
                continue
            value = np.where(ok, n_right * 100_000 - n_wrong - n_out, -1)
            i, j = np.unravel_index(int(np.argmax(value)), value.shape)
            if best is None or int(value[i, j]) > best[0]:
                best = (int(value[i, j]), (ev.GRID[i], ev.MARGINS[j], ts, ms))
    return best[1] if best else (ev.GRID[-1], ev.MARGINS[-1], 2.0, 2.0)


def either_cross_validated(
    scored: list[Scored], primary: Combine, secondary: str, s_grid: list[float], m_grid: list[float]
) -> dict[str, Any]:
    a = _arrays(scored, primary, secondary)
    answered = np.zeros(len(a.score), dtype=bool)
    folds: dict[str, list[float]] = {}
    for b in sorted(set(a.business.tolist())):
        rule = _choose_either(a, a.business != b, s_grid, m_grid)
        folds[b] = list(rule)
        answered |= (a.business == b) & _either_answers(a, rule)
    ins, right = a.inside, a.right
    wrong_in = _frac(answered & ins & ~right, ins)
    out_ans = _frac(answered & ~ins, ~ins)
    return {
        "folds": folds,
        "top1": _frac(answered & ins & right, ins),
        "top1_by_group": {
            g: _frac(answered & ins & right & (a.group == g), ins & (a.group == g))
            for g in ev.IN_SCOPE
        },
        "out_of_scope_fallback": round(1 - out_ans, 4),
        "in_scope_wrong": wrong_in,
        "out_of_scope_answered": out_ans,
        "caps_held": bool(
            wrong_in <= ev.MAX_IN_SCOPE_WRONG and out_ans <= ev.MAX_OUT_OF_SCOPE_ANSWERED
        ),
    }


def _frac(hits: npt.NDArray[np.bool_], of: npt.NDArray[np.bool_]) -> float:
    return round(float(hits.sum()) / float(of.sum()), 4)


def compare(data: dict[str, Any]) -> dict[str, Any]:
    """Every variant's ranking-only top-1 and leave-one-business-out figures; per family,
    the nested figure (weight chosen inside each fold, the shipped score among the choices)."""
    scored = score_set(data)
    shipped = trials(scored, SHIPPED[1])
    rows = [
        {"family": "shipped", "variant": SHIPPED[0], "ranking_top1": _ranking(shipped)}
        | cross_validated(shipped)
    ]
    families: dict[str, Any] = {}
    everything = {SHIPPED[0]: shipped}
    for family, members in FAMILIES.items():
        named = {SHIPPED[0]: shipped}
        for name, combine in members:
            some = trials(scored, combine)
            named[name] = everything[name] = some
            rows.append(
                {"family": family, "variant": name, "ranking_top1": _ranking(some)}
                | cross_validated(some)
            )
        families[family] = nested(named)
    families["all weighted variants"] = nested(everything)
    either = [
        {"family": "either_signal", "variant": name}
        | either_cross_validated(scored, primary, secondary, s_grid, m_grid)
        for name, primary, secondary, s_grid, m_grid in EITHER
    ]
    return {
        "signals": list(SIGNALS) + ["l_same"],
        "variants": rows,
        "nested": families,
        "either_signal": either,
    }
