"""``dhf storage``: move the encrypted store from local files to S3, verified."""

from __future__ import annotations

import json
import sys

import click

from . import _app_context, main
from .quality import _emit, bench


@main.group()
def storage() -> None:
    """The object store of the encrypted files (local folder or S3)."""


@storage.command("migrate")
@click.option(
    "--from",
    "source_dir",
    type=click.Path(file_okay=False),
    help="The local store to copy (default: DHF_STORAGE_DIR).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def migrate_command(source_dir: str | None, as_json: bool) -> None:
    """Copy the local store to the S3 store of DHF_STORAGE_URL and verify every object by
    its SHA-256 (read back from S3). Run it again to resume; exit 0 only if all verified."""
    from compliance.blobstore import LocalStore

    from ..storage import make_store, migrate

    with _app_context() as app:
        if not app.config["STORAGE_URL"]:
            raise click.UsageError(
                "set DHF_STORAGE_URL=s3://bucket/prefix (and DHF_S3_*) to the target first"
            )
        source = LocalStore(source_dir or app.config["STORAGE_DIR"])
        if not source.root.is_dir():
            raise click.UsageError(f"no local store at {source.root}: pass --from DIR")
        report = migrate(source, make_store(app.config)).as_json()
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(
            f"{report['source']} -> {report['target']}: {report['copied']} copied, "
            f"{report['present']} already there, {report['verified']} verified "
            f"({report['bytes']} bytes)"
        )
        for key in report["mismatched"]:
            click.echo(f"MISMATCH {key}: the copy's SHA-256 differs; run again", err=True)
    sys.exit(0 if report["ok"] else 1)


@bench.command("storage")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the JSON here.")
def bench_storage(as_json: bool, out: str | None) -> None:
    """Put/get of 1 MB and 50 MB encrypted objects: local disk vs SeaweedFS on loopback."""
    from ..storage_bench import bench as run_bench

    _emit(run_bench(), out, as_json)
