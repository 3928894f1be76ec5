"""The subject's own consent page: notice, statement with passcode, live recording."""

from __future__ import annotations

from flask import Blueprint, render_template

from ..errors import DomainError
from . import notice, service

bp = Blueprint("consent", __name__)


@bp.get("/consent/<token>")
def consent_page(token: str):  # type: ignore[no-untyped-def]
    record = service.record_for(token)
    if record.status in ("verified", "revoked"):
        return render_template("consent/page.html", token=token, record=record, notice=notice)
    try:
        passcode, text, expires = service.issue_passcode(record)
    except DomainError as exc:
        return render_template("error.html", status=exc.status, code=exc.code, message=exc.message)
    return render_template("consent/page.html", token=token, record=record, notice=notice,
                           statement=text, passcode=passcode, expires=expires)  # fmt: skip
