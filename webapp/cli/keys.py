"""``dhf keys``: provenance signing keys."""

from __future__ import annotations

import click

from . import _app_context, main


@main.group()
def keys() -> None:
    """Provenance signing keys."""


@keys.command("init")
def keys_init() -> None:
    """Create a development CA and C2PA signer unless they exist."""
    from compliance.keys import init_keys

    with _app_context() as app:
        found, made = init_keys(app.config["SIGNING_DIR"])
    click.echo(("created" if made else "kept existing") + f" signing keys in {found.directory}")
