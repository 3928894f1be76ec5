"""Q&A sets and their items: limits, CSV/JSON import and export, and the owner's test match.

A set is the only thing a Q&A avatar may say: each item is one approved answer (en or zh)
with the question phrasings that lead to it; the fallback answers everything else. Every
edit bumps ``QASet.version``, which invalidates the cached matcher and tells the
deployments (``webapp.qa.deploy``) to render the changed answer again.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from compliance.moderation import moderate

from ..errors import InvalidInput
from ..extensions import db
from ..models import QAItem, QASet, User

LANGS = ("en", "zh")
CSV_COLUMNS = ("lang", "answer", "questions")  # questions: phrasings separated by " | "
CSV_SEPARATOR = "|"


def _limit(name: str) -> int:
    return int(current_app.config[f"QA_MAX_{name}"])


def _text(value: Any, field: str, limit: int, *, required: bool = True) -> str:
    text = " ".join(value.split()) if isinstance(value, str) else ""
    if required and not text:
        raise InvalidInput(f"Write the {field}.", code="missing_fields")
    if len(text) > limit:
        raise InvalidInput(f"The {field} is limited to {limit} characters.", code="too_long")
    return text


def clean_fallback(raw: Any) -> dict[str, str]:
    """``{"en": ..., "zh": ...}``: English is required (it is also the idle clip); Chinese
    is required once the set has Chinese answers (checked when it is deployed)."""
    if not isinstance(raw, dict):
        raise InvalidInput(
            'fallback must be an object like {"en": "...", "zh": "..."}.', code="bad_field"
        )
    unknown = sorted(set(raw) - set(LANGS))
    if unknown:
        raise InvalidInput(
            f"fallback languages are en and zh, not {', '.join(unknown)}.", code="bad_lang"
        )
    limit = _limit("ANSWER_CHARS")
    out = {"en": moderated(_text(raw.get("en"), "English fallback answer", limit))}
    zh = _text(raw.get("zh"), "Chinese fallback answer", limit, required=False)
    if zh:
        out["zh"] = moderated(zh)
    return out


def moderated(text: str) -> str:
    """Every answer, spoken or subtitled, passes the script policy (R18) when written."""
    verdict = moderate(text)
    if not verdict.allowed:
        raise InvalidInput(
            f"This answer falls under our policy on {verdict.category} content "
            f'("{verdict.matched}"); change it and try again.',
            code=f"moderation_{verdict.category}",
        )
    return text


def clean_item(answer: Any, lang: Any, questions: Any) -> tuple[str, str, list[str]]:
    if lang not in LANGS:
        raise InvalidInput("lang must be en or zh.", code="bad_lang")
    answer = moderated(_text(answer, "answer", _limit("ANSWER_CHARS")))
    if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
        raise InvalidInput("questions must be a list of question phrasings.", code="bad_field")
    limit = _limit("QUESTION_CHARS")
    phrasings = list(dict.fromkeys(_text(q, "question", limit, required=False) for q in questions))
    phrasings = [p for p in phrasings if p]
    if not phrasings:
        raise InvalidInput(
            "Give at least one question this answer is for.", code="missing_questions"
        )
    if len(phrasings) > _limit("PHRASINGS"):
        raise InvalidInput(
            f"At most {_limit('PHRASINGS')} phrasings per answer.", code="too_many_phrasings"
        )
    return answer, lang, phrasings


# -- sets -----------------------------------------------------------------------------------


def create_set(owner: User, name: Any, fallback: Any) -> QASet:
    count = db.session.scalar(select(func.count(QASet.id)).where(QASet.owner_id == owner.id))
    if count >= _limit("SETS"):
        raise InvalidInput(
            f"An account may have at most {_limit('SETS')} Q&A sets.", code="too_many_sets"
        )
    qaset = QASet(
        owner_id=owner.id,
        name=_text(name, "set name", 120),
        fallback=clean_fallback(fallback),
        version=0,
    )
    db.session.add(qaset)
    db.session.commit()
    return qaset


def update_set(qaset: QASet, name: Any = None, fallback: Any = None) -> QASet:
    from . import deploy

    if name is not None:
        qaset.name = _text(name, "set name", 120)
    if fallback is not None:
        old, qaset.fallback = dict(qaset.fallback), clean_fallback(fallback)
        _touch(qaset)
        for lang in LANGS:
            if old.get(lang) != qaset.fallback.get(lang):
                deploy.answer_changed(qaset, f"fallback:{lang}")
    db.session.commit()
    return qaset


def delete_set(qaset: QASet) -> None:
    """Its items, deployments, clip links and logs go; the clips' renders stay registered."""
    db.session.delete(qaset)
    db.session.commit()


def items_of(qaset: QASet) -> list[QAItem]:
    return list(
        db.session.scalars(
            select(QAItem).where(QAItem.set_id == qaset.id).order_by(QAItem.created_at, QAItem.id)
        )
    )


def item_json(item: QAItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "lang": item.lang,
        "answer": item.answer,
        "questions": list(item.questions),
        "media": media_kind(item.lang),
    }


def set_json(qaset: QASet, *, items: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": qaset.id,
        "name": qaset.name,
        "status": qaset.status,
        "fallback": dict(qaset.fallback),
        "version": qaset.version,
    }
    if items:
        out["items"] = [item_json(i) for i in items_of(qaset)]
    return out


def media_kind(lang: str) -> str:
    """How an answer in ``lang`` reaches the visitor: ``clip`` (spoken in the avatar's voice)
    or ``subtitle`` (shown over the idle avatar: no voice for that language yet)."""
    from ..studio.service import LANGUAGES  # the languages a voice can speak

    return "clip" if lang in LANGUAGES else "subtitle"


def _touch(qaset: QASet) -> None:
    qaset.version = (qaset.version or 0) + 1


# -- items ----------------------------------------------------------------------------------


def _room_for(qaset: QASet, more: int) -> None:
    have = db.session.scalar(select(func.count(QAItem.id)).where(QAItem.set_id == qaset.id))
    if have + more > _limit("ITEMS"):
        raise InvalidInput(
            f"A set holds at most {_limit('ITEMS')} answers (it has {have}).", code="too_many_items"
        )


def add_item(qaset: QASet, answer: Any, lang: Any, questions: Any) -> QAItem:
    from . import deploy

    answer, lang, questions = clean_item(answer, lang, questions)
    _room_for(qaset, 1)
    item = QAItem(
        owner_id=qaset.owner_id, set_id=qaset.id, answer=answer, lang=lang, questions=questions
    )
    db.session.add(item)
    db.session.flush()
    _touch(qaset)
    deploy.answer_changed(qaset, item.id)
    db.session.commit()
    return item


def update_item(
    item: QAItem, answer: Any = None, lang: Any = None, questions: Any = None
) -> QAItem:
    from . import deploy

    qaset = db.session.get(QASet, item.set_id)
    answer, lang, questions = clean_item(
        item.answer if answer is None else answer,
        item.lang if lang is None else lang,
        list(item.questions) if questions is None else questions,
    )
    spoken_changed = (answer, lang) != (item.answer, item.lang)
    item.answer, item.lang, item.questions = answer, lang, questions
    _touch(qaset)
    if spoken_changed:
        deploy.answer_changed(qaset, item.id)
    db.session.commit()
    return item


def delete_item(item: QAItem) -> None:
    from . import deploy

    qaset = db.session.get(QASet, item.set_id)
    deploy.answer_removed(qaset, item.id)
    db.session.delete(item)
    _touch(qaset)
    db.session.commit()


# -- import / export ------------------------------------------------------------------------


def _rows_from_csv(text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInput(
            f"The CSV needs the columns {', '.join(CSV_COLUMNS)} (missing: {', '.join(missing)}).",
            code="bad_csv",
        )
    return [
        {
            "lang": (row.get("lang") or "").strip(),
            "answer": row.get("answer"),
            "questions": (row.get("questions") or "").split(CSV_SEPARATOR),
        }
        for row in reader
    ]


def _rows_from_json(text: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidInput("The file is not valid JSON.", code="bad_json") from None
    if isinstance(data, dict):
        rows, fallback = data.get("items"), data.get("fallback")
    else:
        rows, fallback = data, None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InvalidInput(
            'JSON imports are {"items": [{"lang", "answer", "questions"}]}.', code="bad_json"
        )
    return rows, fallback


def import_items(qaset: QASet, text: str, fmt: str, *, replace: bool = False) -> int:
    """Add (or with ``replace``, swap in) every item of a CSV or JSON export. All or
    nothing: the first bad row is named and nothing is imported."""
    from . import deploy

    fallback = None
    if fmt == "csv":
        rows = _rows_from_csv(text)
    elif fmt == "json":
        rows, fallback = _rows_from_json(text)
    else:
        raise InvalidInput("format must be csv or json.", code="bad_format")
    cleaned = []
    for n, row in enumerate(rows, start=1):
        try:
            cleaned.append(clean_item(row.get("answer"), row.get("lang"), row.get("questions")))
        except InvalidInput as exc:
            raise InvalidInput(f"Item {n}: {exc.message}", code=exc.code) from None
    if fallback is not None:
        update_set(qaset, fallback=fallback)
    if replace:
        for item in items_of(qaset):
            deploy.answer_removed(qaset, item.id)
            db.session.delete(item)
        db.session.flush()
    _room_for(qaset, len(cleaned))
    for answer, lang, questions in cleaned:
        item = QAItem(
            owner_id=qaset.owner_id, set_id=qaset.id, answer=answer, lang=lang, questions=questions
        )
        db.session.add(item)
        db.session.flush()
        deploy.answer_changed(qaset, item.id)
    _touch(qaset)
    db.session.commit()
    return len(cleaned)


def export_items(qaset: QASet, fmt: str) -> str:
    items = items_of(qaset)
    if fmt == "json":
        data = {
            "name": qaset.name,
            "fallback": dict(qaset.fallback),
            "items": [
                {"lang": i.lang, "answer": i.answer, "questions": list(i.questions)} for i in items
            ],
        }
        return json.dumps(data, ensure_ascii=False, indent=2)
    if fmt != "csv":
        raise InvalidInput("format must be csv or json.", code="bad_format")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for i in items:
        writer.writerow([i.lang, i.answer, f" {CSV_SEPARATOR} ".join(i.questions)])
    return out.getvalue()


# -- matching -------------------------------------------------------------------------------

_matchers: dict[str, tuple[int, Any]] = {}  # set id -> (version, Matcher), per process
_matchers_lock = threading.Lock()


def matcher_for(qaset: QASet) -> Any:
    """The set's ``pipeline.qa.match.Matcher``, built once per set version."""
    from pipeline.qa.match import DEFAULT_MARGIN, DEFAULT_THRESHOLD, Matcher

    cfg = current_app.config
    threshold = (
        DEFAULT_THRESHOLD if cfg["QA_MATCH_THRESHOLD"] is None else float(cfg["QA_MATCH_THRESHOLD"])
    )
    margin = DEFAULT_MARGIN if cfg["QA_MATCH_MARGIN"] is None else float(cfg["QA_MATCH_MARGIN"])
    key = f"{qaset.id}@{threshold}/{margin}"
    with _matchers_lock:
        cached = _matchers.get(key)
        if cached is not None and cached[0] == qaset.version:
            return cached[1]
    items = [(i.id, list(i.questions), i.lang) for i in items_of(qaset)]
    matcher = Matcher(items, threshold=threshold, margin=margin)
    with _matchers_lock:
        _matchers[key] = (qaset.version, matcher)
    return matcher


def test_match(qaset: QASet, question: Any) -> dict[str, Any]:
    """What a visitor asking ``question`` would get: every item ranked, and the answer."""
    from pipeline.qa.match import detect_lang

    question = _text(question, "question", _limit("QUESTION_CHARS"))
    matcher = matcher_for(qaset)
    by_id = {i.id: i for i in items_of(qaset)}
    ranked = [
        {
            "item_id": item_id,
            "score": round(score, 4),
            "lang": by_id[item_id].lang,
            "answer": by_id[item_id].answer,
        }
        for item_id, score in matcher.rank(question)
    ]
    best = matcher.answer_for(question)
    return {
        "question": question,
        "question_lang": detect_lang(question),
        "threshold": matcher.threshold,
        "margin": matcher.margin,
        "answer_item_id": best.item_id if best else None,
        "fallback": best is None,
        "ranked": ranked,
    }
