"""Operator commands for jobs: ``dhf jobs``, ``dhf avatar train``, ``dhf render``."""

from __future__ import annotations

import json
import threading
from typing import Any, TypedDict

import click
from flask import Flask

from ..extensions import db
from ..models import JobStatus, RenderStatus
from ..ownership import get_referenced
from . import _app_context, main


class _JobRow(TypedDict):
    id: str
    kind: str
    queue: str
    target: str
    status: str
    progress: float
    stage: str
    attempts: int
    created_at: str
    error: str | None


@main.command("jobs")
@click.option("--limit", default=30, show_default=True)
@click.option("--status", default=None, help="Only jobs in this status (queued, started, ...).")
@click.option("--json", "as_json", is_flag=True)
def jobs_cmd(limit: int, status: str | None, as_json: bool) -> None:
    """The latest jobs, newest first."""
    from sqlalchemy import select

    from ..models import Job

    with _app_context():
        query = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if status:
            query = query.where(Job.status == status)
        rows: list[_JobRow] = [
            {
                "id": j.id,
                "kind": j.kind,
                "queue": j.queue,
                "target": j.target_id,
                "status": j.status,
                "progress": j.progress,
                "stage": j.stage,
                "attempts": j.attempts,
                "created_at": j.created_at.isoformat(),
                "error": j.error,
            }
            for j in db.session.scalars(query)
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(
            f"{r['created_at'][:19]}  {r['id']}  {r['kind']:<13} {r['status']:<9} "
            f"{r['progress'] * 100:5.1f}%  {r['stage']}"
        )
        if r["error"] and r["status"] in ("failed", "canceled"):
            click.echo(f"    {r['error']}")


def _run_inline(app: Flask, task: str, job_id: str, label: str) -> dict[str, object]:
    """Run a job function in this process (thread) with a progress bar from its row."""
    from .. import jobs
    from ..models import Job

    fn = jobs.kind(task).func
    results: list[dict[str, Any]] = []
    errors: list[Exception] = []

    def work() -> None:
        with app.app_context():
            try:
                results.append(fn(job_id))
            except Exception as exc:  # reported below, after the bar
                errors.append(exc)
            finally:
                db.session.remove()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    with click.progressbar(length=1000, label=label, show_percent=True) as bar:
        done = 0
        while thread.is_alive():
            thread.join(1.0)
            db.session.expire_all()
            row = get_referenced(Job, job_id)
            bar.label = f"{label}: {row.stage[:48]:<48}"
            bar.update(int(row.progress * 1000) - done)
            done = int(row.progress * 1000)
    row = get_referenced(Job, job_id)
    if errors or row.status != JobStatus.FINISHED:
        error = row.error or (errors[0] if errors else None)
        raise click.ClickException(f"{task} {row.status}: {error}")
    return dict(results[0]) if results else {}


@main.group()
def avatar() -> None:
    """Operator commands for avatars."""


@avatar.command("train")
@click.argument("avatar_id")
@click.option(
    "--profile",
    type=click.Choice(["tiny", "cpu", "gpu"]),
    default=None,
    help="Default: the configured TRAINING_PROFILE.",
)
@click.option("--waive-payment", is_flag=True, help="Train without a paid order (audited).")
def avatar_train(avatar_id: str, profile: str | None, waive_payment: bool) -> None:
    """Train AVATAR_ID here and now (KYC and consent are still checked at every stage)."""
    from compliance.audit import EventTag

    from ..audit import record_event
    from ..models import Avatar
    from ..studio import service

    with _app_context() as app:
        if profile:
            app.config["TRAINING_PROFILE"] = profile
        row = db.session.get(Avatar, avatar_id)
        if row is None:
            raise click.ClickException(f"no avatar {avatar_id}")
        job = service.start_training(row, waive_payment=waive_payment, enqueue=False)
        if waive_payment:
            record_event(
                EventTag.ADMIN_ACTION,
                data={"action": "training_payment_waived", "avatar": avatar_id, "job": job.id},
            )
            db.session.commit()
        result = _run_inline(app, "train_avatar", job.id, "training")
    click.echo(json.dumps(result, indent=2))


@main.command("render")
@click.argument("avatar_id")
@click.option("--text", required=True, help="The script to speak.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False))
@click.option("--background", default="original", help="'original' or a colour like #1e90ff.")
@click.option("--tone", default="natural")
def render_cmd(avatar_id: str, text: str, out: str, background: str, tone: str) -> None:
    """Render TEXT with AVATAR_ID into OUT: moderated, consent-checked, labelled, stamped."""
    from ..models import Avatar, Render, User
    from ..storage import vault
    from ..studio import service

    with _app_context() as app:
        row = db.session.get(Avatar, avatar_id)
        if row is None:
            raise click.ClickException(f"no avatar {avatar_id}")
        owner = get_referenced(User, row.owner_id)
        try:
            render = service.create_render(
                owner, avatar_id, text, {"background": background, "tone": tone}, enqueue=False
            )
        except Exception as exc:
            raise click.ClickException(getattr(exc, "message", str(exc))) from None
        job = service.latest_job(render.id)
        if job is None:
            raise click.ClickException(f"render {render.id} has no job to run")
        result = _run_inline(app, "render", job.id, "rendering")
        render = get_referenced(Render, render.id)
        if render.status != RenderStatus.READY or render.output_blob_id is None:
            raise click.ClickException(f"render {render.status}: {json.dumps(result)}")
        vault().export(row.subject_id, render.output_blob_id, out)
    click.echo(json.dumps({**result, "out": out}, indent=2))
