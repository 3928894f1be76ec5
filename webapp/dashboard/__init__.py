"""The signed-in home: the user's avatars and jobs with live progress."""

from flask import Blueprint

bp = Blueprint("dashboard", __name__)

from . import views  # noqa: E402,F401
