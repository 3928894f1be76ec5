"""Compositing helpers: 3D LUTs, tone presets, cartoon style, framing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.face import composite

from . import synthetic


def write_cube(path: Path, size: int, fn) -> None:  # type: ignore[no-untyped-def]
    grid = np.linspace(0, 1, size)
    rows = [fn(r, g, b) for b in grid for g in grid for r in grid]  # red fastest
    body = "\n".join(f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in rows)
    path.write_text(f'TITLE "test"\nLUT_3D_SIZE {size}\n{body}\n')


def test_identity_cube_keeps_the_image_and_a_swap_cube_swaps(tmp_path: Path) -> None:
    image = synthetic.face(64)
    write_cube(tmp_path / "id.cube", 17, lambda r, g, b: (r, g, b))
    write_cube(tmp_path / "swap.cube", 17, lambda r, g, b: (b, g, r))
    same = composite.apply_lut(image, tmp_path / "id.cube")
    swapped = composite.apply_lut(image, tmp_path / "swap.cube")
    assert np.abs(same.astype(int) - image).max() <= 1  # 7-bit sampling: off by one at most
    assert np.abs(swapped.astype(int) - image[..., ::-1]).max() <= 1


def test_bad_cube_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.cube").write_text("LUT_3D_SIZE 4\n0 0 0\n")
    with pytest.raises(ValueError, match="not a 3D .cube LUT"):
        composite.load_cube(tmp_path / "bad.cube")


def test_tones_move_colour_the_right_way() -> None:
    image = synthetic.face(64)
    warm = composite.apply_tone(image, "warm").astype(float)
    cool = composite.apply_tone(image, "cool").astype(float)
    mono = composite.apply_tone(image, "mono")
    assert (warm[..., 0] - warm[..., 2]).mean() > (cool[..., 0] - cool[..., 2]).mean() + 10
    assert np.abs(mono[..., 0].astype(int) - mono[..., 2]).max() <= 1
    with pytest.raises(ValueError, match="unknown colour tone"):
        composite.apply_tone(image, "sepia")


def test_cartoon_flattens_colours() -> None:
    image = synthetic.face(128)
    toon = composite.cartoon(image)
    assert toon.shape == image.shape
    colours = len(np.unique(toon.reshape(-1, 3), axis=0))
    assert colours < len(np.unique(image.reshape(-1, 3), axis=0)) / 4


def test_half_body_framing_stays_inside_the_frame() -> None:
    points = np.zeros((3, 478, 2), np.float32)
    points[:, :, 0] = 180
    points[:, 10, 1], points[:, 152, 1] = 60, 160
    box = composite.framing_box(points, (360, 288), "half", 1.0, full_ok=False)
    x0, y0, x1, y1 = box
    assert 0 <= x0 < x1 <= 360 and 0 <= y0 < y1 <= 288
    assert abs((x1 - x0) - (y1 - y0)) <= 1
