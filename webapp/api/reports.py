"""Public reports (R21) and sanction appeals (R20): thin views over webapp.reports."""

from __future__ import annotations

from flask import jsonify, request

from .. import ratelimits
from ..reports import service
from ..reports.views import attached_file, report_fields
from . import bp
from .auth import api_user, token_required
from .routes import _json_body

REPORT_FIELDS = ("category", "reason", "contact", "link", "content_id")


@bp.post("/reports")
@ratelimits.report
def create_report():
    """Report a video (no account needed): JSON, or multipart with the video as ``file``."""
    if request.mimetype == "multipart/form-data":
        fields, file = report_fields(request.form), attached_file()
    else:
        fields, file = report_fields(_json_body(**dict.fromkeys(REPORT_FIELDS, str))), None
    opened = service.open_report(**fields, file=file)
    return jsonify(service.opened_json(opened)), 201


@bp.get("/reports/status/<token>")
def report_status(token: str):
    """A report's status, by the secret token of its status link."""
    return jsonify(service.status_json(service.by_token(token)))


@bp.post("/appeals")
@token_required
@ratelimits.report
def create_appeal():
    """Appeal your account's sanction; it joins the moderators' report queue."""
    body = _json_body("reason")
    opened = service.open_appeal(api_user(), body["reason"])
    return jsonify(service.opened_json(opened)), 201
