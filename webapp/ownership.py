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
