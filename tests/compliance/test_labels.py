"""R8 visible and R9 audible AIGC labels (compliance.labels), checked by pixels and by ear."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import ImageFont
from pocketsphinx import Decoder
from skimage import data

from compliance.labels import (
    Labeler,
    LabelOptions,
    find_label,
    font_path,
    notice_audio,
)

SIZES = [(360, 288), (512, 512), (1280, 720)]
NOTICE_WORDS = {"this", "video", "was", "generated", "by", "ai"}


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def _photo(astronaut: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(astronaut, size, interpolation=cv2.INTER_AREA)


def _luma(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)


def _inside(ys: np.ndarray, xs: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)


# --- R8: visible label ---------------------------------------------------------------------


def test_font_is_the_bundled_cjk_font():
    path = font_path()
    assert path.is_file() and path.suffix == ".otf"
    font = ImageFont.truetype(str(path), 40)
    assert font.getbbox("生成")[2] > font.getbbox("AI")[2]  # real CJK glyphs, not blanks


@pytest.mark.parametrize("size", SIZES)
def test_glyphs_reach_5_percent_of_the_shorter_side(size):
    labeler = Labeler(*size)
    floor = 0.05 * min(size)
    assert labeler.glyph_height_px >= floor
    assert labeler.cap_height_px >= floor  # even the Latin capitals, the shortest glyphs
    left, top, right, bottom = ImageFont.truetype(str(font_path()), labeler.font_size).getbbox(
        "AI生成"
    )
    assert bottom - top >= floor


@pytest.mark.parametrize("size", SIZES)
def test_rendered_text_is_as_tall_as_measured(size):
    width, height = size
    labeled = Labeler(width, height).apply(np.zeros((height, width, 3), np.uint8), 0.0)
    bright = _luma(labeled, Labeler(width, height).label_box) > 170
    cols = np.flatnonzero(bright.any(axis=0))
    head = bright[:, cols[0] : cols[0] + (cols[-1] - cols[0]) // 4]  # "AI生..." of the text
    rows = np.flatnonzero(head.any(axis=1))
    assert rows[-1] - rows[0] + 1 >= 0.05 * min(size)


@pytest.mark.parametrize("size", SIZES)
def test_label_and_mark_sit_in_their_corners(size):
    width, height = size
    labeler = Labeler(width, height)
    margin = 0.02 * min(size)
    x0, y0, x1, y1 = labeler.label_box
    assert abs(x0 - margin) <= 1 and abs(y0 - margin) <= 1  # top-left
    assert x1 <= width and y1 <= height / 2
    mx0, my0, mx1, my1 = labeler.mark_box
    assert abs(width - mx1 - margin) <= 1 and abs(height - my1 - margin) <= 1  # bottom-right
    assert (mx1 - mx0) * (my1 - my0) < (x1 - x0) * (y1 - y0) / 4  # the mark is smaller


@pytest.mark.parametrize("size", SIZES)
def test_apply_changes_only_the_label_and_mark_boxes(size, astronaut):
    width, height = size
    labeler = Labeler(width, height)
    photo = _photo(astronaut, size)
    before = photo.copy()
    for t, boxes in ((0.0, (labeler.label_box, labeler.mark_box)), (3.5, (labeler.mark_box,))):
        out = labeler.apply(photo, t)
        assert out.dtype == np.uint8 and out.shape == photo.shape
        ys, xs = np.nonzero((out != photo).any(axis=2))
        allowed = np.zeros(ys.shape, bool)
        for box in boxes:
            inside = _inside(ys, xs, box)
            assert inside.sum() > 0.3 * (box[2] - box[0]) * (box[3] - box[1])
            allowed |= inside
        assert allowed.all(), f"pixels changed outside the boxes at t={t}"
    assert np.array_equal(photo, before)  # the input frame is not touched


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("colour", [(255, 255, 255), (0, 0, 0), (255, 220, 0)])
def test_label_is_bright_text_on_a_dark_box_on_any_background(size, colour):
    width, height = size
    labeler = Labeler(width, height)
    frame = np.empty((height, width, 3), np.uint8)
    frame[...] = colour
    out = labeler.apply(frame, 0.0)
    for box in (labeler.label_box, labeler.mark_box):
        luma = _luma(out, box)
        x0, y0, x1, y1 = box
        inner = luma[(y1 - y0) // 4 : -((y1 - y0) // 4), (x1 - x0) // 8 : -((x1 - x0) // 8)]
        assert (inner < 100).mean() > 0.4  # dark background, also over white and yellow
        assert (inner > 200).mean() > 0.05  # bright text, also over black
        assert (inner < 100).mean() + (inner > 200).mean() > 0.8  # little else


@pytest.mark.parametrize("size", SIZES)
def test_find_label_sees_the_opening_label_only(size, astronaut):
    labeler = Labeler(*size)
    photo = _photo(astronaut, size)
    assert find_label(labeler.apply(photo, 0.0)) == labeler.label_box
    assert find_label(labeler.apply(photo, 2.9)) == labeler.label_box
    assert find_label(labeler.apply(photo, 3.5)) is None  # the persistent mark is not it
    assert find_label(photo) is None
    for colour in (0, 128, 255):
        assert find_label(np.full_like(photo, colour)) is None


def test_find_label_follows_the_options_and_survives_jpeg(astronaut):
    options = LabelOptions(corner="bottom-left", mark_corner="top-right", opening_seconds=2.0)
    labeler = Labeler(512, 512, options)
    photo = _photo(astronaut, (512, 512))
    labeled = labeler.apply(photo, 1.99)
    assert labeler.label_box[1] > 256  # bottom half
    assert find_label(labeled, options) == labeler.label_box
    assert find_label(labeled) is None  # not in the default (top-left) corner
    assert find_label(labeler.apply(photo, 2.0), options) is None
    ok, jpeg = cv2.imencode(".jpg", labeled, [cv2.IMWRITE_JPEG_QUALITY, 30])
    assert ok and find_label(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), options) is not None


def test_options_are_validated():
    for bad in (
        {"text": "AI-generated"},  # no 生成
        {"text": "生成内容"},  # no AI
        {"opening_seconds": 1.5},
        {"glyph_fraction": 0.04},
        {"corner": "middle"},
        {"mark_corner": "top-left"},  # the label's corner
        {"notice": "beep"},
    ):
        with pytest.raises(ValueError):
            LabelOptions(**bad)
    with pytest.raises(ValueError):
        Labeler(512, 512).apply(np.zeros((256, 256, 3), np.uint8), 0.0)


# --- R9: audible notice --------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return notice_audio(16000)


def test_speech_notice_duration_level_and_tail(speech):
    assert speech.dtype == np.float32 and speech.ndim == 1
    assert 1.0 <= len(speech) / 16000 <= 4.0
    assert 0.5 < np.abs(speech).max() <= 1.0
    assert not speech[-int(0.15 * 16000) :].any()  # silence after the notice
    again = notice_audio(44100)
    assert abs(len(again) / 44100 - len(speech) / 16000) < 0.01


def test_speech_notice_is_understood(speech):
    decoder = Decoder(loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw((speech * 32767).astype(np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    heard = decoder.hyp().hypstr.lower().split() if decoder.hyp() else []
    assert "generated" in heard, heard
    assert len(NOTICE_WORDS & set(heard)) >= 2, heard


def _bursts(samples: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """(start, duration) in seconds of the runs where the 5 ms RMS envelope is on."""
    hop = rate // 200
    frames = samples[: len(samples) // hop * hop].reshape(-1, hop)
    on = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) > 0.1
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(int), [0]])))
    pairs = zip(edges[::2], edges[1::2], strict=True)
    return [(s * hop / rate, (e - s) * hop / rate) for s, e in pairs]


@pytest.mark.parametrize("rate", [16000, 44100])
def test_tone_notice_is_short_long_short_short(rate):
    tone = notice_audio(rate, LabelOptions(notice="tone"))
    assert tone.dtype == np.float32 and np.abs(tone).max() <= 1.0
    assert 0.8 <= len(tone) / rate <= 2.0
    assert not tone[-int(0.15 * rate) :].any()
    bursts = _bursts(tone, rate)
    assert len(bursts) == 4, bursts
    short = [bursts[i][1] for i in (0, 2, 3)]
    long = bursts[1][1]
    assert max(short) < 1.25 * min(short)  # the three shorts match
    assert long > 2 * max(short)  # short-LONG-short-short
    letter_gap = bursts[2][0] - (bursts[1][0] + long)  # Morse: "A" (.-) then "I" (..)
    assert letter_gap > bursts[1][0] - (bursts[0][0] + short[0])
