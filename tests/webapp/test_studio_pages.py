"""The studio pages: create an avatar, follow the steps, see refusals as messages."""

from __future__ import annotations

import re

from webapp.extensions import db
from webapp.models import Avatar, ConsentRecord

from .. import factories
from ..conftest import TEST_PASSWORD


def _login(app, client):  # type: ignore[no-untyped-def]
    with app.app_context():
        email = factories.user().email
    res = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert res.status_code == 302
    return email


def test_new_avatar_then_steps_with_the_consent_link(app, client):
    _login(app, client)
    page = client.post(
        "/studio/new",
        data={
            "relation": "other",
            "person": "Bea Example",
            "name": "Host",
            "style": "real2d",
            "framing": "half",
        },
        follow_redirects=True,
    )
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    link = re.search(r'id="consent-link" value="([^"]+)"', html)
    assert link and "/consent/" in link.group(1)
    with app.app_context():
        avatar = db.session.query(Avatar).one()
        token = link.group(1).rsplit("/", 1)[1]
        from webapp.consent.service import record_for

        assert record_for(token).subject_id == avatar.subject_id
    assert 'data-step="identity"' in html and "step active" in html  # the first open step
    status = client.get(f"/studio/avatars/{avatar.id}/status.json").json
    assert status["steps"]["consent"] == {"state": "todo", "detail": "pending"}
    assert status["steps"]["voice"]["detail"].startswith("0 / ")


def test_refusals_come_back_as_messages(app, client):
    _login(app, client)
    res = client.post("/studio/new", data={"relation": "self", "person": " ", "name": "x"})
    assert res.status_code == 422 and "display name" in res.get_data(as_text=True)
    client.post("/studio/new", data={"relation": "self", "person": "Ada", "name": "Host"})
    with app.app_context():
        avatar_id = db.session.query(Avatar).one().id
    page = client.post(f"/studio/avatars/{avatar_id}/train", follow_redirects=True)
    assert "Verify your identity first" in page.get_data(as_text=True)
    page = client.post(f"/studio/avatars/{avatar_id}/video", follow_redirects=True)
    assert "Attach the recording" in page.get_data(as_text=True)


def test_other_peoples_avatars_are_not_found(app, client):
    with app.app_context():
        owner = factories.user()
        avatar_id = factories.avatar(owner).id
        assert db.session.query(ConsentRecord).count() == 0
    _login(app, client)
    assert client.get(f"/studio/avatars/{avatar_id}").status_code == 404
    assert client.get(f"/studio/avatars/{avatar_id}/status.json").status_code == 404
