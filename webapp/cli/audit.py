"""``dhf audit``: the hash-chained audit log."""

from __future__ import annotations

import json
import sys

import click

from . import _app_context, main


@main.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True)
def audit_verify(as_json: bool) -> None:
    """Recompute the chain; exit 1 if any row was edited, deleted or inserted."""
    from ..audit import verify_log

    with _app_context():
        report = verify_log()
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "rows": report.rows, "problems": report.problems}))
    elif report.ok:
        click.echo(f"audit log intact: {report.rows} rows")
    else:
        click.echo(f"audit log BROKEN ({len(report.problems)} problems in {report.rows} rows):")
        for problem in report.problems:
            click.echo(f"  {problem}")
    sys.exit(0 if report.ok else 1)
