"""Public pages anyone may use without an account: file verification."""

from flask import Blueprint

bp = Blueprint("public", __name__)

from . import views  # noqa: E402,F401
