from __future__ import annotations

from flask import current_app, render_template, request

from ..errors import DomainError
from ..extensions import limiter
from ..registry import verify_stream
from . import bp


def _verify_limit() -> str:
    return str(current_app.config["RATELIMIT_VERIFY"])


@bp.route("/verify", methods=["GET", "POST"])
@limiter.limit(_verify_limit, methods=["POST"])
def verify_page():
    result, error, status = None, None, 200
    if request.method == "POST":
        file = request.files.get("file")
        if file is None or not file.filename:
            error = "Choose a video file to check."
        else:
            try:
                result = verify_stream(file.stream, file.filename)
            except DomainError as exc:  # over a media limit, the budget, or every slot busy
                error, status = exc.message, exc.status
    return render_template("public/verify.html", result=result, error=error), status
