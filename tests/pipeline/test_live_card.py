"""A live segment's product card (issue 19): drawn in the lower third, readable, only on
its own box; the picture and the CJK title are really there."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.live.card import Card, CardOverlay

GREEN = (0, 170, 60)


def test_the_card_is_drawn_in_the_lower_third_with_its_picture_and_text() -> None:
    frame = np.full((288, 360, 3), 90, np.uint8)
    overlay = CardOverlay(
        Card("电水壶 Electric kettle", "¥199", Image.new("RGB", (400, 300), GREEN))
    )
    out = overlay(frame)
    x, y, w, h = overlay.box(360, 288)
    assert (
        y >= 288 * 2 // 3 - 10 and y + h < 288 and x + w < 360 * 0.75
    )  # the AI mark's corner stays clear
    changed = np.any(out != frame, axis=2)
    assert (
        changed[y : y + h, x : x + w].mean() > 0.9
        and changed.sum() == changed[y : y + h, x : x + w].sum()
    )
    card = out[y : y + h, x : x + w].astype(int)
    green = (np.abs(card - GREEN).sum(axis=2) < 30).sum()
    assert green > 0.5 * (h * 0.6) ** 2  # the picture, scaled into the card
    dark = (card.sum(axis=2) < 150).sum()  # title ink on the light panel
    red = ((card[..., 0] > 150) & (card[..., 1] < 80)).sum()  # the price
    assert dark > 100 and red > 50
    assert np.array_equal(overlay(frame), out)  # the same every frame


def test_a_long_or_chinese_title_is_fitted_not_overflowing() -> None:
    frame = np.zeros((288, 360, 3), np.uint8)
    chinese = CardOverlay(Card("电水壶" * 20, "")).__call__(frame)
    latin = CardOverlay(Card("x", "")).__call__(frame)
    ink = lambda img: (img.sum(axis=2) < 150) & (img.sum(axis=2) > 0)  # noqa: E731
    assert ink(chinese).sum() > 3 * ink(latin).sum()  # the glyphs are drawn (a CJK font)
    assert np.array_equal(np.any(chinese != 0, axis=2), np.any(latin != 0, axis=2))  # same box
