"""Self-hosted KYC (R1, R6): a photo of an ID document, a live selfie, the date of birth.

The person opens the check's own link; its token is the key, so no account login is
needed and a subject who is another person reaches it from their consent link. The
server wants exactly one face on each image (dlib), compares the two with the consent
face thresholds (``CONSENT_FACE_*``) and works out the age. A clear failure is rejected
at once with its own reason; everything else waits for a person in the reviewer queue
(``/admin/identity``): nobody is verified by a machine alone.

Both images are stored encrypted in the vault under the subject's key (the account
holder's own check: the user's key). The selfie's 128-d face template is kept too,
encrypted beside them, so the consent check can compare the consent video with it.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import warnings
from dataclasses import dataclass
from datetime import date

import numpy as np
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from PIL import Image, ImageOps
from sqlalchemy import select
from wtforms import DateField
from wtforms.validators import DataRequired

from compliance.audit import EventTag
from pipeline import bundled

from ..audit import record_event
from ..consent import binding
from ..errors import Conflict, DomainError, InvalidInput, NotFound
from ..extensions import db, limiter
from ..models import IdentityCheck, KycStatus, Subject, Upload, User, utcnow
from ..storage import store, vault
from . import Started, decide, register

FACE_SCORE = 0.3  # dlib HOG detector score a face needs (the astronaut's glove scores 0.12)
MAX_SIDE = 1280  # images are scaled down to this first: dlib's time grows with the area
MAX_BYTES = 20 * 1024 * 1024  # largest image accepted
ADULT = 18
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
TEMPLATE_DTYPE = "<f8"  # the selfie face template in the vault: 128 little-endian float64

REASON_TEXT = {
    "no_face_document": "We found no face on the ID document photo: photograph the page "
    "with your portrait, flat and in good light.",
    "no_face_selfie": "We found no face in the selfie: face the camera in good light.",
    "multiple_faces_document": "The document photo shows more than one face: photograph "
    "only your own ID document.",
    "multiple_faces_selfie": "The selfie shows more than one face: take it on your own.",
    "face_mismatch": "The selfie does not match the portrait on the ID document.",
    "under_18": "You must be 18 or older to use this service.",
    "same_person_as_holder": "This selfie shows the account holder: the person to be depicted "
    "must verify their own identity.",
}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass(frozen=True)
class FaceScan:
    count: int  # faces found with at least FACE_SCORE
    template: np.ndarray | None  # (128,) of the largest of them


def read_image(data: bytes, what: str) -> tuple[np.ndarray, str]:
    """Decode a JPEG, PNG or WebP photo (upright by its EXIF) to RGB, at most MAX_SIDE."""
    unreadable = InvalidInput(
        f"The {what} could not be read: send a JPEG, PNG or WebP photo.", code="bad_image"
    )
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"The {what} is larger than {MAX_BYTES // 2**20} MB.", code="too_large")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in FORMATS:
                    raise unreadable
                upright = ImageOps.exif_transpose(img).convert("RGB")
                upright.thumbnail((MAX_SIDE, MAX_SIDE))
                return np.asarray(upright), img.format
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise unreadable from None


def scan_face(rgb: np.ndarray) -> FaceScan:
    """How many faces dlib finds and the identity template of the largest."""
    detector, predictor, encoder = bundled.load_dlib_face()
    rects, scores, _ = detector.run(np.ascontiguousarray(rgb), 1, 0.0)
    faces = [r for r, s in zip(rects, scores, strict=True) if s >= FACE_SCORE]
    if not faces:
        return FaceScan(0, None)
    largest = max(faces, key=lambda r: r.width() * r.height())
    template = encoder.compute_face_descriptor(rgb, predictor(rgb, largest))
    return FaceScan(len(faces), np.array(template))


def one_face(rgb: np.ndarray, what: str) -> np.ndarray:
    """The template of the single face on ``rgb``; InvalidInput naming ``what`` otherwise."""
    scan = scan_face(rgb)
    if scan.count != 1 or scan.template is None:
        problem = "no face" if scan.count == 0 else f"{scan.count} faces"
        raise InvalidInput(
            f"We found {problem} on the {what}: send a photo of one face.", code="no_single_face"
        )
    return scan.template


def _face_reasons(role: str, scan: FaceScan) -> list[str]:
    if scan.count == 0:
        return [f"no_face_{role}"]
    return [f"multiple_faces_{role}"] if scan.count > 1 else []


def _store_image(check: IdentityCheck, role: str, data: bytes, fmt: str) -> None:
    blob_id, size, sha = store(check.key_owner, io.BytesIO(data))
    db.session.add(
        Upload(
            owner_id=check.user_id,
            subject_id=check.subject_id,
            identity_check_id=check.id,
            kind="kyc_image",
            blob_id=blob_id,
            filename=f"{role}.{fmt.lower()}",
            size=size,
            sha256=sha,
            info={"role": role, "format": fmt},
        )
    )


def keep_template(check: IdentityCheck, template: np.ndarray) -> None:
    raw = io.BytesIO(template.astype(TEMPLATE_DTYPE).tobytes())
    check.face_blob_id, _ = vault().put(check.key_owner, raw)


def selfie_template(check: IdentityCheck) -> np.ndarray | None:
    """The selfie's face template of a check (self-hosted, or Stripe Identity's report)."""
    if not check.face_blob_id:
        return None
    return np.frombuffer(vault().read(check.key_owner, check.face_blob_id), TEMPLATE_DTYPE)


def submit(check: IdentityCheck, document: bytes, selfie: bytes, born: date) -> IdentityCheck:
    """Store both images, check faces and age, then reject or queue for a reviewer."""
    if check.status != KycStatus.PENDING:
        raise Conflict(
            "This identity check was already submitted: start a new one.", code="already_submitted"
        )
    age = age_on(born, utcnow().date())
    if born > utcnow().date() or age > 130:
        raise InvalidInput("Enter your real date of birth.", code="bad_date_of_birth")
    images = {
        "document": read_image(document, "ID document photo"),
        "selfie": read_image(selfie, "selfie"),
    }
    for role, data in (("document", document), ("selfie", selfie)):
        _store_image(check, role, data, images[role][1])
    doc, me = scan_face(images["document"][0]), scan_face(images["selfie"][0])
    reasons = _face_reasons("document", doc) + _face_reasons("selfie", me)
    scores: dict[str, float] = {"faces_document": doc.count, "faces_selfie": me.count}
    flags = []  # shown to the reviewer, no reason to reject
    if doc.template is not None and me.template is not None:
        distance = float(np.linalg.norm(doc.template - me.template))
        scores["face_distance"] = round(distance, 4)
        if distance > float(current_app.config["CONSENT_FACE_REJECT"]):
            reasons.append("face_mismatch")
        elif distance > float(current_app.config["CONSENT_FACE_ACCEPT"]):
            flags.append("face_borderline")
    if check.subject_id and me.template is not None:  # 'other': not the account holder (R2)
        reasons += binding.holder_reasons(check, me.template, scores)
    if age < ADULT:
        reasons.append("under_18")
    check.date_of_birth, check.scores = born, scores
    if not reasons and me.template is not None:  # one face on each: the template stays
        keep_template(check, me.template)
    status = KycStatus.REJECTED if reasons else KycStatus.NEEDS_REVIEW
    decide(check, status, reasons or flags, is_adult=age >= ADULT)
    db.session.commit()
    return check


def outcome(check: IdentityCheck) -> str:
    """What the person is told after submitting."""
    if check.status == KycStatus.REJECTED:
        said = " ".join(REASON_TEXT.get(r, r) for r in check.reasons)
        return f"Not accepted. {said} Start a new check to try again."
    if check.status == KycStatus.VERIFIED:
        return "Your identity is verified."
    return "Thank you: a reviewer will check your photos, usually within one working day."


class SelfHostedProvider:
    name = "self_hosted"

    def start(self, user: User, subject: Subject | None) -> Started:
        token = secrets.token_urlsafe(32)
        check = IdentityCheck(
            user_id=user.id,
            subject_id=subject.id if subject else None,
            provider=self.name,
            provider_ref=_digest(token),
        )
        db.session.add(check)
        db.session.flush()
        record_event(
            EventTag.KYC_STARTED,
            actor_id=user.id,
            data={"check": check.id, "provider": self.name, "subject": check.subject_id},
        )
        db.session.commit()
        return Started(check, url_for("consent.self_hosted.capture", token=token, _external=True))

    def refresh(self, check: IdentityCheck) -> IdentityCheck:
        return check  # decisions happen here: nothing to fetch


register(SelfHostedProvider())


# -- pages: reached by the check's link, with or without an account login -----------------
pages = Blueprint("self_hosted", __name__)


def _kyc_limit() -> str:
    return str(current_app.config["RATELIMIT_KYC"])


class CaptureForm(FlaskForm):
    document = FileField(
        "Photo of your ID document (the page with your portrait)",
        validators=[FileRequired("Add a photo of your ID document.")],
    )
    selfie = FileField("Selfie", validators=[FileRequired("Take a selfie (or choose a photo).")])
    date_of_birth = DateField(
        "Date of birth", validators=[DataRequired("Enter your date of birth.")]
    )


def check_for(token: str) -> IdentityCheck:
    query = select(IdentityCheck).where(
        IdentityCheck.provider_ref == _digest(token), IdentityCheck.provider == "self_hosted"
    )
    check = db.session.scalar(query)
    if check is None:
        raise NotFound(
            "This identity check link is not valid: start a new check.", code="bad_identity_link"
        )
    return check


@pages.route("/identity/check/<token>", methods=["GET", "POST"])
@limiter.limit(_kyc_limit, methods=["POST"])
def capture(token: str):
    check = check_for(token)
    form = CaptureForm()
    if check.status == KycStatus.PENDING and form.validate_on_submit():
        try:
            submit(
                check,
                form.document.data.read(MAX_BYTES + 1),
                form.selfie.data.read(MAX_BYTES + 1),
                form.date_of_birth.data,
            )
        except DomainError as exc:
            form.form_errors.append(exc.message)
        else:
            flash(outcome(check), "ok" if check.status == KycStatus.NEEDS_REVIEW else "error")
            return redirect(url_for(".capture", token=token))
    status = 422 if form.errors or form.form_errors else 200
    back = check.id in session.get("identity_return", [])  # came from a consent link
    return render_template("identity/self_hosted.html", form=form, check=check, back=back), status
