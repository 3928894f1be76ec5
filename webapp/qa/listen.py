"""Spoken questions, heard in batches by one Whisper pass at a time.

Whisper base on the CPU uses both cores for one call, so calls made at the same time only
queue behind each other. One thread per process (``Listener``) runs every transcription:
each pass takes every question waiting (up to ``QA_ASR_MAX_BATCH``) and hears them
together (``pipeline.asr.transcribe_short``: one window as long as the longest of them,
one encoder and one decoder call), so a busy moment costs a few passes, not one per
question. At most ``QA_ASR_MAX_WAITING`` questions wait; the next one is refused at once
(503 ``asr_busy`` with ``Retry-After``), not left to wait past any useful answer time.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt

from ..errors import Busy


@dataclass
class _Question:
    samples: npt.NDArray[Any]
    language: str
    done: threading.Event = field(default_factory=threading.Event)
    text: str = ""
    error: BaseException | None = None


class Listener:
    """The process's Whisper worker thread and its bounded queue of questions."""

    def __init__(self, max_batch: int, max_waiting: int, *, full_window: bool = False) -> None:
        self.max_batch, self.max_waiting = max_batch, max_waiting
        self.full_window = full_window  # Whisper's whole 30 s window (the old way: slower)
        self._waiting: deque[_Question] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self.passes = 0  # Whisper passes run (for the bench and tests)

    def hear(self, samples: npt.NDArray[Any], language: str) -> str:
        """The text of one recorded question (16 kHz mono), heard in the next pass."""
        question = _Question(samples, language)
        with self._ready:
            if len(self._waiting) >= self.max_waiting:
                raise Busy(
                    "Too many spoken questions at once: try again in a moment, or type it.",
                    code="asr_busy",
                    retry_after=2,
                )
            self._waiting.append(question)
            self._start()
            self._ready.notify()
        question.done.wait()
        if question.error is not None:
            raise question.error
        return question.text

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="dhf-whisper", daemon=True)
            self._thread.start()

    def _take(self) -> list[_Question]:
        with self._ready:
            while not self._waiting:
                self._ready.wait()
            n = min(self.max_batch, len(self._waiting))
            return [self._waiting.popleft() for _ in range(n)]

    def _run(self) -> None:
        from pipeline import asr

        while True:
            batch = self._take()
            try:
                floor = asr.MAX_WINDOW_FRAMES if self.full_window else asr.MIN_WINDOW_FRAMES
                texts = asr.transcribe_short(
                    [asr.ShortQuestion(q.samples, asr.RATE, q.language) for q in batch],
                    floor=floor,
                )
                for question, text in zip(batch, texts, strict=True):
                    question.text = text
            except BaseException as exc:  # handed to the waiting requests, not lost
                for question in batch:
                    question.error = exc
            self.passes += 1
            for question in batch:
                question.done.set()


_listeners: dict[tuple[int, int, bool], Listener] = {}
_lock = threading.Lock()


def listener(config: Any) -> Listener:
    """The process's listener for the app's settings (one per process and setting)."""
    key = (
        int(config["QA_ASR_MAX_BATCH"]),
        int(config["QA_ASR_MAX_WAITING"]),
        bool(config["QA_ASR_FULL_WINDOW"]),
    )
    with _lock:
        if key not in _listeners:
            _listeners[key] = Listener(key[0], key[1], full_window=key[2])
        return _listeners[key]
