"""Owner-checked lookups shared by the web pages and the API."""

from __future__ import annotations

from typing import TypeVar

from .errors import NotFound
from .extensions import db

T = TypeVar("T")


def get_owned_or_404(model: type[T], object_id: str, owner_id: str) -> T:
    """The object if it exists AND belongs to ``owner_id``; else 404 (never 403, which
    would tell a stranger the id exists)."""
    obj = db.session.get(model, object_id)
    if obj is None or getattr(obj, "owner_id", None) != owner_id:
        raise NotFound(f"No {model.__name__.lower()} with id {object_id}.")
    return obj


def get_referenced(model: type[T], object_id: str) -> T:
    """The row a foreign key (or a job's target id) points at: it must exist, so a missing
    one is an inconsistent database, reported as such instead of failing later on None."""
    obj = db.session.get(model, object_id)
    if obj is None:
        raise LookupError(f"{model.__name__} {object_id} is referenced but does not exist.")
    return obj
