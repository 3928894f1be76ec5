"""Domain errors with messages that tell the user what to do, mapped to HTTP in one place.

Under ``/api`` every error is the JSON envelope ``{"error": code, "message": text}``;
elsewhere an HTML page.
"""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from compliance.media import MediaLimitExceeded


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class InvalidInput(DomainError):
    status, code = 422, "invalid_input"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class NotFound(DomainError):
    status, code = 404, "not_found"


class Conflict(DomainError):
    status, code = 409, "conflict"


class Busy(DomainError):
    """The server is at capacity for this kind of request: try again after ``retry_after``
    seconds (sent as ``Retry-After``)."""

    status, code = 503, "busy"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


# Codes and default messages for framework errors (werkzeug, flask-limiter, flask-wtf).
_HTTP_CODES = {
    400: ("bad_request", "The request was malformed."),
    401: ("unauthorized", "Sign in, or send 'Authorization: Bearer <token>'."),
    403: ("forbidden", "You are not allowed to do this."),
    404: ("not_found", "Nothing here: check the address or the id."),
    405: ("method_not_allowed", "This address does not accept that method."),
    413: ("too_large", "The upload is larger than this server accepts."),
    429: ("rate_limited", "Too many requests: wait a minute and try again."),
}


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _respond(status: int, code: str, message: str):
    if _wants_json():
        return jsonify(error=code, message=message), status
    return render_template("error.html", status=status, code=code, message=message), status


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        body, status = _respond(exc.status, exc.code, exc.message)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else {}
        return body, status, headers

    @app.errorhandler(MediaLimitExceeded)
    def _media_limit(exc: MediaLimitExceeded):
        return _respond(422, "media_limit", exc.message)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        code, default = _HTTP_CODES.get(status, ("error", exc.description or "Request failed."))
        message = default
        if status == 400 and exc.description and "CSRF" in exc.description:
            code, message = (
                "csrf_failed",
                "The form expired or was forged: reload the page and try again.",
            )
        elif status == 413 and request.max_content_length:
            message = f"This request may carry at most {request.max_content_length} bytes."
        elif status == 429:
            message = f"Too many requests ({exc.description}): wait and try again."
        return _respond(status, code, message)
