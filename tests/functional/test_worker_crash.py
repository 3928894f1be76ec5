"""A worker killed in the middle of training: the restarted worker finishes the job once.

The job runs in a real ``dhf worker`` process (RQ forks a work-horse for it). We kill the
whole process group with SIGKILL while the voice stage runs, let RQ's own maintenance
notice the abandoned job (its heartbeat lapses after at most 90 s; we move the clock
instead of waiting) and start a new worker. The retry skips the stages that had
finished, redoes the interrupted one, and the avatar ends up with exactly one model.

Storage is S3 (the session's SeaweedFS): afterwards no multipart upload is left open,
every object under the person's prefix is named by a row of the database (the killed
attempt published nothing), each is whole (its bytes match our hash in its metadata) and
ciphertext, and no plaintext stays on disk.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from webapp.extensions import db
from webapp.models import AuditEvent, Avatar, Job
from webapp.queue import connect
from webapp.studio import service

from .. import factories
from ..conftest import SHARED_DATA
from . import s3check

pytestmark = pytest.mark.slow
CLIPS = 6


def _worker(app):  # type: ignore[no-untyped-def]
    return factories.worker_process(
        app, "gpu", TRAINING_PROFILE="tiny", VOICE_MIN_SAMPLES=str(CLIPS)
    )


def _children(pid: int) -> list[int]:
    """Child processes of ``pid`` (RQ's work-horse runs in its own session)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _wait(app, job_id: str, until, timeout: float = 600) -> Job:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        with app.app_context():
            job = db.session.get(Job, job_id)
            if until(job):
                return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} stuck at {job.status} {job.stage}")


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # one backend: ~90 s each
def test_killed_training_resumes_and_completes_once(make_app, s3_config, seaweed, tmp_path):
    if not (SHARED_DATA / "grid_s1").exists():
        pytest.skip("shared data missing")
    app = make_app(
        **s3_config,
        TRAINING_PROFILE="tiny",
        VOICE_MIN_SAMPLES=CLIPS,
        WORK_DIR=str(tmp_path / "work"),
    )
    clips = sorted((SHARED_DATA / "grid_s1" / "train").glob("*.mpg"))[:CLIPS]
    with app.app_context():
        _, avatar, _ = factories.trainable_avatar(factories.user(), tmp_path, clips)
        job_id, avatar_id = service.start_training(avatar).id, avatar.id

    first = _worker(app)
    try:
        _wait(app, job_id, lambda j: j.stage.startswith("voice"))
    finally:
        for pid in [*_children(first.pid), first.pid]:  # the work-horse, then the worker
            os.kill(pid, signal.SIGKILL)
        first.wait()
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert (job.status, job.attempts) == ("started", 1)
    work = tmp_path / "work" / job_id
    assert (work / "sources.done").exists() and (work / "face.done").exists()
    assert not (work / "voice.done").exists()

    # What RQ's maintenance does once the dead worker's heartbeat has lapsed (<= 90 s):
    # the abandoned job is retried, i.e. scheduled after its retry interval; then what
    # the scheduler does when that interval is over (the dead worker still holds the
    # scheduler lock until it expires, so we do not wait for a new scheduler either).
    conn = connect(app.config["REDIS_URL"])
    StartedJobRegistry("gpu", connection=conn).cleanup(timestamp=time.time() + 3600)
    scheduled = ScheduledJobRegistry("gpu", connection=conn)
    assert scheduled.get_job_ids() == [job_id]
    scheduled.requeue(job_id)
    second = _worker(app)
    try:
        job = _wait(app, job_id, lambda j: j.status in ("finished", "failed"))
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)
    assert (job.status, job.attempts, job.error) == ("finished", 2, None)
    with app.app_context():
        avatar = db.session.get(Avatar, avatar_id)
        assert avatar.status == "ready" and avatar.model_blob_id
        finished = [
            e
            for e in db.session.query(AuditEvent).filter_by(tag="job:finished")
            if e.data.get("avatar") == avatar_id
        ]
        assert len(finished) == 1  # one model, recorded once
        referenced = s3check.referenced_blobs()
        subject_id, model = avatar.subject_id, avatar.model_blob_id
    assert not work.exists()  # plaintext intermediates removed after the model was stored

    # S3: nothing half-written, nothing unpublished, nothing open, nothing in plaintext
    prefix = s3check.prefix_of(s3_config)
    assert s3check.open_uploads(seaweed, prefix) == []
    stored = s3check.objects(seaweed, prefix)
    blobs = {k.rsplit("/", 1)[1] for k in stored if k.startswith(f"blobs/{subject_id}/")}
    assert model in blobs and blobs <= referenced, blobs - referenced
    assert set(stored) == {f"keys/{subject_id}.key"} | {f"blobs/{subject_id}/{b}" for b in blobs}
    s3check.assert_hashes_match(seaweed, prefix, stored)
    s3check.assert_ciphertext_only(stored, [c.read_bytes() for c in clips])
    assert not (tmp_path / "storage").exists()
