"""``dhf init`` and ``dhf doctor``: set up a fresh install, then check that it works."""

from __future__ import annotations

import json
import sys

import click

from . import _app_context, main


@main.command("init")
def init() -> None:
    """Everything a fresh development install needs: secrets, schema, signing keys."""
    from compliance.keys import init_keys

    from .. import migrate

    with _app_context() as app:
        migrate.upgrade()
        found, made = init_keys(app.config["SIGNING_DIR"])
    click.echo(
        f"database migrated; signing keys {'created' if made else 'present'} in {found.directory}"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--only", multiple=True, help="Run only the named check (repeatable).")
def doctor(as_json: bool, only: tuple[str, ...]) -> None:
    """Check database, Redis, ffmpeg, signing keys and every bundled model. Exit 0 if all pass."""
    from ..doctor import run_checks

    with _app_context():
        checks = run_checks(list(only) or None)
    ok = all(c.ok for c in checks)
    if as_json:
        click.echo(
            json.dumps({"ok": ok, "checks": {c.name: c.as_dict() for c in checks}}, indent=2)
        )
    else:
        for c in checks:
            mark = click.style("ok  ", fg="green") if c.ok else click.style("FAIL", fg="red")
            click.echo(f"{mark} {c.name:<26} {c.seconds:6.2f}s  {c.detail}")
    sys.exit(0 if ok else 1)
