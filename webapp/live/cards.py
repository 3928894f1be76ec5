"""Product cards on live segments: checked on the way in, kept in the vault.

A card is ``{title, price?, image?}``. The title and price are shown on screen, so they
are moderated like scripts. The image (PNG, JPEG or WebP; base64 in the API's JSON, a file
on the planning page) is limited in bytes, then its header is read for the format and the
resolution, and only then is it decoded; it is stored re-encoded as a small PNG (at most
``THUMB_PX`` a side, no metadata) in the avatar subject's vault, so it is deleted with the
subject's data. The render job draws the card (``pipeline.live.card``) before stamping.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from flask import current_app
from PIL import Image, UnidentifiedImageError

from compliance.moderation import moderate

from ..errors import InvalidInput
from ..storage import vault

FORMATS = {"PNG", "JPEG", "WEBP"}
THUMB_PX = 512  # the stored picture's longest side (it is drawn far smaller)
TITLE_CHARS, PRICE_CHARS = 80, 24


def _limit(name: str) -> int:
    return int(current_app.config[f"LIVE_CARD_IMAGE_MAX_{name}"])


def parse(raw: Any, n: int) -> dict[str, Any] | None:
    """A segment's card, checked; ``{"title", "price", "png"}`` or None."""
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        raise InvalidInput(
            f'The card of segment {n} must look like {{"title": "...", "price": "...", '
            '"image": "<base64>"}.',
            code="bad_card",
        )
    title = " ".join(str(raw.get("title") or "").split())
    price = " ".join(str(raw.get("price") or "").split())
    if not title:
        raise InvalidInput(f"Give the card of segment {n} a title.", code="bad_card")
    if len(title) > TITLE_CHARS or len(price) > PRICE_CHARS:
        raise InvalidInput(
            f"A card's title has at most {TITLE_CHARS} characters, its price {PRICE_CHARS}.",
            code="bad_card",
        )
    verdict = moderate(f"{title} {price}")
    if not verdict.allowed:
        raise InvalidInput(
            f"The card of segment {n} falls under our policy on {verdict.category} content "
            f'("{verdict.matched}"); change it and try again.',
            code=f"moderation_{verdict.category}",
        )
    image = raw.get("image")
    png = check_image(_bytes(image, n), n) if image else None
    return {"title": title, "price": price, "png": png}


def _bytes(image: Any, n: int) -> bytes:
    """The image's bytes: a file's (the page) or base64 (the API), size checked first."""
    limit = _limit("BYTES")
    if isinstance(image, str):
        if len(image) > (limit + 2) // 3 * 4 + 4:
            raise _too_large(n, limit)
        try:
            image = base64.b64decode(image.split(",", 1)[-1], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                f"The card image of segment {n} is not valid base64.", code="bad_card_image"
            ) from None
    if not isinstance(image, bytes):
        raise InvalidInput(
            f"The card image of segment {n} is a base64 string.", code="bad_card_image"
        )
    if len(image) > limit:
        raise _too_large(n, limit)
    return image


def _too_large(n: int, limit: int) -> InvalidInput:
    return InvalidInput(
        f"The card image of segment {n} is larger than {limit // 1024} KB: use a smaller file.",
        code="card_image_too_large",
    )


def _too_big(n: int, size: str) -> InvalidInput:
    return InvalidInput(
        f"The card image of segment {n} is {size}: at most "
        f"{_limit('PIXELS') // 1_000_000} megapixels (8192 pixels a side).",
        code="card_image_too_big",
    )


def check_image(data: bytes, n: int) -> bytes:
    """Format and resolution from the header, then decode; the stored PNG's bytes."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in FORMATS:
                raise InvalidInput(
                    f"The card image of segment {n} must be a PNG, JPEG or WebP picture.",
                    code="bad_card_image",
                )
            width, height = img.size
            if width * height > _limit("PIXELS") or max(width, height) > 8192:
                raise _too_big(n, f"{width}x{height}")
            img.draft("RGB", (THUMB_PX, THUMB_PX))  # JPEG: decode at a reduced scale
            picture = img.convert("RGB")
    except Image.DecompressionBombError:  # Pillow's own header check, far above ours
        raise _too_big(n, "far too large") from None
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise InvalidInput(
            f"The card image of segment {n} could not be read as a picture.",
            code="bad_card_image",
        ) from None
    picture.thumbnail((THUMB_PX, THUMB_PX))
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def store(card: dict[str, Any] | None, subject_id: str) -> dict[str, Any] | None:
    """What the segment and its render keep: the image is put in the subject's vault."""
    if card is None:
        return None
    blob_id = vault().put(subject_id, io.BytesIO(card["png"]))[0] if card["png"] else None
    return {"title": card["title"], "price": card["price"], "image_blob_id": blob_id}


def card_json(card: dict[str, Any] | None) -> dict[str, Any] | None:
    if not card:
        return None
    return {"title": card["title"], "price": card["price"], "image": bool(card["image_blob_id"])}
