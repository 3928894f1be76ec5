"""One rate-limit bucket per action, shared by the web form and the API route that do it.

Each decorator below is applied to both views of its action, so a client has one budget
per IP for, say, password guesses, whether it types them in the form or POSTs them to
``/api/v1/auth/tokens``. The IP is the socket peer, or the client named by trusted
proxies (``DHF_TRUSTED_PROXIES``, see ``webapp/security.py``).
"""

from __future__ import annotations

import hashlib

from flask import current_app, request
from flask_limiter.util import get_remote_address

from .extensions import limiter


def _auth() -> str:
    return str(current_app.config["RATELIMIT_AUTH"])


def _reset() -> str:
    return str(current_app.config["RATELIMIT_PASSWORD_RESET"])


def _report() -> str:
    return str(current_app.config["RATELIMIT_REPORT"])


login = limiter.shared_limit(_auth, scope="login", methods=["POST"])
signup = limiter.shared_limit(_auth, scope="signup", methods=["POST"])
password_change = limiter.shared_limit(_auth, scope="password-change", methods=["POST"])
reset_request = limiter.shared_limit(_reset, scope="password-reset", methods=["POST"])
reset_confirm = limiter.shared_limit(_auth, scope="password-reset-confirm", methods=["POST"])


def _qa_ip() -> str:
    return str(current_app.config["QA_RATELIMIT_IP"])


def _qa_conversation() -> str:
    return str(current_app.config["QA_RATELIMIT_CONVERSATION"])


def _conversation_key() -> str:
    """A Q&A conversation's bucket: its token (``X-Conversation``), else the client IP."""
    token = request.headers.get("X-Conversation", "")
    if not token:
        return get_remote_address()
    return "conversation:" + hashlib.sha256(token.encode()).hexdigest()[:32]


# Q&A visitors (issue 18): conversations and questions per IP, questions per conversation
qa_visitor = limiter.shared_limit(_qa_ip, scope="qa-visitor", methods=["POST"])
qa_conversation = limiter.shared_limit(
    _qa_conversation, scope="qa-conversation", key_func=_conversation_key, methods=["POST"]
)
report = limiter.shared_limit(_report, scope="report", methods=["POST"])  # reports, appeals


def _live_comments() -> str:
    return str(current_app.config["LIVE_RATELIMIT_COMMENTS"])


def _live_watch() -> str:
    return str(current_app.config["LIVE_RATELIMIT_WATCH"])


def _room_key() -> str:
    """A live room's ingest bucket: the room id in the path (one platform webhook may
    relay many viewers' comments from one address)."""
    return "live-room:" + str((request.view_args or {}).get("room_id", ""))


# live shows (issue 19): platform comment ingest per room, watch-page questions per IP
live_comments = limiter.shared_limit(
    _live_comments, scope="live-comments", key_func=_room_key, methods=["POST"]
)
live_watch = limiter.shared_limit(_live_watch, scope="live-watch", methods=["POST"])
