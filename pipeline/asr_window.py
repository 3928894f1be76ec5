"""How short may Whisper's window be for a spoken question? (``python -m pipeline.asr_window``)

A spoken question (``webapp.qa.talk``) used to cost one Whisper base pass over a 30 s
window whatever its length. ``asr.transcribe_short`` encodes only the speech plus a margin
(``asr.window_frames``). This measures, for a few margins and floors, the word error rate
against what was said, next to the full 30 s window (``asr.transcribe``, greedy, no word
times: the old path), on two English sets:

- ``recorded``: CMU ARCTIC speaker slt (../shared/data/voice_slt), real read speech with
  its transcripts, 60 sentences of 1.5-5 s;
- ``questions``: the evaluation set's English questions (pipeline/qa/data/eval_set.json:
  the owners' phrasings and the held-out paraphrases) said by the bundled piper voice with
  0.4 s of silence either side, as the page records them.

There is no recorded Chinese speech here and no Chinese voice to say the questions, so
the window is not measured on Chinese. The chosen margin and floor are the smallest
window whose error on both sets is at most the full window's. Timings are the cost of
one question alone and of eight at once (one batch), on whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import asr
from .bundled import word_error_rate

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voice_slt"
EVAL_SET = Path(__file__).with_name("qa") / "data" / "eval_set.json"
GRID = [(50, 100), (50, 300), (100, 100), (100, 300), (200, 300), (100, 500)]
PAD_S = 0.4


def recorded(folder: Path, n: int) -> list[tuple[str, npt.NDArray[np.float32]]]:
    from compliance import media

    wavs = sorted((folder / "heldout").glob("*.wav")) + sorted((folder / "train").glob("*.wav"))
    out = []
    for wav in wavs[:n]:
        out.append((wav.with_suffix(".txt").read_text().strip(), media.audio(wav, asr.RATE, 30)))
    return out


def questions(n: int) -> list[tuple[str, npt.NDArray[np.float32]]]:
    from compliance import media

    from .bundled import piper_say

    data = json.loads(EVAL_SET.read_text(encoding="utf-8"))
    texts: list[str] = []
    for business in data["businesses"]:
        for item in business["items"]:
            if item["lang"] == "en":
                texts += item["questions"]
            texts += item.get("heldout", {}).get("en", [])
    out = []
    for text in texts[:n]:
        audio, rate = piper_say(text, deterministic=True)
        samples = media.resample(audio.astype(np.float32) / 32768.0, rate, asr.RATE)
        pad = np.zeros(int(PAD_S * asr.RATE), np.float32)
        out.append((text, np.concatenate([pad, samples, pad])))
    return out


def _wer(pairs: list[tuple[str, str]]) -> float:
    said = asr.spoken_words
    errors = [word_error_rate(said(ref), said(hyp)) for ref, hyp in pairs]
    return round(float(np.mean(errors)), 4)


def evaluate(sets: dict[str, list[tuple[str, npt.NDArray[np.float32]]]]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, data in sets.items():
        full = [
            (ref, asr.transcribe(x, asr.RATE, beam_size=1, word_timestamps=False).text)
            for ref, x in data
        ]
        rows.setdefault("full 30 s", {})[name] = _wer(full)
        for margin, floor in GRID:
            short = [
                (ref, asr.transcribe_short([asr.ShortQuestion(x)], margin=margin, floor=floor)[0])
                for ref, x in data
            ]
            rows.setdefault(f"margin {margin}, floor {floor}", {})[name] = _wer(short)
    return rows


def _clock(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return round(statistics.median(times), 3)


def timings(data: list[tuple[str, npt.NDArray[np.float32]]], repeats: int = 5) -> dict[str, float]:
    one = data[0][1]
    eight = [asr.ShortQuestion(x) for _, x in data[:8]]
    asr.transcribe_short([asr.ShortQuestion(one)])  # warm
    return {
        "full window, one question": _clock(
            lambda: asr.transcribe(one, asr.RATE, beam_size=1, word_timestamps=False), repeats
        ),
        "short window, one question": _clock(
            lambda: asr.transcribe_short([asr.ShortQuestion(one)]), repeats
        ),
        "short window, eight questions in one batch": _clock(
            lambda: asr.transcribe_short(eight), repeats
        ),
        "short window, eight questions one by one": _clock(
            lambda: [asr.transcribe_short([q]) for q in eight], max(1, repeats // 2)
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="sentences per set")
    parser.add_argument("--out", type=Path, default=Path("docs/results/asr_window.json"))
    args = parser.parse_args(argv)
    sets = {"recorded": recorded(SHARED, args.n), "questions": questions(args.n)}
    result = {
        "sets": {k: len(v) for k, v in sets.items()},
        "wer": evaluate(sets),
        "seconds": timings(sets["questions"]),
        "chosen": {"margin": asr.WINDOW_MARGIN_FRAMES, "floor": asr.MIN_WINDOW_FRAMES},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
