"""The avatar's 3D model page in a real browser: the vendored three.js loads the GLB the
server exports (its viseme blend shapes and both animations) and plays it."""

from __future__ import annotations

import io

import pytest

from ..conftest import Face3dFootage, pack_face
from .conftest import sign_up
from .test_talk_page import _until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),  # the page, not the DB
]


@pytest.fixture
def live_config(stamped_media) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {
        "WATERMARK_KEYS": stamped_media.watermark_keys,
        "SIGNING_DIR": str(stamped_media.settings.signing_dir),
    }


def _ready_avatar(app, email: str, face3d: Face3dFootage) -> str:  # type: ignore[no-untyped-def]
    from webapp.extensions import db
    from webapp.models import User
    from webapp.storage import vault

    from .. import factories

    with app.app_context():
        owner = db.session.query(User).filter_by(email=email).one()
        subject, _ = factories.consented_subject(owner)
        avatar = factories.avatar(owner, subject)
        avatar.model_blob_id = vault().put(subject.id, io.BytesIO(pack_face(face3d.face)))[0]
        avatar.status = "ready"
        db.session.commit()
        return str(avatar.id)


def test_the_3d_page_loads_and_animates_the_glb(
    live_server, open_page, face3d_footage: Face3dFootage
) -> None:
    app, base = live_server
    page = open_page("--enable-unsafe-swiftshader", "--use-angle=swiftshader")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
    sign_up(page, base, "three@example.com")
    avatar_id = _ready_avatar(app, "three@example.com", face3d_footage)
    page.goto(f"{base}/studio/avatars/{avatar_id}/3d")
    assert "AI-generated" in page.locator(".notice").inner_text()
    _until(page, "document.getElementById('viewer').dataset.loaded !== undefined", 60)
    viewer = page.locator("#viewer")
    assert viewer.get_attribute("data-loaded") == "yes", errors
    assert viewer.get_attribute("data-animations") == "idle,talk"
    assert viewer.get_attribute("data-morph-targets") == "8"  # 6 visemes, breath, blink
    assert viewer.get_attribute("data-playing") == "talk"
    page.click("[data-animation=idle]")
    assert viewer.get_attribute("data-playing") == "idle"
    assert not [e for e in errors if "status of 404" not in e], errors
    assert all(url.endswith("/favicon.ico") for url in missing), missing
