"""One rate-limit bucket per action, shared by the web form and the API route that do it.

Each decorator below is applied to both views of its action, so a client has one budget
per IP for, say, password guesses, whether it types them in the form or POSTs them to
``/api/v1/auth/tokens``. The IP is the socket peer, or the client named by trusted
proxies (``DHF_TRUSTED_PROXIES``, see ``webapp/security.py``).
"""

from __future__ import annotations

from flask import current_app

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
report = limiter.shared_limit(_report, scope="report", methods=["POST"])  # reports, appeals
