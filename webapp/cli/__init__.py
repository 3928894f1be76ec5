"""The ``dhf`` command line: the root group ``main`` and what its commands share.

One module per command group (``database``, ``keys``, ``doctor``, ``verify``, ``quality``,
``audit``, ``serve``, ``admin``, ``jobs``); each registers on ``main`` when imported below.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import click
from flask import Flask

from .. import create_app
from ..extensions import db


@contextlib.contextmanager
def _app_context() -> Iterator[Flask]:
    """An app context for one command; closes its database connections afterwards."""
    app = create_app()
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """Digital Human Factory operator commands."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# Last: each module adds its commands to ``main`` (module names must not shadow ``db``).
from . import (  # noqa: E402, F401
    admin,
    audit,
    database,
    doctor,
    jobs,
    keys,
    quality,
    retention,
    serve,
    storage,
    verify,
)
