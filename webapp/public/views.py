from __future__ import annotations

from flask import current_app, render_template, request

from ..extensions import limiter
from ..registry import verify_stream
from . import bp


def _verify_limit() -> str:
    return str(current_app.config["RATELIMIT_VERIFY"])


@bp.route("/verify", methods=["GET", "POST"])
@limiter.limit(_verify_limit, methods=["POST"])
def verify_page():  # type: ignore[no-untyped-def]
    result, error = None, None
    if request.method == "POST":
        file = request.files.get("file")
        if file is None or not file.filename:
            error = "Choose a video file to check."
        else:
            result = verify_stream(file.stream, file.filename)
    return render_template("public/verify.html", result=result, error=error)
