"""Web sign-up, log-in and log-out (flask-login sessions, CSRF-protected forms)."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from . import views  # noqa: E402,F401
