"""The product card of a live segment: title, price and picture in the lower third.

It is drawn onto the composited frames at render time, before stamping, so the AI label,
the corner mark and the watermark are applied to the final pictures (the card never
covers them: the stamp is drawn over it). Like the labels, the card is rendered once per
frame size with Pillow (the project's CJK-capable font, so Chinese titles work) and
alpha-blended onto its bounding box in every frame.

Layout: a white, slightly translucent rounded panel at the bottom left, leaving the
bottom-right corner to the persistent "AI" mark; the picture (if any) on its left, the
title in dark bold text and the price below it in a strong red. The title's cap height is
at least 5 % of the frame height, so it stays readable on a phone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from compliance.labels import font_path

Pixels = npt.NDArray[np.float32]
PANEL = (255, 255, 255, 225)
TITLE = (20, 20, 20, 255)
PRICE = (208, 16, 32, 255)


@dataclass(frozen=True)
class Card:
    title: str
    price: str = ""
    image: Image.Image | None = None  # RGB, already checked and reduced


class CardOverlay:
    """``overlay(frame)`` draws the card onto an RGB frame (H x W x 3, uint8), in place
    on a copy; the layer is built on the first frame of each size."""

    def __init__(self, card: Card):
        self.card = card
        self._layer: tuple[tuple[int, int], int, int, Pixels, Pixels] | None = None

    def __call__(self, frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        height, width = frame.shape[:2]
        if self._layer is None or self._layer[0] != (width, height):
            self._layer = ((width, height), *self._build(width, height))
        _, x, y, colour, alpha = self._layer
        h, w = alpha.shape[:2]
        out = frame.copy()
        region = out[y : y + h, x : x + w].astype(np.float32)
        out[y : y + h, x : x + w] = (region * (1 - alpha) + colour * alpha).astype(np.uint8)
        return out

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The card's ``(x, y, w, h)`` on a frame of this size."""
        x, y, _, alpha = self._build(width, height)
        return x, y, alpha.shape[1], alpha.shape[0]

    def _build(self, width: int, height: int) -> tuple[int, int, Pixels, Pixels]:
        card = self.card
        pad = max(4, height // 60)
        title_font = _font_for(height * 0.05)
        price_font = _font_for(height * 0.06)
        panel_w = int(width * 0.66)
        text_h = _line_height(title_font) + (_line_height(price_font) + pad if card.price else 0)
        panel_h = text_h + 2 * pad
        thumb = None
        if card.image is not None:
            thumb = card.image.copy()
            thumb.thumbnail((panel_h - 2 * pad, panel_h - 2 * pad))
        layer = Image.new("RGBA", (panel_w, panel_h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        draw.rounded_rectangle((0, 0, panel_w - 1, panel_h - 1), radius=pad * 2, fill=PANEL)
        text_x = pad * 2
        if thumb is not None:
            layer.paste(thumb.convert("RGBA"), (pad, pad + (panel_h - 2 * pad - thumb.height) // 2))
            text_x = pad * 2 + thumb.width
        room = panel_w - text_x - pad * 2
        draw.text(
            (text_x, pad), _fit(draw, card.title, title_font, room), font=title_font, fill=TITLE
        )
        if card.price:
            y = pad + _line_height(title_font) + pad
            draw.text(
                (text_x, y), _fit(draw, card.price, price_font, room), font=price_font, fill=PRICE
            )
        rgba = np.asarray(layer, np.float32)
        x = int(width * 0.04)
        y = height - panel_h - int(height * 0.05)
        return x, max(0, y), rgba[..., :3], rgba[..., 3:] / 255.0


def _font_for(cap_height: float) -> ImageFont.FreeTypeFont:
    """The smallest font whose Latin cap height ("H") is at least ``cap_height`` pixels."""
    size = max(8, int(cap_height))
    while True:
        font = ImageFont.truetype(str(font_path()), size)
        left, top, right, bottom = font.getbbox("H")
        if bottom - top >= cap_height:
            return font
        size += 1


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    left, top, right, bottom = font.getbbox("Hg价")
    return int(bottom)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, room: int) -> str:
    """The text, shortened with an ellipsis to fit ``room`` pixels."""
    if draw.textlength(text, font=font) <= room:
        return text
    while text and draw.textlength(text + "…", font=font) > room:
        text = text[:-1]
    return text + "…"
