"""Pages: the owner's Q&A editor and the public conversation page ``/talk/<slug>``.

The editor's actions call the same service functions as the API; errors come back as
flash messages. The talk page is embeddable only by its deployment's allowed origins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select

from ..errors import DomainError, Forbidden
from ..extensions import db
from ..models import Avatar, AvatarStatus, QADeployment, QASet
from ..ownership import get_owned_or_404
from ..security import CONTENT_SECURITY_POLICY
from . import deploy, service, talk

bp = Blueprint("qa", __name__)


# -- visitors -------------------------------------------------------------------------------


@bp.get("/talk/<slug>")
def talk_page(slug: str):
    dep = talk.deployment(slug)
    headers = request.headers
    if not talk.frame_allowed(
        dep, headers.get("Sec-Fetch-Dest"), headers.get("Sec-Fetch-Site"), request.referrer
    ):
        raise Forbidden("This site may not embed this avatar.", code="origin_not_allowed")
    page = render_template(
        "qa/talk.html",
        slug=slug,
        label=talk.AI_LABEL,
        notice=talk.AI_NOTICE,
        report_url=_report_url(),
    )
    response = make_response(page)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
        "frame-ancestors 'none'", f"frame-ancestors {talk.frame_ancestors(dep)}"
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"  # browsers with CSP use the list
    return response


@bp.get("/talk/<slug>/embed.js")
def embed_script(slug: str):
    """The script-tag embed: ``<script src=".../embed.js" async></script>`` on an allowed
    site puts the talk page in an iframe where the tag is. Refused (403) to a page on any
    other site; the iframe it makes is checked again on its own (``talk_page``)."""
    dep = talk.deployment(slug)
    if not talk.embedder_allowed(dep, request.headers.get("Sec-Fetch-Site"), request.referrer):
        raise Forbidden("This site may not embed this avatar.", code="origin_not_allowed")
    script = render_template(
        "qa/embed.js", talk_url=url_for("qa.talk_page", slug=slug, _external=True)
    )
    response = Response(script, mimetype="text/javascript")
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.headers["Cache-Control"] = "no-cache"  # the allow-list may change
    response.headers["Vary"] = "Referer"
    return response


def _report_url() -> str:
    return url_for("reports.report_page")


@bp.get("/talk/<slug>/clips/<render_id>")
def clip(slug: str, render_id: str):
    """One answer clip, by its signed short-lived link (range requests for the player)."""
    render, subject = talk.clip_for_link(slug, render_id, request.args.get("t", ""))
    data = talk.clip_bytes(render, subject)
    response = Response(data, mimetype="video/mp4")
    response.headers["Cache-Control"] = "private, max-age=60"
    return response.make_conditional(request, accept_ranges=True, complete_length=len(data))


@bp.get("/talk/<slug>/notice/<render_id>")
def notice(slug: str, render_id: str):
    """The conversation's AI notice clip; its ``X-Conversation`` header is the token that
    may ask questions (the server answers none before the notice was served, R26), and
    ``X-Idle-Clip`` the link of the idle loop (absent on deployments made before them)."""
    args = (slug, render_id, request.args.get("t", ""))
    render, subject, token, idle_url = talk.notice_for_link(*args)
    data = talk.clip_bytes(render, subject)
    response = Response(data, mimetype="video/mp4")
    response.headers["X-Conversation"] = token
    if idle_url:
        response.headers["X-Idle-Clip"] = idle_url
    response.headers["Cache-Control"] = "no-store"  # the header is this conversation's
    return response.make_conditional(request, accept_ranges=True, complete_length=len(data))


# -- the owner's editor ---------------------------------------------------------------------


def _set(set_id: str) -> QASet:
    return get_owned_or_404(QASet, set_id, current_user.id)


def _act(set_id: str, action: Callable[[QASet], Any], done: str) -> Response:
    """Run an editor action; flash its outcome (and any re-render refusal); back to the set."""
    qaset = _set(set_id)
    try:
        action(qaset)
        flash(done, "ok")
        rendering = deploy.refresh(qaset)
        if rendering["error"]:
            flash(f"Saved, but its clip could not be rendered: {rendering['error']}", "error")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("qa.edit", set_id=set_id))


def _questions(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@bp.get("/qa")
@login_required
def index():
    sets = db.session.scalars(
        select(QASet).where(QASet.owner_id == current_user.id).order_by(QASet.created_at)
    )
    return render_template("qa/index.html", sets=list(sets))


@bp.post("/qa")
@login_required
def create():
    form = request.form
    try:
        qaset = service.create_set(
            current_user,
            form.get("name", ""),
            {"en": form.get("fallback_en", ""), "zh": form.get("fallback_zh", "")},
        )
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(url_for("qa.index"))
    return redirect(url_for("qa.edit", set_id=qaset.id))


@bp.get("/qa/<set_id>")
@login_required
def edit(set_id: str):
    qaset = _set(set_id)
    avatars = db.session.scalars(
        select(Avatar).where(
            Avatar.owner_id == current_user.id, Avatar.status == AvatarStatus.READY
        )
    )
    deps = [deploy.deployment_json(deploy.sync(d)) for d in deploy.deployments_of(qaset)]
    return render_template(
        "qa/set.html",
        qaset=qaset,
        items=service.items_of(qaset),
        avatars=list(avatars),
        deployments=deps,
        unanswered=talk.unanswered(qaset, 20),
        logs=talk.logs(qaset, 20),
        usage=talk.usage(qaset),
        media_kind=service.media_kind,
        prefill=request.args.get("question", ""),
    )


@bp.get("/qa/<set_id>/status.json")
@login_required
def status(set_id: str):
    qaset = _set(set_id)
    deps = [deploy.deployment_json(deploy.sync(d)) for d in deploy.deployments_of(qaset)]
    return jsonify(status=qaset.status, deployments=deps)


@bp.post("/qa/<set_id>/match.json")
@login_required
def match(set_id: str):
    try:
        return jsonify(service.test_match(_set(set_id), request.form.get("question", "")))
    except DomainError as exc:
        return jsonify(error=exc.code, message=exc.message), exc.status


@bp.post("/qa/<set_id>/settings")
@login_required
def settings(set_id: str):
    form = request.form
    fallback = {"en": form.get("fallback_en", ""), "zh": form.get("fallback_zh", "")}
    return _act(set_id, lambda s: service.update_set(s, form.get("name", ""), fallback), "Saved.")


@bp.post("/qa/<set_id>/items")
@login_required
def add_item(set_id: str):
    form = request.form
    return _act(
        set_id,
        lambda s: service.add_item(
            s, form.get("answer", ""), form.get("lang"), _questions(form.get("questions", ""))
        ),
        "Answer added.",
    )


@bp.post("/qa/<set_id>/items/<item_id>")
@login_required
def update_item(set_id: str, item_id: str):
    form = request.form

    def update(qaset: QASet) -> None:
        item = deploy.item_for(qaset, item_id)
        if item is None:
            raise Forbidden("That answer is not in this set.", code="not_found")
        service.update_item(
            item, form.get("answer", ""), form.get("lang"), _questions(form.get("questions", ""))
        )

    return _act(set_id, update, "Answer saved.")


@bp.post("/qa/<set_id>/items/<item_id>/delete")
@login_required
def delete_item(set_id: str, item_id: str):
    def remove(qaset: QASet) -> None:
        item = deploy.item_for(qaset, item_id)
        if item is not None:
            service.delete_item(item)

    return _act(set_id, remove, "Answer deleted.")


@bp.post("/qa/<set_id>/import")
@login_required
def import_items(set_id: str):
    file = request.files.get("file")
    fmt = (file.filename or "").rsplit(".", 1)[-1].lower() if file else ""
    text = file.read().decode("utf-8-sig", "replace") if file else ""
    return _act(
        set_id,
        lambda s: service.import_items(s, text, fmt, replace=bool(request.form.get("replace"))),
        "Imported.",
    )


@bp.get("/qa/<set_id>/export.<fmt>")
@login_required
def export(set_id: str, fmt: str):
    qaset = _set(set_id)
    text = service.export_items(qaset, fmt)
    mimetype = "text/csv" if fmt == "csv" else "application/json"
    name = f'attachment; filename="qa-{qaset.id}.{fmt}"'
    return Response(text, mimetype=mimetype, headers={"Content-Disposition": name})


@bp.post("/qa/<set_id>/deploy")
@login_required
def attach(set_id: str):
    form = request.form
    origins = _questions(form.get("origins", ""))
    return _act(
        set_id,
        lambda s: deploy.attach(current_user, s, form.get("avatar_id", ""), origins),
        "Attached: its answers are being rendered.",
    )


def _dep_act(dep_id: str, action: Callable[[QADeployment], Any], done: str) -> Response:
    dep = get_owned_or_404(QADeployment, dep_id, current_user.id)
    return _act(dep.set_id, lambda _: action(dep), done)


@bp.post("/qa/deployments/<dep_id>/clips/<key>/render")
@login_required
def rerender(dep_id: str, key: str):
    return _dep_act(dep_id, lambda d: deploy.rerender(d, key), "Rendering that answer again.")


@bp.post("/qa/deployments/<dep_id>/origins")
@login_required
def origins(dep_id: str):
    text = request.form.get("origins", "")
    return _dep_act(dep_id, lambda d: deploy.set_origins(d, _questions(text)), "Saved.")


@bp.post("/qa/deployments/<dep_id>/detach")
@login_required
def detach(dep_id: str):
    return _dep_act(dep_id, deploy.detach, "Detached: its page no longer answers.")
