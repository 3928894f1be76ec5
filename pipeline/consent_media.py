"""What a consent recording (or reference footage) shows: the features the consent
checks in ``compliance.consent`` decide on.

Faces: dlib ResNet identity embeddings (128-d) of sampled frames. Voice: a Resemblyzer
speaker embedding (256-d, unit length). Words: pocketsphinx constrained to the statement's
vocabulary. Liveness: how much the picture changes between frames (a still image or a
frozen loop barely does).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from compliance import media
from compliance.consent import DIGITS, statement

from . import bundled

VOICE_RATE = 16000


@dataclass(frozen=True)
class RecordingFeatures:
    faces: np.ndarray  # (n, 128) dlib embeddings of the frames where one face was found
    frames_sampled: int
    voice: np.ndarray | None  # (256,) speaker embedding, None without enough speech
    transcript: str
    motion: float  # median mean-absolute frame difference (0-255 scale) between samples
    duration_s: float


def _statement_grammar() -> str:
    """JSGF over the statement's own words and the digits: the speaker reads known text,
    so a closed vocabulary beats the open language model (which hears "my code is four
    seven one nine" far less reliably)."""
    words = set(re.findall(r"[a-z]+", statement("i", "0").lower())) | set(DIGITS)
    return "#JSGF V1.0;\ngrammar consent;\npublic <s> = ( " + " | ".join(sorted(words)) + " )* ;\n"


def transcribe_statement(pcm: np.ndarray, rate: int = VOICE_RATE) -> str:
    """pocketsphinx with the statement grammar; int16 mono at ``rate``."""
    from pocketsphinx import Decoder

    if rate != VOICE_RATE:
        pcm = (media.resample(pcm.astype(np.float32) / 32768, rate, VOICE_RATE) * 32767).astype(
            np.int16
        )
    decoder = Decoder(loglevel="FATAL")
    decoder.add_jsgf_string("consent", _statement_grammar())
    decoder.activate_search("consent")
    decoder.start_utt()
    decoder.process_raw(pcm.astype(np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp else ""


def face_embeddings(rgb_frames: list[np.ndarray]) -> np.ndarray:
    found = []
    for frame in rgb_frames:
        try:
            found.append(bundled.face_embedding(np.ascontiguousarray(frame)))
        except RuntimeError:  # no face in this frame
            continue
    return np.array(found).reshape(-1, 128)


def voice_embedding(samples: np.ndarray, rate: int = VOICE_RATE) -> np.ndarray | None:
    from resemblyzer import preprocess_wav

    wav = preprocess_wav(samples.astype(np.float32), source_sr=rate)
    if len(wav) < rate:  # under a second of voiced audio
        return None
    return np.asarray(bundled.load_voice_encoder().embed_utterance(wav))


def motion(rgb_frames: list[np.ndarray]) -> float:
    if len(rgb_frames) < 2:
        return 0.0
    grey = [f.astype(np.float32).mean(axis=2) for f in rgb_frames]
    return float(np.median([np.abs(a - b).mean() for a, b in zip(grey, grey[1:], strict=False)]))


def analyse(path: str | os.PathLike[str], samples: int = 12) -> RecordingFeatures:
    """Sample ``samples`` frames evenly and the whole audio track of a recording."""
    facts = media.video_facts(path)
    every = max(1, facts.frames // samples) if facts.frames else 1  # browser WebM: no count
    decoded = list(media.frames(path, every=every))
    frames = (
        [
            decoded[i]
            for i in np.linspace(0, len(decoded) - 1, min(samples, len(decoded))).astype(int)
        ]
        if decoded
        else []
    )
    audio = media.audio(path, VOICE_RATE)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    return RecordingFeatures(
        faces=face_embeddings(frames),
        frames_sampled=len(frames),
        voice=voice_embedding(audio) if len(audio) else None,
        transcript=transcribe_statement(pcm) if len(audio) else "",
        motion=motion(frames),
        duration_s=len(audio) / VOICE_RATE,
    )
