"""Bearer-token authentication for the API."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request

from ..accounts import token_row
from ..errors import Unauthorized
from ..extensions import db
from ..models import User

F = TypeVar("F", bound=Callable[..., Any])


def token_required(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "Send 'Authorization: Bearer <token>'; get a token at POST /api/v1/auth/tokens.",
                code="missing_token",
            )
        row = token_row(token.strip())
        g.api_user, g.api_token_id = row.user, row.id
        db.session.commit()  # last_used_at
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def api_user() -> User:
    return g.api_user


def api_token_id() -> str:
    """The id of the token this request came with."""
    return g.api_token_id
