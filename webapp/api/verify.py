"""Public verification API and C2PA soft-binding style resolution routes (R16)."""

from __future__ import annotations

import base64
import binascii

from flask import Response, current_app, jsonify, request, url_for

from compliance.provenance import SOFT_BINDING_ALG

from ..errors import DomainError, InvalidInput, NotFound
from ..extensions import db, limiter
from ..models import ContentRecord
from ..registry import verify_stream
from . import bp


class TooLarge(DomainError):
    status, code = 413, "too_large"


def _verify_limit() -> str:
    return str(current_app.config["RATELIMIT_VERIFY"])


@bp.post("/verify")
@limiter.limit(_verify_limit)
def verify_file():
    file = request.files.get("file")
    if file is None or not file.filename:
        raise InvalidInput("Attach the video as multipart field 'file'.", code="missing_file")
    limit = int(current_app.config["VERIFY_MAX_BYTES"])
    if request.content_length and request.content_length > limit:
        raise TooLarge(f"Files up to {limit // (1024 * 1024)} MiB can be verified.")
    return jsonify(verify_stream(file.stream, file.filename))


@bp.get("/services/supportedAlgorithms")
def supported_algorithms():
    return jsonify(watermarks=[{"alg": SOFT_BINDING_ALG}], fingerprints=[])


@bp.get("/matches/byBinding")
@limiter.limit(_verify_limit)
def matches_by_binding():
    alg, value = request.args.get("alg", ""), request.args.get("value", "")
    if alg != SOFT_BINDING_ALG:
        raise InvalidInput(f"Unsupported alg: use {SOFT_BINDING_ALG}.", code="unsupported_alg")
    try:
        watermark_id = base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        raise InvalidInput(
            "value must be the base64 soft-binding value.", code="bad_value"
        ) from None
    row = db.session.query(ContentRecord).filter_by(watermark_id=watermark_id).one_or_none()
    matches = []
    if row is not None and row.manifest_id:
        endpoint = url_for("api.get_manifest", manifest_id=row.manifest_id, _external=True)
        matches.append(
            {"manifestId": row.manifest_id, "endpoint": endpoint, "similarityScore": 100}
        )
    return jsonify(matches=matches)


@bp.get("/manifests/<path:manifest_id>")
def get_manifest(manifest_id: str):
    row = db.session.query(ContentRecord).filter_by(manifest_id=manifest_id).one_or_none()
    if row is None or row.manifest is None:
        raise NotFound(f"No manifest {manifest_id}.")
    return Response(row.manifest, mimetype="application/c2pa")
