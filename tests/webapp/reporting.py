"""Shared setup of the report and moderation tests: a published render of a consenting
subject whose file is the session's stamped clip (stamping it again would be slow)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from webapp.billing import ledger
from webapp.extensions import db
from webapp.models import Order, Render, User
from webapp.registry import register
from webapp.storage import vault

from .. import factories


def published_render(make_app, stamped_media, *, webhook: bool = False, **config: Any):  # type: ignore[no-untyped-def]
    """An app that knows the stamped clip as a ready render; returns (app, ids)."""
    app = make_app(
        SIGNING_DIR=str(stamped_media.settings.signing_dir),
        WATERMARK_KEYS=stamped_media.watermark_keys,
        AIGC_PRODUCER="DHFTEST",
        **config,
    )
    record = stamped_media.record
    with app.app_context():
        owner = factories.user()
        subject, _ = factories.consented_subject(owner)
        avatar = factories.avatar(owner, subject)
        avatar.status = "ready"
        if webhook:  # the address is never called: deliveries wait in the queue
            owner.webhook_url, owner.webhook_secret = "https://hooks.example/dhf", "whsec_test"
        with open(stamped_media.stamped, "rb") as fh:
            blob_id = vault().put(subject.id, fh)[0]
        render = Render(
            owner_id=owner.id,
            avatar_id=avatar.id,
            script="Hello there.",
            status="ready",
            content_id=record.content_id,
            output_blob_id=blob_id,
        )
        db.session.add(render)
        db.session.flush()
        register(
            record,
            owner_id=owner.id,
            avatar_id=avatar.id,
            subject_id=subject.id,
            render_id=render.id,
        )
        db.session.commit()
        ids = {
            "owner_id": owner.id,
            "email": owner.email,
            "subject_id": subject.id,
            "avatar_id": avatar.id,
            "render_id": render.id,
            "content_id": record.content_id,
            "blob_id": blob_id,
        }
    return app, ids


def grant_minutes(owner: User, minutes: int) -> None:
    """Render credits from a paid order, through the ledger."""
    order = Order(
        owner_id=owner.id,
        item="render_credits",
        quantity=minutes,
        amount_cents=100 * minutes,
        status="paid",
    )
    db.session.add(order)
    db.session.flush()
    ledger.grant(order)
    db.session.commit()


def admin() -> SimpleNamespace:
    """A moderator; its id and email stay usable outside the app context."""
    user = factories.user()
    user.is_admin = True
    db.session.commit()
    return SimpleNamespace(id=user.id, email=user.email)
