"""Development KYC: approves at once, only outside production (TEST MODE banner)."""

from __future__ import annotations

from flask import current_app

from ..errors import Forbidden
from ..extensions import db
from ..models import IdentityCheck, Subject, User
from . import Started, decide, register


class DevProvider:
    name = "dev"

    def start(self, user: User, subject: Subject | None) -> Started:
        if current_app.config["ENV"] == "production":
            raise Forbidden(
                "The development identity provider is refused in production.",
                code="provider_unavailable",
            )
        check = IdentityCheck(
            user_id=user.id, subject_id=subject.id if subject else None, provider=self.name
        )
        db.session.add(check)
        db.session.flush()
        decide(check, "verified", ["test_mode"], is_adult=True)
        db.session.commit()
        return Started(check, None)

    def refresh(self, check: IdentityCheck) -> IdentityCheck:
        return check


register(DevProvider())
