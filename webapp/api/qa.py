"""Q&A sets, their deployments on avatars, and the visitors' conversations (issue 18).

Owners (bearer token): ``/qa-sets`` CRUD, items CRUD, CSV/JSON import and export, a test
``match``, deployments with their clips' progress, logs and unanswered questions.
Visitors (public, rate-limited): ``/talk/<slug>/conversations``, ``/ask``, ``/ask-audio``.
"""

from __future__ import annotations

from flask import Response, jsonify, request

from .. import ratelimits
from ..errors import Forbidden, InvalidInput, NotFound
from ..models import QADeployment, QAItem, QASet
from ..ownership import get_owned_or_404
from ..qa import deploy, service, talk
from . import bp
from .auth import api_user, token_required
from .routes import _json_body


def _set(set_id: str) -> QASet:
    return get_owned_or_404(QASet, set_id, api_user().id)


def _item(set_id: str, item_id: str) -> tuple[QASet, QAItem]:
    qaset = _set(set_id)
    item = deploy.item_for(qaset, item_id)
    if item is None:
        raise NotFound(f"No item with id {item_id} in this set.")
    return qaset, item


def _edited(qaset: QASet, body: dict, status: int = 200):
    """An edit's answer, with what re-rendering its deployments' clips started."""
    return jsonify(**body, rendering=deploy.refresh(qaset)), status


@bp.get("/qa-sets")
@token_required
def list_qa_sets():
    from sqlalchemy import select

    from ..extensions import db

    rows = db.session.scalars(
        select(QASet).where(QASet.owner_id == api_user().id).order_by(QASet.created_at)
    )
    return jsonify(qa_sets=[service.set_json(s, items=False) for s in rows])


@bp.post("/qa-sets")
@token_required
def create_qa_set():
    """Create a set: a name and the fallback answer ({"en": ..., "zh"?: ...})."""
    body = _json_body("name")
    qaset = service.create_set(api_user(), body["name"], body.get("fallback"))
    return jsonify(service.set_json(qaset)), 201


@bp.get("/qa-sets/<set_id>")
@token_required
def get_qa_set(set_id: str):
    qaset = _set(set_id)
    deps = [deploy.deployment_json(d, clips=False) for d in deploy.deployments_of(qaset)]
    return jsonify(**service.set_json(qaset), deployments=deps)


@bp.patch("/qa-sets/<set_id>")
@token_required
def update_qa_set(set_id: str):
    body = _json_body(name=str, fallback=dict)
    qaset = service.update_set(_set(set_id), body.get("name"), body.get("fallback"))
    return _edited(qaset, service.set_json(qaset))


@bp.delete("/qa-sets/<set_id>")
@token_required
def delete_qa_set(set_id: str):
    service.delete_set(_set(set_id))
    return "", 204


@bp.get("/qa-sets/<set_id>/items")
@token_required
def list_qa_items(set_id: str):
    return jsonify(items=[service.item_json(i) for i in service.items_of(_set(set_id))])


@bp.post("/qa-sets/<set_id>/items")
@token_required
def create_qa_item(set_id: str):
    """Add an answer: {answer, lang: en|zh, questions: [phrasings]}."""
    body = _json_body("answer", "lang", questions=list)
    qaset = _set(set_id)
    item = service.add_item(qaset, body["answer"], body["lang"], body.get("questions"))
    return _edited(qaset, service.item_json(item), 201)


@bp.patch("/qa-sets/<set_id>/items/<item_id>")
@token_required
def update_qa_item(set_id: str, item_id: str):
    body = _json_body(answer=str, lang=str, questions=list)
    qaset, item = _item(set_id, item_id)
    item = service.update_item(item, body.get("answer"), body.get("lang"), body.get("questions"))
    return _edited(qaset, service.item_json(item))


@bp.delete("/qa-sets/<set_id>/items/<item_id>")
@token_required
def delete_qa_item(set_id: str, item_id: str):
    service.delete_item(_item(set_id, item_id)[1])
    return "", 204


@bp.post("/qa-sets/<set_id>/import")
@token_required
def import_qa_items(set_id: str):
    """Import items: multipart ``file`` (.csv or .json) or JSON {format, data, replace?}."""
    qaset = _set(set_id)
    file = request.files.get("file")
    if file is not None:
        fmt = request.form.get("format") or file.filename.rsplit(".", 1)[-1].lower()
        text, replace = (
            file.read().decode("utf-8-sig", "replace"),
            bool(request.form.get("replace")),
        )
    else:
        body = _json_body("format", "data", replace=bool)
        fmt, text, replace = body["format"], body["data"], bool(body.get("replace"))
    count = service.import_items(qaset, text, fmt, replace=replace)
    return _edited(qaset, {"imported": count, **service.set_json(qaset)})


@bp.get("/qa-sets/<set_id>/export")
@token_required
def export_qa_items(set_id: str):
    """The set as ``?format=csv`` (lang, answer, questions separated by "|") or json."""
    qaset, fmt = _set(set_id), request.args.get("format", "json")
    text = service.export_items(qaset, fmt)
    mimetype = "text/csv" if fmt == "csv" else "application/json"
    name = f'attachment; filename="qa-{qaset.id}.{fmt}"'
    return Response(text, mimetype=mimetype, headers={"Content-Disposition": name})


@bp.post("/qa-sets/<set_id>/match")
@token_required
def match_qa_set(set_id: str):
    """Test the set: every item ranked for {question}, and the answer a visitor would get."""
    return jsonify(service.test_match(_set(set_id), _json_body("question")["question"]))


@bp.get("/qa-sets/<set_id>/unanswered")
@token_required
def qa_unanswered(set_id: str):
    """Questions the fallback answered, most frequent first."""
    qaset = _set(set_id)
    return jsonify(unanswered=talk.unanswered(qaset), usage=talk.usage(qaset))


@bp.get("/qa-sets/<set_id>/logs")
@token_required
def qa_logs(set_id: str):
    return jsonify(logs=talk.logs(_set(set_id)))


@bp.post("/qa-sets/<set_id>/deployments")
@token_required
def deploy_qa_set(set_id: str):
    """Attach the set to a ready avatar {avatar_id, origins?}: its answers are rendered."""
    body = _json_body("avatar_id", origins=list)
    dep = deploy.attach(api_user(), _set(set_id), body["avatar_id"], body.get("origins"))
    return jsonify(deploy.deployment_json(dep)), 202


@bp.get("/qa-deployments/<dep_id>")
@token_required
def get_qa_deployment(dep_id: str):
    dep = deploy.sync(get_owned_or_404(QADeployment, dep_id, api_user().id))
    return jsonify(deploy.deployment_json(dep))


@bp.patch("/qa-deployments/<dep_id>")
@token_required
def update_qa_deployment(dep_id: str):
    """Change the sites allowed to embed it: {origins: ["https://shop.example"]}."""
    body = _json_body(origins=list)
    dep = get_owned_or_404(QADeployment, dep_id, api_user().id)
    return jsonify(deploy.deployment_json(deploy.set_origins(dep, body.get("origins") or [])))


@bp.delete("/qa-deployments/<dep_id>")
@token_required
def delete_qa_deployment(dep_id: str):
    deploy.detach(get_owned_or_404(QADeployment, dep_id, api_user().id))
    return "", 204


@bp.post("/qa-deployments/<dep_id>/clips/<key>/render")
@token_required
def rerender_qa_clip(dep_id: str, key: str):
    """Render one answer again (an item id, or fallback:en)."""
    dep = get_owned_or_404(QADeployment, dep_id, api_user().id)
    clip = deploy.rerender(dep, key)
    return jsonify(key=clip.key, render_id=clip.render_id), 202


# -- visitors ------------------------------------------------------------------------------


def _visitor_deployment(slug: str) -> QADeployment:
    dep = talk.deployment(slug)
    if not talk.request_origin_allowed(
        dep, request.headers.get("Origin"), request.host_url.rstrip("/")
    ):
        raise Forbidden("This site may not embed this avatar.", code="origin_not_allowed")
    return dep


@bp.post("/talk/<slug>/conversations")
@ratelimits.qa_visitor
def start_conversation(slug: str):
    """Start a conversation: its token (send it as X-Conversation), the AI notice."""
    return jsonify(talk.start(_visitor_deployment(slug))), 201


@bp.post("/talk/<slug>/ask")
@ratelimits.qa_visitor
@ratelimits.qa_conversation
def ask(slug: str):
    """Ask a typed question {question}: the approved answer to play (never synthesised)."""
    dep = _visitor_deployment(slug)
    question = _json_body("question")["question"]
    return jsonify(talk.ask(dep, request.headers.get("X-Conversation"), question))


@bp.post("/talk/<slug>/ask-audio")
@ratelimits.qa_visitor
@ratelimits.qa_conversation
def ask_audio(slug: str):
    """Ask by voice: multipart ``audio`` (short recording) and ``lang`` (en or zh)."""
    dep = _visitor_deployment(slug)
    talk.conversation_of(dep, request.headers.get("X-Conversation"))  # before decoding
    file = request.files.get("audio")
    if file is None:
        raise InvalidInput("Attach the recording as multipart field 'audio'.", code="missing_file")
    text, lang = talk.transcribe(file.stream, request.form.get("lang") or None)
    token = request.headers.get("X-Conversation")
    return jsonify(talk.ask(dep, token, text, spoken=True, lang=lang))
