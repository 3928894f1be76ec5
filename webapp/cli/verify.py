"""``dhf verify FILE``: the public verifier from the command line."""

from __future__ import annotations

import json

import click

from . import _app_context, main


@main.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def verify_cmd(file: str, as_json: bool) -> None:
    """Check FILE for our C2PA manifest, AIGC label and watermark; resolve it in the registry."""
    from ..registry import verify_path

    with _app_context():
        result = verify_path(file)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        wm = result["watermark"]
        click.echo(f"verdict: {result['verdict']}")
        click.echo(f"c2pa: {(result['c2pa'] or {}).get('state', 'none')}")
        click.echo(
            f"watermark: {'found' if wm['found'] else 'not found'} (p <= {wm['p_value']:.1e})"
        )
        if result["content"]:
            content = result["content"]
            click.echo(f"content: {content['content_id']} consent {content['consent_status']}")
