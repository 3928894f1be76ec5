"""Damaged frames in the footage never reach a render.

Two of the GRID training clips decode with their first 12 frames as grey blocks (the
stream starts before its reference frame): a real defect of real footage. Ingest must
find them, track no face in them and hold the nearest good picture in their place, so no
template loop, mouth crop or 3D texture comes from them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from compliance import media
from pipeline.face import ingest

from ...conftest import SHARED_DATA

TRAIN = SHARED_DATA / "grid_s1" / "train"
DAMAGED, CLEAN = TRAIN / "bbizzn.mpg", TRAIN / "bbal7s.mpg"


def _thumbs(clip: Path) -> np.ndarray:
    return np.stack(
        [cv2.resize(f, ingest.THUMB, interpolation=cv2.INTER_AREA) for f in media.frames(clip)]
    )


@pytest.fixture(scope="module")
def clips() -> tuple[Path, Path]:
    if not (DAMAGED.exists() and CLEAN.exists()):
        pytest.skip(f"shared data missing: {TRAIN}")
    return DAMAGED, CLEAN


def test_the_grey_block_frames_are_found_and_nothing_else(clips) -> None:  # type: ignore[no-untyped-def]
    damaged, clean = clips
    assert np.flatnonzero(ingest.glitched(_thumbs(damaged), 25.0)).tolist() == list(range(12))
    assert not ingest.glitched(_thumbs(clean), 25.0).any()


def test_ingest_holds_the_nearest_good_frame_in_their_place(clips, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    damaged, _ = clips
    clip = ingest.read_clip(damaged, tmp_path, 0)
    assert clip.glitched == 12
    assert not clip.found[:12].any() and clip.found[12:].mean() > 0.9
    held = (tmp_path / "000012.jpg").read_bytes()
    assert all((tmp_path / f"{i:06d}.jpg").read_bytes() == held for i in range(12))
    assert np.array_equal(clip.points[0], clip.points[12])
    # the held frames look like the scene: a face is there, not grey blocks
    first = cv2.imread(str(tmp_path / "000000.jpg"))
    assert np.abs(first.astype(int) - 128).mean() > 20
