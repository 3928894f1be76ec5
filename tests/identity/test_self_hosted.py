"""The self-hosted identity provider on real photos: the bundled astronaut portrait and a
frame of the GRID speaker (another person), through the pages a browser uses."""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import pytest
from PIL import Image
from skimage import data

from compliance import media
from pipeline import bundled
from webapp import identity
from webapp.extensions import db
from webapp.models import AuditEvent, IdentityCheck, Subject, Upload, User
from webapp.storage import vault

from .. import factories
from ..browser import conftest as browser
from ..conftest import SHARED_DATA
from ..webapp import test_consent_api as consent_api

pytestmark = pytest.mark.slow
# the consent tests' real footage of the GRID speaker, with their seeded challenge
face_video, seeded = consent_api.face_video, consent_api.seeded
# and the browser tests' live server and headless Chromium
live_server, live_config, open_page, chromium_path = (
    browser.live_server,
    browser.live_config,
    browser.open_page,
    browser.chromium_path,
)
ADULT = date(1990, 5, 17)


def jpeg(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    """ID = the astronaut; selfie = the astronaut cropped and mirrored; another person's
    selfie = a frame of the GRID speaker; no face = the coffee cup."""
    clip = SHARED_DATA / "grid_s1" / "train" / "bbal7s.mpg"
    if not clip.exists():
        pytest.skip(f"shared data missing: {clip}")
    astronaut = bundled.test_face()
    return {
        "astronaut": jpeg(astronaut),
        "selfie": jpeg(astronaut[20:400, 60:420][:, ::-1]),
        "grid": jpeg(next(media.frames(clip))),
        "coffee": jpeg(data.coffee()),
    }


@pytest.fixture
def kyc_app(make_app):  # type: ignore[no-untyped-def]
    return make_app(KYC_PROVIDER="self_hosted")


def start_check(client, email: str = "ada@example.com"):  # type: ignore[no-untyped-def]
    """Sign up and start a check over the API: check id, its page's path, API headers."""
    headers = factories.api_signup(client, email)
    res = client.post("/api/v1/identity/sessions", json={}, headers=headers)
    assert res.status_code == 201 and res.json["status"] == "pending", res.json
    return res.json["id"], res.json["url"].split("/", 3)[-1], headers


def submit(client, path: str, document: bytes, selfie: bytes, born: date = ADULT):  # type: ignore[no-untyped-def]
    form = {
        "document": (io.BytesIO(document), "id.jpg"),
        "selfie": (io.BytesIO(selfie), "selfie.jpg"),
        "date_of_birth": born.isoformat(),
    }
    return client.post(
        f"/{path}", data=form, content_type="multipart/form-data", follow_redirects=True
    )


def check_row(app, check_id: str) -> IdentityCheck:  # type: ignore[no-untyped-def]
    with app.app_context():
        check = db.session.get(IdentityCheck, check_id)
        db.session.expunge(check)
        return check


def test_same_face_waits_for_a_reviewer_with_images_encrypted(kyc_app, photos):
    client = kyc_app.test_client()
    check_id, path, headers = start_check(client)
    page = submit(client, path, photos["astronaut"], photos["selfie"])
    assert page.status_code == 200
    assert "Thank you: a reviewer will check your photos" in page.text
    check = check_row(kyc_app, check_id)
    assert (check.status, check.reasons, check.is_adult) == ("needs_review", [], True)
    assert check.scores["faces_document"] == check.scores["faces_selfie"] == 1
    assert check.scores["face_distance"] < 0.45 and check.date_of_birth == ADULT
    with kyc_app.app_context():
        assert db.session.get(User, check.user_id).kyc_status == "pending"
        images = db.session.query(Upload).filter_by(identity_check_id=check_id).all()
        assert {u.kind for u in images} == {"kyc_image"} and len(images) == 2
        for upload in images:  # ciphertext on disk, the original photo out of the vault
            sent = photos["astronaut"] if upload.info["role"] == "document" else photos["selfie"]
            assert vault().read(check.user_id, upload.blob_id) == sent
            with vault().store.get(vault().blob_name(check.user_id, upload.blob_id)) as fh:
                assert sent[:2000] not in fh.read()
        from webapp.identity.self_hosted import selfie_template

        assert selfie_template(db.session.get(IdentityCheck, check_id)).shape == (128,)
    session = client.get(f"/api/v1/identity/sessions/{check_id}", headers=headers).json
    assert session == {"id": check_id, "status": "needs_review", "reasons": []}


def test_another_persons_selfie_is_rejected_as_face_mismatch(kyc_app, photos):
    client = kyc_app.test_client()
    check_id, path, _ = start_check(client)
    page = submit(client, path, photos["astronaut"], photos["grid"])
    assert "Not accepted. The selfie does not match the portrait on the ID document." in page.text
    check = check_row(kyc_app, check_id)
    assert (check.status, check.reasons) == ("rejected", ["face_mismatch"])
    assert check.scores["face_distance"] > 0.6 and check.face_blob_id is None
    with kyc_app.app_context():
        assert db.session.get(User, check.user_id).kyc_status == "rejected"


def test_thresholds_come_from_the_consent_configuration(make_app, photos):
    """Astronaut vs mirrored astronaut is about 0.2 apart: with the accept line moved
    below that, the same pair is flagged borderline for the reviewer, not rejected."""
    client = make_app(KYC_PROVIDER="self_hosted", CONSENT_FACE_ACCEPT=0.1).test_client()
    check_id, path, _ = start_check(client)
    submit(client, path, photos["astronaut"], photos["selfie"])
    check = check_row(client.application, check_id)
    assert (check.status, check.reasons) == ("needs_review", ["face_borderline"])


@pytest.mark.parametrize("role", ["document", "selfie"])
def test_a_photo_without_a_face_is_rejected(kyc_app, photos, role):
    client = kyc_app.test_client()
    check_id, path, _ = start_check(client)
    images = {"document": photos["astronaut"], "selfie": photos["selfie"], role: photos["coffee"]}
    submit(client, path, images["document"], images["selfie"])
    check = check_row(kyc_app, check_id)
    assert (check.status, check.reasons) == ("rejected", [f"no_face_{role}"])


def test_under_18_is_rejected(kyc_app, photos):
    client = kyc_app.test_client()
    check_id, path, _ = start_check(client)
    today = date.today()
    page = submit(
        client,
        path,
        photos["astronaut"],
        photos["selfie"],
        born=today.replace(year=today.year - 17),
    )
    assert "You must be 18 or older to use this service." in page.text
    check = check_row(kyc_app, check_id)
    assert (check.status, check.reasons, check.is_adult) == ("rejected", ["under_18"], False)


def test_unreadable_image_and_second_submission(kyc_app, photos):
    client = kyc_app.test_client()
    check_id, path, _ = start_check(client)
    res = submit(client, path, photos["astronaut"], b"not an image")
    assert res.status_code == 422
    assert "The selfie could not be read: send a JPEG, PNG or WebP photo." in res.text
    assert check_row(kyc_app, check_id).status == "pending"
    submit(client, path, photos["astronaut"], photos["selfie"])
    again = submit(client, path, photos["astronaut"], photos["grid"])  # the link is spent
    assert 'id="kyc-status">needs_review' in again.text
    assert check_row(kyc_app, check_id).status == "needs_review"
    assert client.get("/identity/check/not-a-token").status_code == 404


def test_submissions_are_rate_limited(make_app, photos):
    client = make_app(KYC_PROVIDER="self_hosted", RATELIMIT_KYC="1 per hour").test_client()
    _, path, _ = start_check(client)
    assert submit(client, path, photos["astronaut"], b"x").status_code == 422
    assert submit(client, path, photos["astronaut"], photos["selfie"]).status_code == 429


def test_another_person_does_their_own_check_through_the_consent_link(
    kyc_app, photos, face_video, tmp_path
):
    """No account login: the consent link leads to the subject's own KYC; after approval the
    consent video is compared with the KYC selfie (the astronaut), so the GRID face fails."""
    owner = kyc_app.test_client()
    headers = factories.api_signup(owner, "owner@example.com")
    subject = owner.post(
        "/api/v1/subjects", json={"display_name": "Bo", "relation": "other"}, headers=headers
    ).json
    token = subject["consent_token"]
    person = kyc_app.test_client()  # the depicted person's own browser
    assert 'id="verify-identity"' in person.get(f"/consent/{token}").text
    refused = person.get(f"/api/v1/consent/{token}")
    assert refused.status_code == 403 and refused.json["error"] == "kyc_required"
    started = person.post(f"/consent/{token}/identity")
    assert started.status_code == 302 and "/identity/check/" in started.location
    page = submit(person, started.location.split("/", 3)[-1], photos["astronaut"], photos["selfie"])
    assert '<p id="back">Then open your consent link again' in page.text
    cookie = person.get_cookie("session").value  # the link's token never sits in a cookie
    assert token not in str(kyc_app.session_interface.get_signing_serializer(kyc_app).loads(cookie))
    assert "Your identity check is with a reviewer." in person.get(f"/consent/{token}").text
    with kyc_app.app_context():
        check = db.session.query(IdentityCheck).filter_by(subject_id=subject["id"]).one()
        assert check.status == "needs_review"
        assert db.session.get(User, check.user_id).kyc_status == "unverified"  # owner untouched
        assert vault().has_key(subject["id"])  # images under the subject's own key
        from webapp.admin import service as admin

        admin.review(check.id, factories.user("admin@example.com"), True, "document matches")
        assert db.session.get(Subject, subject["id"]).status == "pending"
    consent = person.get(f"/api/v1/consent/{token}").json
    recording = factories.consent_recording(face_video, tmp_path, consent)
    res = person.post(
        f"/api/v1/consent/{token}/recording", **factories.multipart("video", recording)
    )
    assert res.json == {"status": "rejected", "reasons": ["face_mismatch_kyc"]}


@pytest.mark.browser
def test_browser_takes_a_live_selfie_with_the_camera(live_server, open_page, photos, tmp_path):
    """Real Chromium, CSRF on: the fake camera plays the GRID speaker, the page turns a
    frame into a JPEG for the form; the document is a frame of another clip of theirs."""
    app, base = live_server
    clip = SHARED_DATA / "grid_s1" / "heldout" / "bbil3s.mpg"
    y4m = tmp_path / "camera.y4m"
    media.ffmpeg(["-i", str(clip), "-pix_fmt", "yuv420p", "-an", str(y4m)])
    (tmp_path / "id.jpg").write_bytes(photos["grid"])
    app.config["KYC_PROVIDER"] = "self_hosted"
    with app.test_request_context():
        started = identity.start(factories.user("ada@example.com"))
        check_id = started.check.id
    page = open_page(
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
    )
    page.goto(started.url.replace("http://localhost", base))
    page.set_input_files("#document", str(tmp_path / "id.jpg"))
    page.click("#camera-on")
    _until(page, "document.getElementById('camera').videoWidth > 0")
    page.wait_for_timeout(500)
    page.click("#take")
    _until(page, "document.getElementById('selfie').files.length === 1")
    page.fill("#date_of_birth", "1990-05-17")
    page.click("#send")
    page.wait_for_selector("#kyc-status")
    assert page.inner_text("#kyc-status") == "needs_review", page.inner_text("main")
    assert check_row(app, check_id).scores["face_distance"] < 0.45


def _until(page, expression: str, seconds: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    """Poll ``expression`` from the test side: the page's CSP forbids the eval that
    ``wait_for_function`` needs (a DevTools evaluation is not the page's own eval)."""
    for _ in range(int(seconds * 10)):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for {expression}")


def test_the_holder_cannot_pass_another_persons_check_with_their_own_face(kyc_app, photos):
    """The 'other person' path proves it is another person: the holder's own verified
    selfie (the GRID speaker) against the selfie sent through the other person's link."""
    from webapp.admin import service as admin

    owner = kyc_app.test_client()
    check_id, path, headers = start_check(owner)
    submit(owner, path, photos["grid"], photos["grid"])
    with kyc_app.app_context():
        admin.review(check_id, factories.user("admin@example.com"), True, "document matches")
    subject = owner.post(
        "/api/v1/subjects", json={"display_name": "Bo", "relation": "other"}, headers=headers
    ).json
    started = owner.post(f"/consent/{subject['consent_token']}/identity")  # the holder, alone
    page = submit(owner, started.location.split("/", 3)[-1], photos["grid"], photos["grid"])
    assert "the person to be depicted must verify their own identity" in page.text
    with kyc_app.app_context():
        check = db.session.query(IdentityCheck).filter_by(subject_id=subject["id"]).one()
        assert (check.status, check.reasons) == ("rejected", ["same_person_as_holder"])
        event = [
            e
            for e in db.session.query(AuditEvent).filter_by(tag="kyc:decision")
            if e.data["check"] == check.id
        ][0]
        assert (
            event.data["scores"]["face_holder"] < 0.45 and "face_distance" in event.data["scores"]
        )
