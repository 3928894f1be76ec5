"""The ``dhf`` command line: serve, worker, db, keys, doctor, audit."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import click
from flask import Flask

from . import create_app
from .extensions import db


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


# -- database -------------------------------------------------------------------------
@main.group("db")
def db_group() -> None:
    """Database schema migrations."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    from . import migrate

    with _app_context():
        migrate.upgrade(revision)
        current, _ = migrate.state()
    click.echo(f"database at revision {current}")


@db_group.command("current")
def db_current() -> None:
    """Show the database's revision and the code's head."""
    from . import migrate

    with _app_context():
        current, head = migrate.state()
    click.echo(f"database: {current}  code head: {head}")
    sys.exit(0 if current == head else 1)


@db_group.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message: str) -> None:
    """Autogenerate a migration from the models (developers)."""
    from . import migrate

    with _app_context():
        migrate.revision(message)


# -- keys -----------------------------------------------------------------------------
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


@main.command("init")
def init() -> None:
    """Everything a fresh development install needs: secrets, schema, signing keys."""
    from compliance.keys import init_keys

    from . import migrate

    with _app_context() as app:
        migrate.upgrade()
        found, made = init_keys(app.config["SIGNING_DIR"])
    click.echo(
        f"database migrated; signing keys {'created' if made else 'present'} in {found.directory}"
    )


# -- diagnostics ----------------------------------------------------------------------
def _ensure_schema(app: Flask) -> None:
    """Embedded defaults migrate themselves; an external database must be initialised."""
    from . import migrate

    try:
        if migrate.ensure_schema(app) == "migrated":
            click.echo("database migrated (embedded defaults)")
    except migrate.SchemaMissing as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--only", multiple=True, help="Run only the named check (repeatable).")
def doctor(as_json: bool, only: tuple[str, ...]) -> None:
    """Check database, Redis, ffmpeg, signing keys and every bundled model. Exit 0 if all pass."""
    from .doctor import run_checks

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


@main.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def verify_cmd(file: str, as_json: bool) -> None:
    """Check FILE for our C2PA manifest, AIGC label and watermark; resolve it in the registry."""
    from .registry import verify_path

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


@main.group()
def bench() -> None:
    """Benchmarks; each prints JSON."""


@main.group("eval")
def eval_group() -> None:
    """Quality evaluation (DESIGN.md protocol): train on train/, score on heldout/; JSON."""


def _shared_data(*parts: str) -> Path:
    """A folder of ../shared/data beside the project (the default for eval and bench)."""
    return Path.cwd().parent.joinpath("shared", "data", *parts)


def _emit(result: dict[str, object], out: str | None) -> None:
    """Print a result as JSON and, with --out, also write it to a file."""
    text = json.dumps(result, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    click.echo(text)


def _eval_options(data: str):  # type: ignore[no-untyped-def]
    """--train/--heldout/--profile/--json/--out shared by every ``dhf eval`` command."""

    def wrap(f):  # type: ignore[no-untyped-def]
        for option in reversed(
            [
                click.option("--train", default=None, help=f"Default: ../shared/data/{data}/train"),
                click.option(
                    "--heldout", default=None, help=f"Default: ../shared/data/{data}/heldout"
                ),
                click.option(
                    "--profile",
                    type=click.Choice(["tiny", "cpu", "gpu"]),
                    default="cpu",
                    show_default=True,
                ),
                click.option("--json", "as_json", is_flag=True, help="Print JSON (the default)."),
                click.option("--out", default=None, help="Also write the JSON to this file."),
            ]
        ):
            f = option(f)
        return f

    return wrap


@eval_group.command("voice")
@_eval_options("voice_slt")
def eval_voice(
    train: str | None, heldout: str | None, profile: str, as_json: bool, out: str | None
) -> None:
    """Train a cloned voice on train/, synthesise every heldout/ sentence, score it."""
    from pipeline.voice.evaluate import evaluate

    train_dir = Path(train) if train else _shared_data("voice_slt", "train")
    heldout_dir = Path(heldout) if heldout else _shared_data("voice_slt", "heldout")
    _emit(evaluate(train_dir, heldout_dir, profile=profile), out)


@eval_group.command("face")
@_eval_options("grid_s1")
def eval_face(
    train: str | None, heldout: str | None, profile: str, as_json: bool, out: str | None
) -> None:
    """Train a face model on train/ clips, render each heldout/ clip from its real audio, score."""
    from pipeline.face.evaluate import evaluate

    train_dir = Path(train) if train else _shared_data("grid_s1", "train")
    heldout_dir = Path(heldout) if heldout else _shared_data("grid_s1", "heldout")
    _emit(evaluate(train_dir, heldout_dir, profile=profile), out)


@bench.command("voice")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default output too).")
@click.option("--profiles", default="tiny,cpu", show_default=True)
@click.option("--out", default=None, help="Also write the JSON to this file.")
def bench_voice(as_json: bool, profiles: str, out: str | None) -> None:
    """Voice training time per profile and synthesis speed (real-time factor)."""
    from pipeline.voice.bench import bench as run_bench

    _emit(run_bench(_shared_data("voice_slt"), profiles=profiles.split(",")), out)


@bench.command("render")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default output too).")
@click.option("--seconds", default=10.0, show_default=True, help="Length of the script audio.")
@click.option("--size", default=512, show_default=True, help="Output frame size (square).")
@click.option("--profile", type=click.Choice(["tiny", "cpu", "gpu"]), default="cpu")
@click.option("--out", default=None, help="Also write the JSON to this file.")
def bench_render(as_json: bool, seconds: float, size: int, profile: str, out: str | None) -> None:
    """Render frames per second, per stage (face model, blend, composite, watermark, encode)."""
    from pipeline.face.bench import bench as run_bench

    _emit(run_bench(_shared_data("grid_s1"), seconds=seconds, size=size, profile=profile), out)


@bench.command("watermark")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default output too).")
@click.option(
    "--clips", default=6, show_default=True, help="GRID clips joined into the test video."
)
@click.option(
    "--data", default=None, help="Folder of .mpg clips (default: ../shared/data/grid_s1/train)."
)
def bench_watermark(as_json: bool, clips: int, data: str | None) -> None:
    """Robustness matrix of the video and audio watermark on a real clip."""
    from compliance.bench import watermark_matrix

    from .registry import compliance_settings

    folder = Path(data) if data else Path.cwd().parent / "shared" / "data" / "grid_s1" / "train"
    sources = sorted(folder.glob("*.mpg"))[:clips]
    if not sources:
        raise click.UsageError(f"no .mpg clips in {folder}: pass --data")
    with _app_context() as app:
        from compliance.keys import init_keys

        init_keys(app.config["SIGNING_DIR"])
        result = watermark_matrix(sources, compliance_settings())
    click.echo(json.dumps(result, indent=2))


@bench.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default output too).")
@click.option("--concurrent", default=50, show_default=True, help="Normal verifications at once.")
@click.option("--clips", default=4, show_default=True, help="GRID clips joined (cut to 10 s).")
@click.option("--out", default=None, help="Also write the JSON to this file.")
def bench_verify(as_json: bool, concurrent: int, clips: int, out: str | None) -> None:
    """p50/p95 of concurrent public verifications, alone and with hostile files in flight."""
    from .bench_verify import run

    sources = sorted(_shared_data("grid_s1", "train").glob("*.mpg"))[:clips]
    if not sources:
        raise click.UsageError("no GRID clips in ../shared/data/grid_s1/train")
    app = create_app({"RATELIMIT_ENABLED": False})
    with app.app_context():
        result = run(app, sources, concurrent)
    _emit(result, out)


@main.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True)
def audit_verify(as_json: bool) -> None:
    """Recompute the chain; exit 1 if any row was edited, deleted or inserted."""
    from .audit import verify_log

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


# -- processes ------------------------------------------------------------------------
@main.command()
@click.option("--queues", default="gpu,cpu", show_default=True, help="Comma-separated queues.")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
def worker(queues: str, burst: bool) -> None:
    """Run an RQ worker for QUEUES (jobs run in a forked child, one at a time)."""
    from rq import Worker

    from webapp.queue import connect, queue

    from . import jobs

    app = create_app()
    jobs.use_app(app)
    connection = connect(app.config["REDIS_URL"])
    names = [n.strip() for n in queues.split(",") if n.strip()]
    qs = [queue(n, connection) for n in names]
    click.echo(f"worker on {', '.join(names)} at {app.config['REDIS_URL']}")
    with app.app_context():
        from .retention import on_worker_start

        on_worker_start(connection, names)  # the daily retention run (R24)
    Worker(qs, connection=connection).work(burst=burst, with_scheduler=True)


def _supervise(cmd: list[str], env: dict[str, str], stop: threading.Event) -> None:
    """Keep one worker process alive until ``stop`` is set; restart it if it dies."""
    proc = subprocess.Popen(cmd, env=env)
    while not stop.is_set():
        if proc.poll() is not None:
            click.echo(f"worker exited with {proc.returncode}; restarting in 2 s", err=True)
            time.sleep(2)
            proc = subprocess.Popen(cmd, env=env)
        stop.wait(1)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _json_error_channel() -> type:
    """A waitress channel whose own errors (413 before buffering, 400) under ``/api`` are the
    JSON envelope of ``webapp.errors`` rather than waitress's text/plain page."""
    import json as _json

    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    from .errors import _HTTP_CODES

    class JsonErrorTask(ErrorTask):  # type: ignore[misc]
        def execute(self) -> None:
            if not (getattr(self.request, "path", "") or "").startswith("/api/"):
                return super().execute()  # type: ignore[no-any-return]
            error = self.request.error
            code, message = _HTTP_CODES.get(error.code, ("error", error.reason))
            body = _json.dumps({"error": code, "message": message}).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class JsonErrorChannel(HTTPChannel):  # type: ignore[misc]
        error_task_class = JsonErrorTask

    return JsonErrorChannel


def _web_server(app: Flask, host: str, port: int, threads: int):  # type: ignore[no-untyped-def]
    """waitress refusing bodies over the largest per-route limit before spooling them."""
    from waitress import create_server

    from .bodylimit import server_limit

    server = create_server(app, host=host, port=port, threads=threads,
                           max_request_body_size=server_limit(app.config) + 1)  # fmt: skip
    server.channel_class = _json_error_channel()
    return server


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option("--threads", default=8, show_default=True, type=int, help="Web server threads.")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the web app (waitress) and run worker processes for both queues."""
    from webapp.queue import stop_embedded

    # SIGTERM (systemd, docker, kill) stops like Ctrl-C: workers finish, Redis shuts down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = create_app()  # starts the embedded Redis when REDIS_URL is unset
    _ensure_schema(app)
    env = dict(os.environ, REDIS_URL=app.config["REDIS_URL"], DHF_INSTANCE_DIR=app.instance_path)
    cmd = [sys.executable, "-m", "webapp.cli", "worker", "--queues", "gpu,cpu"]
    stop = threading.Event()
    supervisors = [
        threading.Thread(target=_supervise, args=(cmd, env, stop), daemon=True)
        for _ in range(workers)
    ]
    for thread in supervisors:
        thread.start()
    banner = " (TEST MODE: development providers)" if app.config["TEST_MODE"] else ""
    click.echo(f"Digital Human Factory on http://{host}:{port}{banner}; Ctrl-C stops")
    try:
        _web_server(app, host, port, threads).run()
    finally:
        stop.set()
        for thread in supervisors:
            thread.join(timeout=25)
        stop_embedded()


# -- administrators -------------------------------------------------------------------
@main.group("admin")
def admin_group() -> None:
    """Administrator accounts."""


@admin_group.command("grant")
@click.argument("email")
def admin_grant(email: str) -> None:
    """Make the account EMAIL an administrator (KYC review, protected gallery)."""
    from sqlalchemy import func, select

    from compliance.audit import EventTag

    from .audit import record_event
    from .models import User

    with _app_context():
        user = db.session.scalar(select(User).where(func.lower(User.email) == email.lower()))
        if user is None:
            raise click.ClickException(f"no account with the email {email}: sign up first")
        user.is_admin = True
        record_event(EventTag.ADMIN_ACTION, data={"action": "admin_grant", "user": user.id})
        db.session.commit()
    click.echo(f"{email} is now an administrator")


# -- operator commands: jobs, training and rendering ------------------------------------


@main.command("jobs")
@click.option("--limit", default=30, show_default=True)
@click.option("--status", default=None, help="Only jobs in this status (queued, started, ...).")
@click.option("--json", "as_json", is_flag=True)
def jobs_cmd(limit: int, status: str | None, as_json: bool) -> None:
    """The latest jobs, newest first."""
    from sqlalchemy import select

    from .models import Job

    with _app_context():
        query = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if status:
            query = query.where(Job.status == status)
        rows = [{"id": j.id, "kind": j.kind, "queue": j.queue, "target": j.target_id,
                 "status": j.status, "progress": j.progress, "stage": j.stage,
                 "attempts": j.attempts, "created_at": j.created_at.isoformat(),
                 "error": j.error} for j in db.session.scalars(query)]  # fmt: skip
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['created_at'][:19]}  {r['id']}  {r['kind']:<13} {r['status']:<9} "
                   f"{r['progress'] * 100:5.1f}%  {r['stage']}")  # fmt: skip
        if r["error"] and r["status"] in ("failed", "canceled"):
            click.echo(f"    {r['error']}")


def _run_inline(app: Flask, task: str, job_id: str, label: str) -> dict[str, object]:
    """Run a job function in this process (thread) with a progress bar from its row."""
    from . import jobs
    from .models import Job

    fn = jobs.kind(task).func
    outcome: dict[str, object] = {}

    def work() -> None:
        with app.app_context():
            try:
                outcome["result"] = fn(job_id)
            except Exception as exc:  # reported below, after the bar
                outcome["error"] = exc
            finally:
                db.session.remove()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    with click.progressbar(length=1000, label=label, show_percent=True) as bar:
        done = 0
        while thread.is_alive():
            thread.join(1.0)
            db.session.expire_all()
            row = db.session.get(Job, job_id)
            bar.label = f"{label}: {row.stage[:48]:<48}"
            bar.update(int(row.progress * 1000) - done)
            done = int(row.progress * 1000)
    row = db.session.get(Job, job_id)
    if "error" in outcome or row.status not in ("finished",):
        raise click.ClickException(f"{task} {row.status}: {row.error or outcome.get('error')}")
    return dict(outcome.get("result") or {})


@main.group()
def avatar() -> None:
    """Operator commands for avatars."""


@avatar.command("train")
@click.argument("avatar_id")
@click.option("--profile", type=click.Choice(["tiny", "cpu", "gpu"]), default=None,
              help="Default: the configured TRAINING_PROFILE.")  # fmt: skip
@click.option("--waive-payment", is_flag=True, help="Train without a paid order (audited).")
def avatar_train(avatar_id: str, profile: str | None, waive_payment: bool) -> None:
    """Train AVATAR_ID here and now (KYC and consent are still checked at every stage)."""
    from compliance.audit import EventTag

    from .audit import record_event
    from .models import Avatar
    from .studio import service

    with _app_context() as app:
        if profile:
            app.config["TRAINING_PROFILE"] = profile
        row = db.session.get(Avatar, avatar_id)
        if row is None:
            raise click.ClickException(f"no avatar {avatar_id}")
        job = service.start_training(row, waive_payment=waive_payment, enqueue=False)
        if waive_payment:
            record_event(EventTag.ADMIN_ACTION,
                         data={"action": "training_payment_waived", "avatar": avatar_id,
                               "job": job.id})  # fmt: skip
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
    from .models import Avatar, Render, User
    from .storage import vault
    from .studio import service

    with _app_context() as app:
        row = db.session.get(Avatar, avatar_id)
        if row is None:
            raise click.ClickException(f"no avatar {avatar_id}")
        owner = db.session.get(User, row.owner_id)
        try:
            render = service.create_render(owner, avatar_id, text,
                                           {"background": background, "tone": tone},
                                           enqueue=False)  # fmt: skip
        except Exception as exc:
            raise click.ClickException(getattr(exc, "message", str(exc))) from None
        result = _run_inline(app, "render", service.latest_job(render.id).id, "rendering")
        render = db.session.get(Render, render.id)
        if render.status != "ready":
            raise click.ClickException(f"render {render.status}: {json.dumps(result)}")
        vault().export(row.subject_id, render.output_blob_id, out)
    click.echo(json.dumps({**result, "out": out}, indent=2))


def _register_groups() -> None:
    from .retention_cli import retention

    main.add_command(retention)


_register_groups()

if __name__ == "__main__":  # last: every command above is defined (`dhf serve` runs workers so)
    main()
