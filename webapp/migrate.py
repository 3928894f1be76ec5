"""Schema migrations with Alembic, driven programmatically (``dhf db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask

from .extensions import db


class SchemaMissing(RuntimeError):
    """The database is not at the code's schema; the message says what to run."""


SCRIPTS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    return cfg


def upgrade(revision: str = "head") -> None:
    """Apply migrations up to ``revision`` in the current app's database.

    On SQLite, foreign keys are off while migrating: batch migrations rebuild tables,
    and dropping the old copy must not cascade into the rows that reference it.
    """
    with db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        with connection.begin():
            cfg = _config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def revision(message: str) -> None:
    """Autogenerate a new migration from the models (developers only)."""
    with db.engine.begin() as connection:
        cfg = _config()
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True)


def state() -> tuple[str | None, str]:
    """``(current, head)`` revisions of the current app's database."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    with db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current, str(head)


def ensure_schema(app: Flask) -> str:
    """Before serving: migrate the embedded default database (``migrated``), or refuse an
    external one that is not at head (:class:`SchemaMissing`); ``current`` when it is."""
    with app.app_context():
        current, head = state()
        if current == head:
            return "current"
        if not app.config["DATABASE_EMBEDDED"]:
            where = "has no schema" if current is None else f"is at {current}, not {head}"
            raise SchemaMissing(f"The database at DATABASE_URL {where}: run `dhf init`.")
        upgrade()
        if app.config["ENV"] == "development":
            from compliance.keys import init_keys

            init_keys(app.config["SIGNING_DIR"])
        return "migrated"
