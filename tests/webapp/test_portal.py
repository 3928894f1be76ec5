"""The depicted person's portal: entry by a mailed one-time code, the list of every use of
their likeness, downloads, flags and withdrawal, and nobody else's renders (IDOR)."""

from __future__ import annotations

import io
import re
import uuid
from datetime import timedelta

import pytest

from compliance.audit import EventTag
from webapp.audit import record_event
from webapp.consent import service as consent
from webapp.errors import DomainError
from webapp.extensions import db
from webapp.models import (
    Avatar,
    ConsentRecord,
    Job,
    PortalCode,
    Render,
    Report,
    Subject,
    User,
    utcnow,
)
from webapp.portal import service as portal
from webapp.storage import vault

from .. import factories
from ..smtp_server import smtp_server

VIDEO = b"\x00\x00\x00\x18ftypmp42 not really a video, served as stored"


@pytest.fixture
def mailbox_app(make_app):  # type: ignore[no-untyped-def]
    with smtp_server() as (box, url):
        yield make_app(SMTP_URL=url), box


def person(owner: User, name: str, contact: str | None, relation: str = "other"):  # type: ignore[no-untyped-def]
    """A subject with verified consent, its link token and its consent record."""
    subject, token = consent.create_subject(owner, name, relation, contact)
    record = db.session.query(ConsentRecord).filter_by(subject_id=subject.id).one()
    record.status, subject.status = "verified", "active"
    db.session.commit()
    return subject, token, record


def published(owner: User, avatar, script: str, status: str = "ready", seconds: float = 4.2):  # type: ignore[no-untyped-def]
    """A render row with its stamped file in the vault, as the render job leaves it."""
    blob_id = vault().put(avatar.subject_id, io.BytesIO(VIDEO))[0] if status == "ready" else None
    render = Render(
        owner_id=owner.id,
        avatar_id=avatar.id,
        script=script,
        status=status,
        content_id=uuid.uuid4().hex,
        output_blob_id=blob_id,
    )
    db.session.add(render)
    db.session.flush()
    db.session.add(
        Job(
            owner_id=owner.id,
            kind="render",
            queue="gpu",
            target_id=render.id,
            status="finished",
            result={"duration_s": seconds},
        )
    )
    db.session.commit()
    return render


def code_from(box, address: str) -> str:  # type: ignore[no-untyped-def]
    mail = box.to(address)[-1]
    return re.search(r"code is (\d{8})", mail.get_content()).group(1)


def enter(client, box, token: str, address: str):  # type: ignore[no-untyped-def]
    assert client.post(f"/consent/{token}/portal/code").status_code == 302
    res = client.post(f"/consent/{token}/portal/enter", data={"code": code_from(box, address)})
    assert res.status_code == 302, res.data
    return res


@pytest.fixture
def two_people(mailbox_app):  # type: ignore[no-untyped-def]
    """Ada (two avatars, three renders) for account A; Bob (one render) for account B."""
    app, box = mailbox_app
    with app.app_context():
        owner_a, owner_b = factories.user("a@example.com"), factories.user("b@example.com")
        ada, ada_token, _ = person(owner_a, "Ada Example", "ada.person@example.com")
        bob, bob_token, _ = person(owner_b, "Bob Example", "bob.person@example.com")
        first, second = factories.avatar(owner_a, ada), factories.avatar(owner_a, ada, "Ada 2")
        renders = {
            "ready": published(owner_a, first, "Spring sale starts today."),
            "quarantined": published(owner_a, second, "Buy two, get one.", "quarantined"),
            "taken_down": published(owner_a, second, "Limited offer.", "taken_down"),
            "bob": published(owner_b, factories.avatar(owner_b, bob), "Bob's secret script."),
        }
        for _ in range(2):  # two public verifications resolved to the ready file
            record_event(
                EventTag.VERIFY_REQUEST,
                data={"verdict": "ai_generated_by_us", "content_id": renders["ready"].content_id},
            )
        db.session.commit()
        ids = {k: (r.id, r.content_id) for k, r in renders.items()}
        people = {
            "ada": (ada.id, ada_token),
            "bob": (bob.id, bob_token),
            "owners": (owner_a, owner_b),
        }
        headers = {"a": factories.token_for(owner_a), "b": factories.token_for(owner_b)}
    return app, box, ids, people, headers


def test_the_person_sees_exactly_their_renders_downloads_and_flags_one(two_people):
    app, box, ids, people, headers = two_people
    _, token = people["ada"]
    client = app.test_client()
    page = client.get(f"/consent/{token}")
    assert b"See how your likeness is used" in page.data
    gate = client.get(f"/consent/{token}/portal")
    assert (
        gate.status_code == 200
        and b"a\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2@example.com" in gate.data
    )
    assert b"Spring sale" not in gate.data  # nothing before the code
    enter(client, box, token, "ada.person@example.com")
    home = client.get(f"/consent/{token}/portal").get_data(as_text=True)
    for script in ("Spring sale starts today.", "Buy two, get one.", "Limited offer."):
        assert script in home
    assert "Bob" not in home
    assert "quarantined" in home and "taken down" in home and "4.2 s" in home
    ready_row = home.split(f'data-render="{ids["ready"][0]}"')[1].split("</tr>")[0]
    assert '<td class="lookups">2</td>' in ready_row
    [link] = re.findall(r'href="([^"]+/file\?t=[^"]+)"', home)  # only the ready render
    file = client.get(link.replace("&amp;", "&"))
    assert file.status_code == 200 and file.data == VIDEO

    res = client.post(
        f"/consent/{token}/portal/renders/{ids['ready'][0]}/flag",
        data={"reason": "I never said this."},
    )
    assert res.status_code == 302
    with app.app_context():
        report = db.session.query(Report).one()
        render = db.session.get(Render, ids["ready"][0])
        assert (report.category, report.source, report.priority, report.status) == (
            "not_me",
            "portal",
            portal.FLAG_PRIORITY,
            "open",
        )
        assert (
            report.render_id,
            report.avatar_id,
            report.subject_id,
            report.owner_id,
            report.content_id,
        ) == (render.id, render.avatar_id, people["ada"][0], render.owner_id, render.content_id)
        due = report.due_by.replace(tzinfo=None) - report.created_at.replace(tzinfo=None)
        assert report.reason == "I never said this." and abs(due - timedelta(hours=24)).seconds < 5
        # the person themself says it is not theirs: the avatar is frozen until reviewed
        avatar = db.session.get(Avatar, render.avatar_id)
        assert avatar.frozen_at is not None and avatar.frozen_reason == f"report {report.id}"
    told = [m["Subject"].strip() for m in box.to("ada.person@example.com")]
    assert f"A report about a video of you (ticket {report.id})" in told
    assert f"A report about content {render.content_id} (ticket {report.id})" in [
        m["Subject"].strip() for m in box.to("a@example.com")
    ]
    assert "A report is open" in client.get(f"/consent/{token}/portal").get_data(as_text=True)
    again = client.post(f"/consent/{token}/portal/renders/{ids['ready'][0]}/flag")
    assert again.status_code == 409 and b"already_flagged" in again.data

    listed = client.get(f"/api/v1/subjects/{people['ada'][0]}/renders", headers=headers["a"])
    assert listed.status_code == 200
    uses = {u["id"]: u for u in listed.json["renders"]}
    assert set(uses) == {ids["ready"][0], ids["quarantined"][0], ids["taken_down"][0]}
    assert uses[ids["ready"][0]]["verify_lookups"] == 2 and uses[ids["ready"][0]]["report_open"]
    assert "download_url" in uses[ids["ready"][0]]
    assert "download_url" not in uses[ids["quarantined"][0]]


def test_a_portal_session_never_reaches_another_persons_renders(two_people):
    app, box, ids, people, headers = two_people
    _, ada_token = people["ada"]
    bob_id, bob_token = people["bob"]
    client = app.test_client()
    enter(client, box, ada_token, "ada.person@example.com")
    bob_render = ids["bob"][0]
    with app.app_context():  # even a correctly signed link for Bob's render, under Ada's link
        forged = portal.download_token(bob_render, people["ada"][0])
        for_bob = portal.download_token(bob_render, bob_id)
        ada_link = portal.download_token(ids["ready"][0], people["ada"][0])
    for t in (forged, for_bob):
        res = client.get(f"/consent/{ada_token}/portal/renders/{bob_render}/file?t={t}")
        assert res.status_code == 404
    flag = client.post(f"/consent/{ada_token}/portal/renders/{bob_render}/flag")
    assert flag.status_code == 404
    guessed = client.get(f"/consent/{ada_token}/portal/renders/{uuid.uuid4().hex}/file?t={forged}")
    assert guessed.status_code == 404
    # a link minted for one render does not open another of the same person
    other = client.get(
        f"/consent/{ada_token}/portal/renders/{ids['taken_down'][0]}/file?t={ada_link}"
    )
    assert other.status_code == 403 and b"bad_link" in other.data
    # Ada's portal session does not open Bob's portal (his link is known, not his code)
    bob_portal = client.get(f"/consent/{bob_token}/portal")
    assert bob_portal.status_code == 200 and b"Bob's secret" not in bob_portal.data
    assert client.post(f"/consent/{bob_token}/portal/renders/{bob_render}/flag").status_code == 401
    assert client.post(f"/consent/{bob_token}/portal/withdraw").status_code == 401
    # and the account holders' list is owner-checked
    cross = client.get(f"/api/v1/subjects/{people['ada'][0]}/renders", headers=headers["b"])
    assert cross.status_code == 404 and cross.json["error"] == "not_found"
    with app.app_context():
        assert db.session.query(Report).count() == 0
        assert db.session.get(Subject, bob_id).status == "active"


def test_the_code_is_single_use_expires_and_takes_few_guesses(two_people):
    app, box, _, people, _ = two_people
    _, token = people["ada"]
    first = app.test_client()
    enter(first, box, token, "ada.person@example.com")
    code = code_from(box, "ada.person@example.com")
    replay = app.test_client().post(f"/consent/{token}/portal/enter", data={"code": code})
    assert replay.status_code == 403 and b"code_expired" in replay.data
    with app.app_context():
        record = consent.record_for(token)
        row = portal.send_code(record)
        code = code_from(box, "ada.person@example.com")
        with pytest.raises(DomainError) as late:
            portal.enter(record, code, now=row.expires_at + timedelta(seconds=1))
        assert late.value.code == "code_expired"
        assert db.session.get(PortalCode, row.id).code_mac != code  # only an HMAC is kept
        portal.send_code(record)
        code = code_from(box, "ada.person@example.com")
    guesser = app.test_client()
    for left in (4, 3, 2, 1, 0):
        res = guesser.post(f"/consent/{token}/portal/enter", data={"code": "00000000"})
        assert res.status_code == 403 and f"{left} tries left".encode() in res.data
    locked = guesser.post(f"/consent/{token}/portal/enter", data={"code": code})
    assert locked.status_code == 403 and b"code_locked" in locked.data
    with app.app_context():
        record = consent.record_for(token)
        portal.send_code(record)
        token_for_browser = portal.enter(record, code_from(box, "ada.person@example.com"))
        assert portal.grant(record, token_for_browser).subject_id == record.subject_id
        with pytest.raises(DomainError) as ended:
            portal.grant(record, token_for_browser, now=utcnow() + timedelta(minutes=31))
        assert ended.value.code == "portal_code_required"
        portal.send_code(record)
        with pytest.raises(DomainError) as many:  # five codes an hour per link
            portal.send_code(record)
        assert many.value.status == 429


def test_no_contact_address_no_code_and_a_self_subject_uses_the_account(mailbox_app):
    app, box = mailbox_app
    with app.app_context():
        owner = factories.user("holder@example.com")
        _, other_token, _ = person(owner, "Cleo Example", None)
        _, self_token, _ = person(owner, "Holder Self", None, relation="self")
    client = app.test_client()
    assert b"No e-mail address is on file" in client.get(f"/consent/{other_token}/portal").data
    res = client.post(f"/consent/{other_token}/portal/code")
    assert res.status_code == 409 and b"no_contact" in res.data
    enter(client, box, self_token, "holder@example.com")
    assert b"Nothing has been made" in client.get(f"/consent/{self_token}/portal").data


def test_the_account_holder_sets_the_address_and_withdrawal_from_the_portal(two_people):
    app, box, ids, people, headers = two_people
    ada_id, token = people["ada"]
    res = app.test_client().patch(
        f"/api/v1/subjects/{ada_id}",
        headers=headers["a"],
        json={"contact_email": "Ada.New@Example.com"},
    )
    assert res.status_code == 200 and res.json["contact_email"] == "ada.new@example.com"
    bad = app.test_client().patch(
        f"/api/v1/subjects/{ada_id}", headers=headers["a"], json={"contact_email": "not an address"}
    )
    assert bad.status_code == 422 and bad.json["error"] == "bad_contact"
    client = app.test_client()
    enter(client, box, token, "ada.new@example.com")
    assert client.post(f"/consent/{token}/portal/withdraw").status_code == 302
    home = client.get(f"/consent/{token}/portal").get_data(as_text=True)
    assert "You withdrew your consent" in home and "Spring sale starts today." in home
    assert "/file?t=" not in home  # the files are destroyed with the key
    with app.app_context():
        assert db.session.get(Subject, ada_id).status == "revoked"
