"""Voice samples: the prompt list, one validated take per prompt, and the recording page.

``service`` is shared by the JSON API (``webapp/api/voice.py``) and the page (``views``).
"""

from flask import Blueprint

bp = Blueprint("voice", __name__)

from . import views  # noqa: E402,F401
