"""The quality report shows a still of each 3D look drawn from the avatar's rig (the
closing screenshots' frames, labelled), with its identity distance, to the owner only."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from webapp.extensions import db
from webapp.models import AvatarStatus

from .. import factories
from ..conftest import TEST_PASSWORD, Face3dFootage

pytestmark = pytest.mark.slow


def _login(client, email: str) -> None:  # type: ignore[no-untyped-def]
    res = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert res.status_code == 302


def test_the_report_shows_each_3d_look_to_the_owner_only(  # type: ignore[no-untyped-def]
    app, client, face3d_footage: Face3dFootage, tmp_path: Path
) -> None:
    from pipeline.face3d.scene import LOOKS
    from webapp.studio.tasks import _looks3d

    work = tmp_path / "work"
    work.mkdir()
    (work / "face").symlink_to(face3d_footage.face)
    with app.app_context():
        owner, other = factories.user(), factories.user()
        avatar = factories.avatar(owner)
        looks, blobs = _looks3d(work, avatar)
        avatar.quality = {"summary": {}, "plots": [], "plot_blobs": blobs, "looks3d": looks}
        avatar.status = AvatarStatus.READY
        db.session.commit()
        avatar_id, emails = avatar.id, (owner.email, other.email)
    assert [row["look"] for row in looks] == list(LOOKS)
    distances = {row["look"]: row["identity_distance"] for row in looks}
    assert distances["3d_realistic"] is not None and distances["3d_realistic"] <= 0.45

    _login(client, emails[0])
    html = client.get(f"/studio/avatars/{avatar_id}").get_data(as_text=True)
    figure = r'<figure class="look3d" data-look="([^"]+)">\s*<img[^>]*src="([^"]+)"'
    shown = re.findall(figure, html)
    assert [look for look, _ in shown] == list(LOOKS)
    assert f"identity distance {distances['3d_realistic']}" in html
    sheets = {}
    for look, url in shown:
        res = client.get(url)
        assert res.status_code == 200 and res.mimetype == "image/png", url
        sheets[look] = cv2.imdecode(np.frombuffer(res.data, np.uint8), cv2.IMREAD_COLOR)
        assert sheets[look].shape[1] == 3 * 512  # closed, open, turned
    assert np.abs(sheets["3d_realistic"].astype(int) - sheets["3d_cartoon"]).mean() > 10

    stranger = client.application.test_client()
    _login(stranger, emails[1])
    assert stranger.get(shown[0][1]).status_code == 404
