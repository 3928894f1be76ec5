"""Request bodies are refused by their size before anything buffers them.

Uploads (``multipart/form-data``) may be up to ``MAX_CONTENT_LENGTH`` (the public verifier
and report channel: ``VERIFY_MAX_BYTES``); every other body (JSON, forms, webhooks) up to
``JSON_MAX_BYTES``.
The limit is set on the request as it arrives; werkzeug refuses (413) a declared
Content-Length over it before reading a byte, and a streamed body once it passes it, so
CSRF, JSON and form parsing never hold more (rate limits still count the request).
In front of this, ``dhf serve`` tells waitress the largest of these
(``max_request_body_size``), so larger bodies are refused before waitress spools them.
"""

from __future__ import annotations

from flask import Flask, current_app, request

# the public verifier and the public report channel, which runs it on the attached file
VERIFY_ENDPOINTS = (
    "api.verify_file",
    "public.verify_page",
    "api.create_report",
    "reports.report_page",
)
SPOKEN_QUESTION_ENDPOINTS = ("api.ask_audio",)  # a visitor's recording: QA_AUDIO_MAX_BYTES
MULTIPART_OVERHEAD = 16 * 1024  # boundaries, part headers and small fields


def body_limit() -> int:
    """The largest body the current request may carry."""
    cfg = current_app.config
    if request.mimetype != "multipart/form-data":
        return int(cfg["JSON_MAX_BYTES"])
    if request.endpoint in VERIFY_ENDPOINTS:
        return min(int(cfg["VERIFY_MAX_BYTES"]), int(cfg["MAX_CONTENT_LENGTH"]))
    if request.endpoint == "live_pages.new":  # a plan with a product picture per segment
        pictures = int(cfg["LIVE_MAX_SEGMENTS"]) * int(cfg["LIVE_CARD_IMAGE_MAX_BYTES"])
        return min(int(cfg["JSON_MAX_BYTES"]) + pictures, int(cfg["MAX_CONTENT_LENGTH"]))
    if request.endpoint in SPOKEN_QUESTION_ENDPOINTS:
        limit = int(cfg["QA_AUDIO_MAX_BYTES"]) + MULTIPART_OVERHEAD
        return min(limit, int(cfg["MAX_CONTENT_LENGTH"]))
    return int(cfg["MAX_CONTENT_LENGTH"])


def server_limit(config: dict[str, object]) -> int:
    """What waitress may accept at most: the largest of the per-route limits."""
    return max(int(config[k]) for k in ("MAX_CONTENT_LENGTH", "JSON_MAX_BYTES"))  # type: ignore[call-overload]


def _set_body_limit() -> None:
    request.max_content_length = body_limit()


def init_app(app: Flask) -> None:
    app.before_request(_set_body_limit)
