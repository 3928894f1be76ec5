"""``dhf retention``: the retention schedule by hand (R24); the worker runs it daily."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from flask import Flask

from ..extensions import db
from . import main


def _with_app(body: Callable[[Flask], Any]) -> Any:
    from .. import create_app

    app = create_app()
    with app.app_context():
        try:
            return body(app)
        finally:
            db.session.remove()
            db.engine.dispose()


@main.group()
def retention() -> None:
    """Delete files past their retention, with deletion receipts in the audit log."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="Delete nothing; say what would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run_command(dry_run: bool, as_json: bool) -> None:
    """Delete every expired file not under a legal hold (an open report)."""
    from .. import retention as service

    summary = _with_app(lambda _app: service.run(dry_run=dry_run).as_json())
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    for kind in service.KINDS:
        deleted, held = summary["deleted"].get(kind, 0), summary["held"].get(kind, 0)
        if deleted or held:
            click.echo(f"{kind}: {verb} {deleted}, kept under a legal hold {held}")
    if not (summary["deleted"] or summary["held"]):
        click.echo("nothing has expired")


@retention.command("schedule")
def schedule_command() -> None:
    """Schedule the daily run on the cpu queue (once; a worker runs it at its hour)."""
    from .. import retention as service
    from ..queue import connect

    scheduled = _with_app(lambda app: service.schedule(connect(app.config["REDIS_URL"])))
    click.echo(f"scheduled {scheduled}" if scheduled else "already scheduled")
