"""Schema migrations with Alembic, driven programmatically (``dhf db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .extensions import db

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
