"""``dhf bench load``: public verifications and queued renders at the same time, on the
scale-out setup (PostgreSQL, Redis, S3) with render workers that share no folder.

A throwaway instance: a new database on the PostgreSQL server of ``pg_admin_url``
(created, migrated, dropped afterwards), the embedded Redis server, a SeaweedFS S3 server
on loopback (``webapp.seaweed``) and fresh keys, all in a temporary folder. One
tiny-profile avatar of the GRID speaker is trained by a ``dhf worker --burst`` process
(its consent and identity outcomes are set directly; the training inputs are the GRID
clips, as in the tests). Then ``renders`` renders are queued at once and ``workers``
``gpu`` worker processes, each with its own empty instance folder, work them off. As soon
as the first render is ready, ``verifications`` concurrent ``POST /api/v1/verify`` of that
render go to the web app (waitress, ``dhf serve``'s server in a thread, rate limits off)
while the other renders still run.

Reported: errors (renders not ready, verifications not 200 or not recognised as ours),
p50/p95 latencies, throughput, and the machine (CPU count, load average) the figures
belong to.
"""

from __future__ import annotations

import io
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

PG_ADMIN_URL = "postgresql+psycopg://postgres@localhost/postgres"
CLIPS = 6  # GRID clips of footage and voice takes: the tiny profile's diet (as the tests)
SCRIPT = "Welcome to our spring sale."
WORKER_SETTINGS = ("TRAINING_PROFILE", "VOICE_MIN_SAMPLES", "RENDER_MAX_WER", "RENDERS_PER_DAY")


def _stats(seconds: list[float]) -> dict[str, Any]:
    if not seconds:
        return {"n": 0}
    ordered = sorted(seconds)
    return {
        "n": len(ordered),
        "p50_s": round(float(np.percentile(ordered, 50)), 2),
        "p95_s": round(float(np.percentile(ordered, 95)), 2),
        "max_s": round(ordered[-1], 2),
    }


@contextmanager
def _database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on ``admin_url``'s server, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"dhf_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _worker(app: Any, instance: Path, secrets: Path) -> subprocess.Popen[bytes]:
    """``dhf worker --queues gpu --burst`` configured only by its environment, with its
    own instance folder; the signer files are deployed beside it (``secrets``)."""
    cfg = app.config
    env = dict(
        os.environ,
        DHF_INSTANCE_DIR=str(instance),
        DATABASE_URL=cfg["DATABASE_URL"],
        REDIS_URL=cfg["REDIS_URL"],
        DHF_SECRET_KEY=cfg["SECRET_KEY"],
        DHF_MASTER_KEYS=cfg["MASTER_KEYS"],
        DHF_WATERMARK_KEYS=cfg["WATERMARK_KEYS"],
        DHF_SIGNING_DIR=str(secrets),
        **{
            f"DHF_{k}": str(cfg[k])
            for k in ("STORAGE_URL", "S3_ENDPOINT", "S3_REGION", "S3_ACCESS_KEY", "S3_SECRET_KEY")
        },
        **{f"DHF_{k}": str(cfg[k]) for k in WORKER_SETTINGS},
    )
    return subprocess.Popen(
        [sys.executable, "-m", "webapp.cli", "worker", "--queues", "gpu", "--burst"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=open(instance.parent / f"{instance.name}.log", "wb"),  # noqa: SIM115
    )


def _trainable_avatar(work: Path, clips: list[Path], renders: int) -> tuple[str, str]:
    """An owner with verified identity, a consented subject, an avatar with its footage and
    voice takes (stored encrypted, marked checked), a paid training and render credits.
    Returns ``(owner_id, avatar_id)``. Needs an app context."""
    from compliance import media

    from . import accounts, identity
    from .billing import ledger
    from .consent import service as consent
    from .extensions import db
    from .models import Avatar, ConsentRecord, ConsentStatus, Order, SubjectStatus, Upload
    from .storage import store

    owner = accounts.signup("load@example.com", uuid.uuid4().hex)
    identity.start(owner)
    subject, _ = consent.create_subject(owner, "Bench Example", "self")
    record = db.session.query(ConsentRecord).filter_by(subject_id=subject.id).one()
    record.status, subject.status = ConsentStatus.VERIFIED, SubjectStatus.ACTIVE  # set directly
    avatar = Avatar(owner_id=owner.id, subject_id=subject.id, name="Bench")
    db.session.add(avatar)
    db.session.flush()
    footage = work / "footage.mp4"
    media.concat(clips, footage)
    sources: list[tuple[Path, str, str | None]] = [(footage, "training_video", None)]
    for clip in clips:
        wav = work / f"{clip.stem}.wav"
        media.write_wav(wav, media.audio(clip, 16000), 16000)
        sources.append((wav, "voice_sample", clip.with_suffix(".txt").read_text().strip()))
    for path, kind, text in sources:
        blob, size, sha = store(subject.id, io.BytesIO(path.read_bytes()))
        db.session.add(
            Upload(
                owner_id=owner.id,
                subject_id=subject.id,
                avatar_id=avatar.id,
                kind=kind,
                blob_id=blob,
                filename=path.name,
                size=size,
                sha256=sha,
                status="valid",
                text=text,
            )
        )
    training = Order(
        owner_id=owner.id,
        item="avatar_training",
        avatar_id=avatar.id,
        status="paid",
        amount_cents=1,
    )
    credits = Order(
        owner_id=owner.id,
        item="render_credits",
        status="paid",
        quantity=max(1, renders),
        amount_cents=1,
    )
    db.session.add_all([training, credits])
    db.session.flush()
    ledger.grant(credits)
    db.session.commit()
    return owner.id, avatar.id


def _wait_jobs(app: Any, ids: list[str], timeout: float, first: threading.Event) -> None:
    from .extensions import db
    from .models import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.app_context():
            states = [db.session.get(Job, i).status for i in ids]  # type: ignore[union-attr]
            db.session.remove()
        if "finished" in states:
            first.set()
        if all(s in ("finished", "failed", "canceled") for s in states):
            return
        time.sleep(0.5)


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() if a and b else None


def run(
    renders: int = 20,
    verifications: int = 50,
    workers: int = 2,
    pg_admin_url: str = PG_ADMIN_URL,
    clips: list[Path] | None = None,
    verify_queue_s: float | None = None,
    timeout_s: float = 3600.0,
) -> dict[str, Any]:
    """Everything above; returns the JSON ``dhf bench load`` prints."""
    from compliance.keys import init_keys
    from compliance.vault import new_master_key

    from . import create_app, migrate, seaweed
    from .bench_verify import _post
    from .cli.serve import _web_server
    from .extensions import db
    from .models import Avatar, Job, Render
    from .queue import embedded_redis_url, stop_embedded
    from .storage import vault
    from .studio import service

    if not clips:
        raise ValueError("no GRID clips to train on")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    result: dict[str, Any] = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
        },
        "setup": "PostgreSQL, embedded Redis, SeaweedFS on loopback; workers in own folders",
    }
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dhf-bench-load-")))
        server = stack.enter_context(seaweed.running(work / "seaweed"))
        url = stack.enter_context(_database(pg_admin_url))
        redis_url = embedded_redis_url(work / "redis.db")
        stack.callback(stop_embedded)
        previous = os.environ.get("DHF_INSTANCE_DIR")
        os.environ["DHF_INSTANCE_DIR"] = str(work / "web-instance")
        stack.callback(
            lambda: (
                os.environ.pop("DHF_INSTANCE_DIR", None)
                if previous is None
                else os.environ.__setitem__("DHF_INSTANCE_DIR", previous)
            )
        )
        app = create_app(
            {
                "DATABASE_URL": url,
                "REDIS_URL": redis_url,
                "SECRET_KEY": uuid.uuid4().hex,
                "MASTER_KEYS": new_master_key("bench"),
                "WATERMARK_KEYS": new_master_key("bench-wm"),
                "SIGNING_DIR": str(work / "keys"),
                "WORK_DIR": str(work / "web-work"),
                "RATELIMIT_ENABLED": False,
                "TRAINING_PROFILE": "tiny",
                "VOICE_MIN_SAMPLES": len(clips),
                "TRAINING_VIDEO_MIN_SECONDS": 2,
                "RENDER_MAX_WER": 1.0,  # the tiny clone is a toy: no render is held back
                "RENDERS_PER_DAY": max(50, renders),
                **({"VERIFY_QUEUE_S": verify_queue_s} if verify_queue_s is not None else {}),
                **server.config(prefix="bench"),
            }
        )
        ctx = app.app_context()
        ctx.push()
        stack.callback(ctx.pop)
        stack.callback(lambda: db.engine.dispose())
        stack.callback(db.session.remove)
        migrate.upgrade()
        init_keys(app.config["SIGNING_DIR"])
        owner_id, avatar_id = _trainable_avatar(work, clips, renders)
        folders = []
        for n in range(workers):
            secrets = work / f"gpu{n}-secrets"
            shutil.copytree(app.config["SIGNING_DIR"], secrets)
            folders.append((work / f"gpu{n}-instance", secrets))

        # the avatar, trained by one worker
        avatar = db.session.get(Avatar, avatar_id)
        assert avatar is not None
        training = service.start_training(avatar)
        began = time.perf_counter()
        _worker(app, *folders[0]).wait(timeout=timeout_s)
        db.session.expire_all()
        trained = db.session.get(Job, training.id)
        result["training"] = {
            "status": str(trained.status) if trained else None,
            "seconds": round(time.perf_counter() - began, 1),
        }
        if trained is None or trained.status != "finished":
            result["error"] = f"training did not finish: {trained and trained.error}"
            return result

        # renders queued at once, then the workers and, from the first render on, the
        # concurrent verifications of it
        owner = db.session.get(Avatar, avatar_id).owner  # type: ignore[union-attr]
        rows = [service.create_render(owner, avatar_id, SCRIPT, {}) for _ in range(renders)]
        db.session.commit()
        render_ids = [r.id for r in rows]
        job_ids = [j.id for j in db.session.query(Job).filter(Job.target_id.in_(render_ids)).all()]
        began = time.perf_counter()
        procs = [_worker(app, *folder) for folder in folders]
        first = threading.Event()
        watcher = threading.Thread(
            target=_wait_jobs, args=(app, job_ids, timeout_s, first), daemon=True
        )
        watcher.start()
        first.wait(timeout_s)
        db.session.expire_all()
        ready = next(
            r
            for r in (db.session.get(Render, i) for i in render_ids)
            if r is not None and r.output_blob_id
        )
        clip = work / "render.mp4"
        with clip.open("wb") as fh:
            for chunk in vault().open(avatar.subject_id, str(ready.output_blob_id)):
                fh.write(chunk)
        web = _web_server(app, "127.0.0.1", 0, 8)
        threading.Thread(target=web.run, daemon=True).start()
        verify_url = f"http://127.0.0.1:{web.effective_port}/api/v1/verify"
        try:
            _post(verify_url, clip)  # warms the verification fork server
            started = time.perf_counter()
            with ThreadPoolExecutor(verifications) as pool:
                answers = list(pool.map(lambda _: _post(verify_url, clip), range(verifications)))
            verify_wall = time.perf_counter() - started
            renders_done_during = sum(
                1
                for i in job_ids
                if (j := db.session.get(Job, i)) is not None and j.status == "finished"
            )
        finally:
            web.close()
        watcher.join(timeout_s)
        for proc in procs:
            proc.wait(timeout=60)
        render_wall = time.perf_counter() - began
        db.session.expire_all()
        jobs = [db.session.get(Job, i) for i in job_ids]
        finished = [j for j in jobs if j is not None and j.status == "finished"]
        statuses = [str(db.session.get(Render, i).status) for i in render_ids]  # type: ignore[union-attr]
        run_s = [_seconds(j.started_at, j.ended_at) for j in finished]
        wait_s = [_seconds(j.created_at, j.ended_at) for j in finished]
        result["renders"] = {
            "queued": renders,
            "workers": workers,
            "script": SCRIPT,
            "ready": statuses.count("ready"),
            "errors": renders - statuses.count("ready"),
            "statuses": sorted(set(statuses)),
            "clip_seconds": round(_duration(clip), 2),
            "queued_to_ready": _stats([s for s in wait_s if s is not None]),
            "one_render_run": _stats([s for s in run_s if s is not None]),
            "wall_s": round(render_wall, 1),
            "throughput_per_min": round(60 * len(finished) / render_wall, 2),
        }
        result["verifications"] = {
            "concurrent": verifications,
            "clip": "the first ready render",
            "config": {k: app.config[k] for k in ("VERIFY_CONCURRENCY", "VERIFY_QUEUE_S")},
            "errors": sum(1 for a in answers if a[1] != 200),
            "not_ours": sum(1 for a in answers if a[1] == 200 and a[2] != "ai_generated_by_us"),
            "answers": sorted({f"{a[1]} {a[2]}" for a in answers}),
            "latency": _stats([a[0] for a in answers]),
            "wall_s": round(verify_wall, 1),
            "throughput_per_s": round(verifications / verify_wall, 3),
            "renders_finished_meanwhile": renders_done_during,
        }
        result["worker_folders_left"] = sorted(
            str(p.relative_to(work))
            for instance, _ in folders
            for p in instance.rglob("*")
            if p.is_file()
        )
        result["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def _duration(path: Path) -> float:
    from compliance import media

    return float(media.probe(path).duration_s)
