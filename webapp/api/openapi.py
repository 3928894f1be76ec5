"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 document of every route under /api/v1.

Paths come from the app's URL map, so no route can be missing; request and response
schemas come from ``SCHEMAS`` below (keyed by endpoint), summaries from the views'
docstrings. Routes without a ``Bearer`` token are listed in ``PUBLIC``.
"""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, jsonify

from . import bp

S = dict[str, Any]


def _obj(required: tuple[str, ...] = (), **props: S) -> S:
    return {"type": "object", "required": list(required), "properties": props}


STR, INT, NUM = {"type": "string"}, {"type": "integer"}, {"type": "number"}
BOOL = {"type": "boolean"}
STRS = {"type": "array", "items": STR}
STATUS = _obj(("status",), status=STR, reasons=STRS)
JOB = _obj(
    ("id", "status"),
    id=STR,
    kind=STR,
    status=STR,
    progress=NUM,
    stage=STR,
    result={"type": "object"},
    error={"type": ["string", "null"]},
)
RENDER = _obj(
    ("id", "status"),
    id=STR,
    avatar_id=STR,
    status=STR,
    progress=NUM,
    stage=STR,
    content_id={"type": ["string", "null"]},
    options={"type": "object"},
    download_url=STR,
)
VERIFY = _obj(
    ("verdict",),
    verdict={"enum": ["ai_generated_by_us", "tampered", "unknown"]},
    c2pa={"type": ["object", "null"]},
    aigc={"type": ["object", "null"]},
    watermark={"type": "object"},
    content={"type": ["object", "null"]},
)
FILE = {"type": "string", "format": "binary"}
NULLSTR = {"type": ["string", "null"]}
LIVE_LINE = _obj(
    ("id", "text", "status"),
    id=STR,
    text=STR,
    operator_id=STR,
    status={"enum": ["rendering", "queued", "aired", "failed"]},
    render_id=NULLSTR,
    render_status=NULLSTR,
    created_at=STR,
    airs_after=NULLSTR,  # rendering: when the clip should be ready (then the next boundary)
    airs_at=NULLSTR,  # queued: the show's estimate; aired: when it aired
    aired_at=NULLSTR,
)
REPORT = _obj(
    ("ticket_id", "status", "due_by"),
    ticket_id=STR,
    category=STR,
    status={"enum": ["open", "decided"]},
    created_at=STR,
    due_by=STR,
    resolved=BOOL,
    content_id=NULLSTR,
    outcome=NULLSTR,
    outcome_text=NULLSTR,
    decided_at=NULLSTR,
)
OPENED = {
    **REPORT,
    "properties": {
        **REPORT["properties"],
        "status_token": STR,
        "status_url": STR,
        "attachment_kept": BOOL,
        "avatar_frozen": BOOL,
        "message": STR,
    },
}
REPORT_BODY: S = dict(
    category={"enum": ["not_me", "fraud", "harmful", "other"]},
    reason=STR,
    contact=STR,
    link=STR,
    content_id=STR,
)
NULLABLE_NUM, NULLABLE_STR = {"type": ["number", "null"]}, {"type": ["string", "null"]}
USE = _obj(
    ("id", "status"),
    id=STR,
    avatar_id=STR,
    avatar_name=STR,
    created_at=STR,
    duration_s=NULLABLE_NUM,
    script=STR,
    status=STR,
    content_id=NULLABLE_STR,
    verify_lookups=INT,
    report_open=BOOL,
    file_deleted=BOOL,
    downloadable=BOOL,
    download_url=STR,
)


def _multipart(**fields: S) -> S:
    """Multipart form fields; binary ones (the files) are required."""
    required = tuple(name for name, schema in fields.items() if schema is FILE)
    return {"multipart/form-data": {"schema": _obj(required, **fields)}}


# endpoint -> {"body": request JSON schema | "form": multipart fields, "response": schema}
SCHEMAS: dict[str, S] = {
    "api.signup": {
        "body": _obj(("email", "password"), email=STR, password=STR),
        "response": _obj(("user_id",), user_id=STR),
    },
    "api.create_token": {
        "body": _obj(("email", "password"), email=STR, password=STR),
        "response": _obj(("token",), token=STR, expires_at=STR),
    },
    "api.list_tokens": {
        "response": _obj(
            ("tokens",),
            tokens={
                "type": "array",
                "items": _obj(
                    ("id", "expires_at"),
                    id=STR,
                    created_at=STR,
                    expires_at=STR,
                    last_used_at={"type": ["string", "null"]},
                    current=BOOL,
                ),
            },
        )
    },
    "api.revoke_token": {},
    "api.change_password": {
        "body": _obj(("current_password", "new_password"), current_password=STR, new_password=STR),
        "response": _obj(("status",), status=STR),
    },
    "api.request_password_reset": {
        "body": _obj(("email",), email=STR),
        "response": _obj(("status",), status=STR, message=STR),
    },
    "api.confirm_password_reset": {
        "body": _obj(("token", "password"), token=STR, password=STR),
        "response": _obj(("status",), status=STR),
    },
    "api.me": {
        "response": _obj(
            ("id",),
            id=STR,
            email=STR,
            kyc_status=STR,
            credits=INT,
            sanction=_obj(
                ("step",),
                step={"enum": ["none", "warning", "restricted", "suspended", "closed"]},
                reason=NULLSTR,
                since=NULLSTR,
                message=NULLSTR,
                appeal_url=NULLSTR,
            ),
        )
    },
    "api.create_report": {
        "body": _obj(("category", "reason"), **REPORT_BODY),
        "form": {"file": FILE, **REPORT_BODY},
        "response": OPENED,
    },
    "api.report_status": {"response": REPORT},
    "api.create_appeal": {"body": _obj(("reason",), reason=STR), "response": OPENED},
    "api.get_job": {"response": JOB},
    "api.start_identity": {
        "body": _obj(provider=STR),
        "response": _obj(("id", "status"), id=STR, status=STR, url=STR),
    },
    "api.get_identity": {"response": _obj(("id", "status"), id=STR, status=STR, reasons=STRS)},
    "api.create_subject": {
        "body": _obj(
            ("display_name", "relation"),
            display_name=STR,
            relation={"enum": ["self", "other"]},
            contact_email=STR,
        ),
        "response": _obj(("id",), id=STR, consent_url=STR, consent_token=STR),
    },
    "api.get_subject": {
        "response": _obj(
            ("id",),
            id=STR,
            display_name=STR,
            status=STR,
            contact_email={"type": ["string", "null"]},
        )
    },
    "api.update_subject": {
        "body": _obj(("contact_email",), contact_email={"type": ["string", "null"]}),
        "response": _obj(("id",), id=STR, contact_email={"type": ["string", "null"]}),
    },
    "api.subject_renders": {
        "response": _obj(
            ("subject_id", "renders"), subject_id=STR, renders={"type": "array", "items": USE}
        )
    },
    "api.get_consent": {
        "response": _obj(
            ("statement",),
            notice={"type": "object"},
            notice_version=STR,
            notice_sha256=STR,
            statement=STR,
            passcode=STR,
            expires_at=STR,
        )
    },
    "api.post_recording": {
        "form": {"video": FILE, "source": {"enum": ["browser"]}},
        "response": STATUS,
    },
    "api.revoke": {"response": _obj(("status",), status=STR, receipt={"type": "object"})},
    "api.create_avatar": {
        "body": _obj(
            ("subject_id", "name"),
            subject_id=STR,
            name=STR,
            style={"enum": ["real2d", "cartoon2d", "3d_realistic", "3d_semi", "3d_cartoon"]},
            framing={"enum": ["half", "full"]},
        ),
        "response": _obj(("id", "status"), id=STR, status=STR),
    },
    "api.get_avatar": {
        "response": _obj(
            ("id", "status"),
            id=STR,
            status=STR,
            progress=NUM,
            stage=STR,
            quality={"type": "object"},
        )
    },
    "api.upload_training_video": {
        "form": {"video": FILE},
        "response": _obj(upload_id=STR, job_id=STR, status=STR),
    },
    "api.train_avatar": {"response": _obj(("job_id",), job_id=STR)},
    "api.checkout": {
        "body": _obj(
            ("item",),
            item={"enum": ["avatar_training", "render_credits"]},
            avatar_id=STR,
            quantity=INT,
        ),
        "response": _obj(("session_id", "checkout_url"), session_id=STR, checkout_url=STR),
    },
    "api.stripe_webhook": {"response": _obj(received=BOOL, outcome=STR)},
    "api.create_render": {
        "body": _obj(
            ("avatar_id", "script"),
            avatar_id=STR,
            script=STR,
            language=STR,
            background=STR,
            tone=STR,
            style=STR,
            framing=STR,
        ),
        "response": _obj(("id",), id=STR, status=STR),
    },
    "api.get_render": {"response": RENDER},
    "api.download_render": {"response": FILE, "media": "video/mp4"},
    "api.export_model": {"response": FILE, "media": "model/gltf-binary"},
    "api.verify_file": {"form": {"file": FILE}, "response": VERIFY},
    "api.set_webhook": {
        "body": _obj(("url",), url=STR),
        "response": _obj(("url", "secret"), url=STR, secret=STR),
    },
    "api.delete_webhook": {},
    "api.voice_prompts": {
        "response": _obj(
            ("prompts",), prompts={"type": "array", "items": _obj(("id", "text"), id=STR, text=STR)}
        )
    },
    "api.upload_voice_sample": {
        "form": {"audio": FILE, "text": STR, "prompt_id": STR},
        "response": _obj(("count", "remaining"), count=INT, remaining=INT),
    },
    "api.post_live_line": {"body": _obj(("text",), text=STR), "response": LIVE_LINE},
    "api.list_live_lines": {
        "response": _obj(("lines",), lines={"type": "array", "items": LIVE_LINE})
    },
}

PUBLIC = {
    "api.signup",
    "api.create_token",
    "api.request_password_reset",
    "api.confirm_password_reset",
    "api.get_consent",
    "api.post_recording",
    "api.revoke",
    "api.stripe_webhook",
    "api.verify_file",
    "api.supported_algorithms",
    "api.matches_by_binding",
    "api.get_manifest",
    "api.openapi",
    "api.create_report",
    "api.download_render",
    "api.start_conversation",
    "api.ask",
    "api.ask_audio",
    "api.report_status",
    "api.watch_comment",
}


def _operation(endpoint: str, method: str, params: list[str]) -> S:
    view = current_app.view_functions[endpoint]
    doc = (view.__doc__ or endpoint.split(".", 1)[1].replace("_", " ")).strip()
    info = SCHEMAS.get(endpoint, {})
    ok = (
        "201"
        if endpoint
        in (
            "api.signup",
            "api.create_token",
            "api.create_avatar",
            "api.create_subject",
            "api.checkout",
            "api.upload_voice_sample",
            "api.create_qa_set",
            "api.create_qa_item",
            "api.post_live_comment",
            "api.post_live_line",
            "api.watch_comment",
            "api.start_conversation",
            "api.create_report",
            "api.create_appeal",
        )
        else "200"
    )
    media = info.get("media", "application/json")
    op: S = {
        "operationId": endpoint.split(".", 1)[1],
        "summary": doc.splitlines()[0],
        "parameters": [{"name": p, "in": "path", "required": True, "schema": STR} for p in params],
        "responses": {
            ok: {"description": "OK", "content": {media: {"schema": info.get("response", {})}}},
            "default": {
                "description": "Error",
                "content": {
                    "application/json": {
                        "schema": _obj(("error", "message"), error=STR, message=STR)
                    }
                },
            },
        },
    }
    content: S = {}
    if "body" in info:  # JSON; some routes take either (POST /reports)
        content["application/json"] = {"schema": info["body"]}
    if "form" in info:
        content.update(_multipart(**info["form"]))
    if content:
        op["requestBody"] = {"required": True, "content": content}
    if endpoint not in PUBLIC:
        op["security"] = [{"bearer": []}]
    return op


def document() -> S:
    paths: dict[str, S] = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(
                rule.endpoint, method, list(rule.arguments)
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Digital Human Factory API",
            "version": "1.0.0",
            "description": "Consent-first digital humans. Errors are "
            '{"error": code, "message": what to do}.',
        },
        "servers": [{"url": "/"}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }


@bp.get("/openapi.json")
def openapi():
    """This document."""
    return jsonify(document())
