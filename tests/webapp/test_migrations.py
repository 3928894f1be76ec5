"""Alembic migrations produce exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from webapp import migrate
from webapp.extensions import db


def test_database_is_at_head_and_matches_the_models(app):
    with app.app_context():
        current, head = migrate.state()
        assert current == head
        with db.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata
            )
    assert diff == [], f"models and migrations differ: run 'dhf db revision -m ...': {diff}"
