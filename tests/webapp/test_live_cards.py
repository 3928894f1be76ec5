"""Product cards on live segments (issue 19): checked before anything is written (bytes
first, then the picture's header, then decoding), stored re-encoded in the subject's
vault, handed to the segment's render (which draws it before stamping: see
tests/pipeline/face/test_face_pipeline.py), in the API and through the planning page."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Avatar, LiveRoom, LiveSegment, Render
from webapp.storage import vault

from .test_live_api import _body, _owner, public_dns  # noqa: F401 (the fixture is used)
from .test_live_pages import _plan, _signed_in

# checks on bytes and pictures: one database engine is enough (the API runs on both)
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _png(width: int, height: int, colour=(0, 170, 60)) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def _huge_header_png(width: int, height: int) -> bytes:
    """A tiny file whose header claims a picture of ``width`` x ``height`` (a bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def _with_card(avatar_id: str, card: dict) -> dict:  # type: ignore[type-arg]
    body = _body(avatar_id)
    body["segments"][1]["card"] = card
    return body


def test_a_card_is_stored_and_handed_to_its_segment_render(app, client):
    headers, avatar_id = _owner(app)
    picture = base64.b64encode(_png(1200, 900)).decode()
    card = {"title": "电水壶 Kettle", "price": "¥199", "image": picture}
    res = client.post("/api/v1/live-rooms", json=_with_card(avatar_id, card), headers=headers)
    assert res.status_code == 202, res.json
    segments = res.json["segments"]
    assert segments[0]["card"] is None
    assert segments[1]["card"] == {"title": "电水壶 Kettle", "price": "¥199", "image": True}
    with app.app_context():
        row = db.session.scalars(select(LiveSegment).where(LiveSegment.position == 1)).one()
        render = db.session.get(Render, row.render_id)
        assert render.options["card"] == row.card and row.card["image_blob_id"]
        subject_id = db.session.get(Avatar, avatar_id).subject_id
        stored = Image.open(io.BytesIO(vault().read(subject_id, row.card["image_blob_id"])))
        assert stored.format == "PNG" and stored.size == (512, 384)  # re-encoded, reduced
    # a client cannot put a card into an ordinary render's options
    res = client.post(
        "/api/v1/renders",
        json={"avatar_id": avatar_id, "script": "Hello there.", "card": card},
        headers=headers,
    )
    with app.app_context():
        if res.status_code == 202:
            assert "card" not in db.session.get(Render, res.json["id"]).options


@pytest.mark.parametrize(
    ("image", "code"),
    [
        ("A" * 800_000, "card_image_too_large"),  # refused by its length, never decoded
        (base64.b64encode(_huge_header_png(8000, 8000)).decode(), "card_image_too_big"),
        (base64.b64encode(b"GIF89a not really").decode(), "bad_card_image"),
        ("not base64!", "bad_card_image"),
    ],
    ids=["bytes", "bomb", "gif", "base64"],
)
def test_bad_pictures_are_refused_before_anything_is_written(app, client, image, code):
    headers, avatar_id = _owner(app)
    body = _with_card(avatar_id, {"title": "Kettle", "image": image})
    res = client.post("/api/v1/live-rooms", json=body, headers=headers)
    assert res.status_code == 422 and res.json["error"] == code, res.json
    with app.app_context():
        assert db.session.scalars(select(LiveRoom)).first() is None
        assert db.session.scalars(select(Render)).first() is None


def test_card_text_is_checked_and_moderated(app, client):
    headers, avatar_id = _owner(app)
    res = client.post(
        "/api/v1/live-rooms", json=_with_card(avatar_id, {"price": "¥1"}), headers=headers
    )
    assert res.status_code == 422 and res.json["error"] == "bad_card"
    res = client.post(
        "/api/v1/live-rooms",
        json=_with_card(avatar_id, {"title": "Guaranteed returns", "price": "Double your money"}),
        headers=headers,
    )
    assert res.status_code == 422 and res.json["error"].startswith("moderation_"), res.json


def test_the_planning_page_takes_a_card_picture(app, client):
    avatar_id = _signed_in(app, client)
    form = _plan(avatar_id, card_title=["", "Kettle", ""], card_price=["", "¥199", ""])
    form["card_image_1"] = (io.BytesIO(_png(300, 200)), "kettle.png")
    page = client.post(
        "/studio/live/new", data=form, content_type="multipart/form-data", follow_redirects=True
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Card: Kettle · ¥199 · with picture" in html
    form = _plan(avatar_id, card_title=["", "Kettle", ""])
    # (a lower limit here: the test client spools bodies over 500 KB to a file it leaves open)
    app.config["LIVE_CARD_IMAGE_MAX_BYTES"] = 100 * 1024
    form["card_image_1"] = (io.BytesIO(b"\0" * (150 * 1024)), "big.png")
    page = client.post("/studio/live/new", data=form, content_type="multipart/form-data")
    assert page.status_code == 422 and "(card_image_too_large)" in page.get_data(as_text=True)
