"""JSON API under /api/v1 (see ../shared/API.md). Bearer-token auth, no cookies, no CSRF."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from . import (  # noqa: E402,F401
    account,
    billing,
    consent,
    live,
    openapi,
    qa,
    reports,
    routes,
    studio,
    verify,
    voice,
)
