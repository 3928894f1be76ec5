"""``dhf serve`` and ``dhf worker``: the web server and the RQ worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import click
from flask import Flask

from .. import create_app
from . import main


@main.command()
@click.option("--queues", default="gpu,cpu", show_default=True, help="Comma-separated queues.")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
def worker(queues: str, burst: bool) -> None:
    """Run an RQ worker for QUEUES (jobs run in a forked child, one at a time)."""
    from rq import Worker

    from .. import jobs
    from ..queue import connect, queue

    app = create_app()
    jobs.use_app(app)
    connection = connect(app.config["REDIS_URL"])
    names = [n.strip() for n in queues.split(",") if n.strip()]
    qs = [queue(n, connection) for n in names]
    click.echo(f"worker on {', '.join(names)} at {app.config['REDIS_URL']}")
    with app.app_context():
        from ..retention import on_worker_start

        on_worker_start(connection, names)  # the daily retention run (R24)
    Worker(qs, connection=connection).work(burst=burst, with_scheduler=True)


def _ensure_schema(app: Flask) -> None:
    """Embedded defaults migrate themselves; an external database must be initialised."""
    from .. import migrate

    try:
        if migrate.ensure_schema(app) == "migrated":
            click.echo("database migrated (embedded defaults)")
    except migrate.SchemaMissing as exc:
        raise click.ClickException(str(exc)) from None


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

    from ..errors import _HTTP_CODES

    class JsonErrorTask(ErrorTask):
        def execute(self) -> None:
            if not (getattr(self.request, "path", "") or "").startswith("/api/"):
                return super().execute()
            error = self.request.error
            code, message = _HTTP_CODES.get(error.code, ("error", error.reason))
            body = _json.dumps({"error": code, "message": message}).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class JsonErrorChannel(HTTPChannel):
        error_task_class = JsonErrorTask

    return JsonErrorChannel


def _web_server(app: Flask, host: str, port: int, threads: int):
    """waitress refusing bodies over the largest per-route limit before spooling them.

    waitress drops every ``X-Forwarded-*`` header unless told otherwise, so behind
    ``DHF_TRUSTED_PROXIES`` proxies it must pass them on: the app's ``ProxyFix`` then
    believes exactly that many hops (``webapp/security.py``). With none, waitress keeps
    dropping them."""
    from waitress import create_server

    from ..bodylimit import server_limit

    server = create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=server_limit(app.config) + 1,
        clear_untrusted_proxy_headers=int(app.config["TRUSTED_PROXIES"]) == 0,
    )
    server.channel_class = _json_error_channel()
    return server


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option("--threads", default=8, show_default=True, type=int, help="Web server threads.")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the web app (waitress) and run worker processes for both queues."""
    from ..queue import stop_embedded

    # SIGTERM (systemd, docker, kill) stops like Ctrl-C: workers finish, Redis shuts down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = create_app()  # starts the embedded Redis when REDIS_URL is unset
    _ensure_schema(app)
    env = dict(os.environ, REDIS_URL=app.config["REDIS_URL"], DHF_INSTANCE_DIR=app.instance_path)
    cmd = [sys.executable, "-m", "webapp.cli", "worker", "--queues", "gpu,cpu"]  # __main__.py
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
