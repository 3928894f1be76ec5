"""The sentences a speaker reads: CMU ARCTIC prompts ordered for phone coverage.

``prompts.json`` beside this module is the shipped list (``python -m
pipeline.voice.prompts SOURCE_DIR...`` rebuilds it from ``<id>.txt`` files). The order is
greedy: each next sentence adds the most unseen diphones (then phones), so a speaker who
stops early has still covered as much of English as the sentences allow.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .text import dictionary, known, phones

PROMPTS_FILE = Path(__file__).with_name("prompts.json")


@dataclass(frozen=True)
class Prompt:
    id: str  # the CMU ARCTIC utterance id, e.g. "arctic_a0001"
    text: str


def load() -> list[Prompt]:
    """The shipped prompts, in reading order."""
    data = json.loads(PROMPTS_FILE.read_text(encoding="utf-8"))
    return [Prompt(p["id"], p["text"]) for p in data["prompts"]]


def by_id() -> dict[str, Prompt]:
    return {p.id: p for p in load()}


def units(text: str) -> tuple[set[str], set[str]]:
    """(phones, diphones) of a sentence; diphones include sentence-edge silence."""
    seq = ["SIL", *phones(text), "SIL"]
    return set(seq[1:-1]), {f"{a}-{b}" for a, b in zip(seq, seq[1:], strict=False)}


def coverage(texts: Iterable[str]) -> dict[str, int]:
    """How many of the 39 CMU phones, and how many distinct diphones, ``texts`` contain."""
    seen_phones: set[str] = set()
    seen_diphones: set[str] = set()
    for text in texts:
        p, d = units(text)
        seen_phones |= p
        seen_diphones |= d
    inventory = {p for pron in dictionary().values() for p in pron}
    return {
        "phones": len(seen_phones),
        "phones_total": len(inventory),
        "diphones": len(seen_diphones),
        "diphones_possible": (len(inventory) + 1) ** 2 - 1,  # with silence, minus SIL-SIL
    }


def greedy_order(candidates: dict[str, str], count: int) -> list[str]:
    """Ids of ``count`` sentences, each adding the most new diphones, then new phones."""
    left = {i: units(t) for i, t in candidates.items() if known(t)}
    seen_p: set[str] = set()
    seen_d: set[str] = set()
    order: list[str] = []
    while left and len(order) < count:
        best = max(sorted(left), key=lambda i: (len(left[i][1] - seen_d), len(left[i][0] - seen_p)))
        seen_p |= left[best][0]
        seen_d |= left.pop(best)[1]
        order.append(best)
    return order


def build(
    sources: Iterable[Path], exclude: Iterable[Path] = (), count: int = 100
) -> dict[str, Any]:
    """The prompts file content from ``<id>.txt`` files, never using any text in ``exclude``."""
    banned = {p.read_text().strip() for d in exclude for p in Path(d).glob("*.txt")}
    candidates = {
        p.stem: p.read_text().strip()
        for d in sources
        for p in sorted(Path(d).glob("*.txt"))
        if p.read_text().strip() not in banned
    }
    order = greedy_order(candidates, count)
    chosen = [candidates[i] for i in order]
    return {
        "source": "CMU ARCTIC prompts (arctic_a*), greedy diphone/phone order",
        "coverage": coverage(chosen),
        "coverage_first_50": coverage(chosen[:50]),
        "prompts": [{"id": i, "text": candidates[i]} for i in order],
    }


if __name__ == "__main__":  # python -m pipeline.voice.prompts SRC... --exclude DIR
    args = sys.argv[1:]
    cut = args.index("--exclude") if "--exclude" in args else len(args)
    content = build([Path(a) for a in args[:cut]], [Path(a) for a in args[cut + 1 :]])
    PROMPTS_FILE.write_text(json.dumps(content, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({k: content[k] for k in ("coverage", "coverage_first_50")}, indent=1))
