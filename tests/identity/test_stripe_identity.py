"""Stripe Identity (R1): real stripe-python against the local wire-format server.

The person's part (document, selfie) happens at Stripe; here the fake moves the session on
as Stripe would, and signed webhooks or our own refreshes carry the decision home.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from compliance.audit import EventTag
from webapp.extensions import db
from webapp.identity.stripe_identity import decision
from webapp.models import AuditEvent, IdentityCheck, utcnow

from .. import factories
from ..conftest import TEST_PASSWORD
from ..fake_stripe import SESSIONS, WEBHOOK_SECRET, deliver, event

ADULT_DOB = {"day": 12, "month": 3, "year": 1990}


@pytest.fixture
def kyc_app(make_app, fake_stripe):  # type: ignore[no-untyped-def]
    return make_app(
        STRIPE_SECRET_KEY="sk_test_local",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=fake_stripe.url,
        KYC_PROVIDER="stripe_identity",
    )


def _start(client) -> tuple[dict[str, str], dict]:  # type: ignore[no-untyped-def]
    headers = factories.api_signup(client, "ada@example.com")
    res = client.post("/api/v1/identity/sessions", json={}, headers=headers)
    assert res.status_code == 201, res.json
    return headers, res.json


def _session_event(fake, session_id: str, event_id: str | None = None) -> bytes:  # type: ignore[no-untyped-def]
    """The webhook Stripe sends: the session as it is now, never with verified_outputs."""
    session = {**fake.verification_sessions[session_id], "verified_outputs": None}
    return event(f"identity.verification_session.{session['status']}", session, event_id)


def _tags(app, tag: EventTag) -> list[dict]:  # type: ignore[no-untyped-def]
    with app.app_context():
        query = select(AuditEvent).where(AuditEvent.tag == str(tag)).order_by(AuditEvent.id)
        return [e.data for e in db.session.scalars(query)]


def _check(app, check_id: str) -> IdentityCheck:  # type: ignore[no-untyped-def]
    with app.app_context():
        check = db.session.get(IdentityCheck, check_id)
        db.session.expunge(check)
        return check


def _kyc_status(client, headers) -> str:  # type: ignore[no-untyped-def]
    return client.get("/api/v1/me", headers=headers).json["kyc_status"]


def test_start_creates_a_document_and_live_selfie_session(kyc_app, fake_stripe):
    client = kyc_app.test_client()
    _, body = _start(client)
    assert body["url"] == "https://verify.stripe.test/start/test_0001"
    assert body["status"] == "pending"
    sent = fake_stripe.calls("POST", SESSIONS)[-1]
    assert sent["idempotency_key"] == f"identity-{body['id']}"
    assert sent["auth"] == "Bearer sk_test_local"
    form = sent["form"]
    assert form["type"] == "document"
    assert form["options[document][require_matching_selfie]"] == "true"
    assert form["options[document][require_live_capture]"] == "true"
    assert form["metadata[check_id]"] == body["id"]
    assert form["return_url"] == f"http://localhost/dashboard/identity/{body['id']}"
    check = _check(kyc_app, body["id"])
    assert (check.provider, check.provider_ref) == ("stripe_identity", "vs_test_0001")
    assert form["metadata[user_id]"] == check.user_id
    assert _tags(kyc_app, EventTag.KYC_STARTED)[0]["session"] == "vs_test_0001"


def test_verified_webhook_verifies_the_account_once_and_redacts_once(kyc_app, fake_stripe):
    client = kyc_app.test_client()
    headers, body = _start(client)
    fake_stripe.finish("vs_test_0001", "verified", verified_outputs={"dob": ADULT_DOB})
    payload = _session_event(fake_stripe, "vs_test_0001", "evt_verified_1")
    first, again = deliver(client, payload), deliver(client, payload)
    assert (first.json["outcome"], again.json["outcome"]) == ("identity verified", "duplicate")
    assert _kyc_status(client, headers) == "verified"
    check = _check(kyc_app, body["id"])
    assert (check.status, check.reasons, check.is_adult) == ("verified", [], True)
    assert check.decided_at is not None
    retrieved = fake_stripe.calls("GET", f"{SESSIONS}/vs_test_0001")
    assert len(retrieved) == 1 and retrieved[0]["form"] == {
        "expand[0]": "verified_outputs",
        "expand[1]": "last_verification_report",
    }
    assert len(_tags(kyc_app, EventTag.KYC_DECISION)) == 1
    redacts = fake_stripe.calls("POST", f"{SESSIONS}/vs_test_0001/redact")
    assert [r["idempotency_key"] for r in redacts] == ["redact-vs_test_0001"]
    # a decided check is final: refreshing it asks Stripe nothing and redacts nothing more
    res = client.get(f"/api/v1/identity/sessions/{body['id']}", headers=headers)
    assert res.json == {"id": body["id"], "status": "verified", "reasons": []}
    assert len(fake_stripe.calls("GET", f"{SESSIONS}/vs_test_0001")) == 1
    assert len(fake_stripe.calls("POST", f"{SESSIONS}/vs_test_0001/redact")) == 1
    # Stripe confirms the deletion later: a receipt in the audit log
    fake_stripe.finish("vs_test_0001", "verified", redaction={"status": "redacted"})
    redacted = event(
        "identity.verification_session.redacted",
        {**fake_stripe.verification_sessions["vs_test_0001"]},
    )
    assert deliver(client, redacted).json["outcome"] == "identity redacted"
    states = [e["state"] for e in _tags(kyc_app, EventTag.KYC_REDACTED)]
    assert states == ["requested", "redacted"]


def test_a_minor_is_rejected(kyc_app, fake_stripe):
    client = kyc_app.test_client()
    headers, body = _start(client)
    today = utcnow().date()
    dob = {"day": min(today.day, 28), "month": today.month, "year": today.year - 17}
    fake_stripe.finish("vs_test_0001", "verified", verified_outputs={"dob": dob})
    assert deliver(client, _session_event(fake_stripe, "vs_test_0001")).json["outcome"] == (
        "identity rejected"
    )
    check = _check(kyc_app, body["id"])
    assert (check.status, check.reasons, check.is_adult) == ("rejected", ["under_18"], False)
    assert _kyc_status(client, headers) == "rejected"


def test_age_is_counted_on_the_day():
    session = {
        "status": "verified",
        "verified_outputs": {"dob": {"day": 25, "month": 11, "year": 2008}},
    }
    assert decision(session, date(2026, 11, 24)) == ("verified", [], False)
    assert decision(session, date(2026, 11, 25)) == ("verified", [], True)


@pytest.mark.parametrize("code", ["document_expired", "selfie_face_mismatch"])
def test_requires_input_rejects_with_stripes_reason(kyc_app, fake_stripe, code):
    client = kyc_app.test_client()
    headers, body = _start(client)
    fake_stripe.finish(
        "vs_test_0001",
        "requires_input",
        last_error={"code": code, "reason": "Stripe's explanation."},
    )
    assert deliver(client, _session_event(fake_stripe, "vs_test_0001")).status_code == 200
    check = _check(kyc_app, body["id"])
    assert (check.status, check.reasons) == ("rejected", [code])
    assert _kyc_status(client, headers) == "rejected"
    assert len(fake_stripe.calls("POST", f"{SESSIONS}/vs_test_0001/redact")) == 1


def test_bad_signature_is_refused_and_changes_nothing(kyc_app, fake_stripe):
    client = kyc_app.test_client()
    headers, body = _start(client)
    fake_stripe.finish("vs_test_0001", "verified", verified_outputs={"dob": ADULT_DOB})
    forged = deliver(client, _session_event(fake_stripe, "vs_test_0001"), secret="whsec_attacker")
    assert forged.status_code == 400
    assert forged.json == {
        "error": "bad_signature",
        "message": "Webhook signature or timestamp is invalid.",
    }
    assert _kyc_status(client, headers) == "unverified"
    assert _check(kyc_app, body["id"]).status == "pending"
    assert fake_stripe.calls("GET", f"{SESSIONS}/vs_test_0001") == []


def test_api_get_refreshes_from_stripe(kyc_app, fake_stripe):
    client = kyc_app.test_client()
    headers, body = _start(client)
    url = f"/api/v1/identity/sessions/{body['id']}"
    assert client.get(url, headers=headers).json["status"] == "pending"  # nothing submitted
    fake_stripe.finish("vs_test_0001", "processing")
    assert client.get(url, headers=headers).json["status"] == "pending"
    fake_stripe.finish("vs_test_0001", "verified", verified_outputs={"dob": ADULT_DOB})
    assert client.get(url, headers=headers).json == {
        "id": body["id"],
        "status": "verified",
        "reasons": [],
    }
    assert _kyc_status(client, headers) == "verified"
    assert len(fake_stripe.calls("GET", f"{SESSIONS}/vs_test_0001")) == 3
    assert len(_tags(kyc_app, EventTag.KYC_DECISION)) == 1
    other = factories.api_signup(client, "eve@example.com")
    assert client.get(url, headers=other).status_code == 404


def test_missing_date_of_birth_goes_to_a_reviewer(kyc_app, fake_stripe):
    client = kyc_app.test_client()
    headers, body = _start(client)
    fake_stripe.finish("vs_test_0001", "verified", verified_outputs={"dob": None})
    res = client.get(f"/api/v1/identity/sessions/{body['id']}", headers=headers)
    assert res.json["status"] == "needs_review" and res.json["reasons"] == ["dob_missing"]
    assert _kyc_status(client, headers) == "pending"
    assert fake_stripe.calls("POST", f"{SESSIONS}/vs_test_0001/redact") == []


def test_canceled_session_is_rejected_and_a_refused_redaction_is_not_retried(kyc_app, fake_stripe):
    client = kyc_app.test_client()
    headers, body = _start(client)
    fake_stripe.finish("vs_test_0001", "canceled")
    assert deliver(client, _session_event(fake_stripe, "vs_test_0001")).json["outcome"] == (
        "identity rejected"
    )
    client.get(f"/api/v1/identity/sessions/{body['id']}", headers=headers)
    assert _check(kyc_app, body["id"]).reasons == ["canceled"]
    assert len(fake_stripe.calls("POST", f"{SESSIONS}/vs_test_0001/redact")) == 1
    states = [e["state"] for e in _tags(kyc_app, EventTag.KYC_REDACTED)]
    assert states == ["refused: session_invalid_status"]


def test_an_event_for_an_unknown_session_is_ignored(kyc_app):
    session = {
        "id": "vs_elsewhere",
        "object": "identity.verification_session",
        "status": "verified",
    }
    res = deliver(kyc_app.test_client(), event("identity.verification_session.verified", session))
    assert res.json["outcome"] == "ignored: no identity check"


def test_dashboard_sends_the_person_to_stripe_and_shows_the_result(kyc_app, fake_stripe):
    client = kyc_app.test_client()
    client.post(
        "/signup",
        data={"email": "ada@example.com", "password": TEST_PASSWORD, "confirm": TEST_PASSWORD},
    )
    assert b'id="start-kyc"' in client.get("/dashboard").data
    res = client.post("/dashboard/identity")
    assert res.status_code == 302
    assert res.location == "https://verify.stripe.test/start/test_0001"
    back = fake_stripe.calls("POST", SESSIONS)[-1]["form"]["return_url"]
    fake_stripe.finish("vs_test_0001", "verified", verified_outputs={"dob": ADULT_DOB})
    page = client.get(back)
    assert page.status_code == 200 and b'data-status="verified"' in page.data
    assert b'id="start-kyc"' not in client.get("/dashboard").data


def test_dashboard_with_the_dev_provider_shows_the_result_at_once(app):
    client = app.test_client()
    client.post(
        "/signup",
        data={"email": "ada@example.com", "password": TEST_PASSWORD, "confirm": TEST_PASSWORD},
    )
    res = client.post("/dashboard/identity")
    assert res.status_code == 302 and "/dashboard/identity/" in res.location
    assert b'data-status="verified"' in client.get(res.location).data


def _jpeg(rgb) -> bytes:  # type: ignore[no-untyped-def]
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=90)
    return out.getvalue()


def test_the_verified_selfie_is_kept_as_a_template_before_redaction(kyc_app, fake_stripe):
    """Stripe's live selfie (the report's file, through the Files API) becomes the KYC face
    the consent recording and the footage are compared with."""
    import numpy as np

    from pipeline import bundled
    from webapp.identity.self_hosted import selfie_template

    client = kyc_app.test_client()
    _, body = _start(client)
    face = bundled.test_face()
    selfie = fake_stripe.add_selfie("vs_test_0001", _jpeg(face))
    fake_stripe.finish("vs_test_0001", "verified", verified_outputs={"dob": ADULT_DOB})
    assert deliver(client, _session_event(fake_stripe, "vs_test_0001")).json["outcome"] == (
        "identity verified"
    )
    paths = [r["path"] for r in fake_stripe.requests]
    fetched = paths.index(f"/v1/files/{selfie}/contents")
    assert fetched < paths.index(f"{SESSIONS}/vs_test_0001/redact")  # before Stripe deletes it
    with kyc_app.app_context():
        template = selfie_template(db.session.get(IdentityCheck, body["id"]))
        assert np.linalg.norm(template - bundled.face_embedding(face)) < 0.1


def test_another_persons_stripe_check_must_not_show_the_holder(kyc_app, fake_stripe):
    from pipeline import bundled
    from webapp.consent import service
    from webapp.models import User

    client = kyc_app.test_client()
    _, body = _start(client)
    me = _jpeg(bundled.test_face())
    fake_stripe.add_selfie("vs_test_0001", me)
    fake_stripe.finish("vs_test_0001", "verified", verified_outputs={"dob": ADULT_DOB})
    deliver(client, _session_event(fake_stripe, "vs_test_0001", "evt_holder"))
    with kyc_app.app_context():
        owner = db.session.get(User, _check(kyc_app, body["id"]).user_id)
        subject, token = service.create_subject(owner, "Bo", "other")
        subject_id = subject.id
    started = client.post(f"/consent/{token}/identity")  # the holder, alone, on the link
    assert started.status_code == 302
    fake_stripe.add_selfie("vs_test_0002", me)
    fake_stripe.finish("vs_test_0002", "verified", verified_outputs={"dob": ADULT_DOB})
    deliver(client, _session_event(fake_stripe, "vs_test_0002", "evt_other"))
    with kyc_app.app_context():
        check = db.session.scalar(
            select(IdentityCheck).where(IdentityCheck.subject_id == subject_id)
        )
        assert (check.status, check.reasons) == ("rejected", ["same_person_as_holder"])
        assert check.scores["face_holder"] < 0.1
