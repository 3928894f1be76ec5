"""``dhf admin``: administrator accounts."""

from __future__ import annotations

import click

from ..extensions import db
from . import _app_context, main


@main.group("admin")
def admin_group() -> None:
    """Administrator accounts."""


@admin_group.command("grant")
@click.argument("email")
def admin_grant(email: str) -> None:
    """Make the account EMAIL an administrator (KYC review, protected gallery)."""
    from sqlalchemy import func, select

    from compliance.audit import EventTag

    from ..audit import record_event
    from ..models import User

    with _app_context():
        user = db.session.scalar(select(User).where(func.lower(User.email) == email.lower()))
        if user is None:
            raise click.ClickException(f"no account with the email {email}: sign up first")
        user.is_admin = True
        record_event(EventTag.ADMIN_ACTION, data={"action": "admin_grant", "user": user.id})
        db.session.commit()
    click.echo(f"{email} is now an administrator")
