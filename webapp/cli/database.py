"""``dhf db``: database schema migrations."""

from __future__ import annotations

import sys

import click

from . import _app_context, main


@main.group("db")
def db_group() -> None:
    """Database schema migrations."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    from .. import migrate

    with _app_context():
        migrate.upgrade(revision)
        current, _ = migrate.state()
    click.echo(f"database at revision {current}")


@db_group.command("current")
def db_current() -> None:
    """Show the database's revision and the code's head."""
    from .. import migrate

    with _app_context():
        current, head = migrate.state()
    click.echo(f"database: {current}  code head: {head}")
    sys.exit(0 if current == head else 1)


@db_group.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message: str) -> None:
    """Autogenerate a migration from the models (developers)."""
    from .. import migrate

    with _app_context():
        migrate.revision(message)
