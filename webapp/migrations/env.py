"""Alembic environment: runs on the connection handed over by webapp.migrate."""

from __future__ import annotations

from alembic import context

from webapp import models  # noqa: F401  (registers every table on db.metadata)
from webapp.extensions import db

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=db.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs batch ALTERs
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
