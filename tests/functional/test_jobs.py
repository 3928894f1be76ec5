"""A job enqueued through the app runs on a real worker; its progress and result land in
the database. Covers enqueue-after-commit, duplicates, failures and a worker process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job as RqJob

from webapp.extensions import db
from webapp.models import Job, Upload
from webapp.queue import JobSpec, connect, enqueue_after_commit

from .. import factories
from ..conftest import REPO


def _upload(app, client, path):
    with app.app_context():
        owner = factories.user()
        headers, avatar_id = factories.token_for(owner), factories.avatar(owner).id
    with open(path, "rb") as fh:
        res = client.post(
            f"/api/v1/avatars/{avatar_id}/training-video",
            headers=headers,
            data={"video": (fh, "clip.mpg")},
        )
    assert res.status_code == 202, res.json
    return headers, res.json


def test_probe_job_runs_on_a_real_worker(app, client, grid_clip):
    headers, body = _upload(app, client, grid_clip)
    conn = connect(app.config["REDIS_URL"])
    cpu = Queue("cpu", connection=conn)
    assert cpu.job_ids == [body["job_id"]]  # enqueued after the commit, on the cpu queue

    with app.app_context():
        SimpleWorker([cpu], connection=conn).work(burst=True)

    res = client.get(f"/api/v1/jobs/{body['job_id']}", headers=headers)
    assert res.json["status"] == "finished"
    assert res.json["progress"] == 1.0
    assert res.json["result"] == {"upload_id": body["upload_id"], "status": "valid", "reasons": []}
    with app.app_context():
        upload = db.session.get(Upload, body["upload_id"])
        job = db.session.get(Job, body["job_id"])
        assert upload.status == "valid"
        assert upload.info["duration_s"] == pytest.approx(3.0, abs=0.1)
        assert (upload.info["fps"], upload.info["width"], upload.info["height"]) == (25.0, 360, 288)
        assert job.attempts == 1 and job.active_key is None
    rq_job = RqJob.fetch(body["job_id"], connection=conn)
    assert rq_job.meta["stage"] == "saving" and rq_job.meta["progress"] == 0.9


def test_unreadable_upload_is_marked_invalid_with_a_reason(app, client, tmp_path):
    junk = tmp_path / "not-a-video.mp4"
    junk.write_bytes(os.urandom(4096))
    headers, body = _upload(app, client, junk)
    conn = connect(app.config["REDIS_URL"])
    with app.app_context():
        SimpleWorker([Queue("cpu", connection=conn)], connection=conn).work(burst=True)
        upload = db.session.get(Upload, body["upload_id"])
        assert upload.status == "invalid"
        assert upload.reasons == [
            "unreadable: not a readable audio/video file; upload an MP4 or MOV recording"
        ]  # and no internal temp path (dhf-probe-<random>/media) in what the owner sees
    res = client.get(f"/api/v1/jobs/{body['job_id']}", headers=headers)
    assert "dhf-probe-" not in str(res.json) and "/media" not in str(res.json)


def test_job_errors_hide_internal_paths(app):
    import tempfile

    from webapp.jobs import _without_paths

    with app.app_context():
        tmp = tempfile.gettempdir()
        message = f"OSError: cannot read '{tmp}/dhf-probe-x1y2/media' (see {app.instance_path}/w)"
        assert _without_paths(message) == "OSError: cannot read '<file>' (see <file>)"


def test_second_active_job_for_the_same_target_is_refused(app):
    from webapp import jobs
    from webapp.errors import Conflict

    with app.app_context():
        owner = factories.user()
        jobs.submit("probe_upload", owner.id, "u" * 32)
        db.session.commit()
        with pytest.raises(Conflict, match="already running"):
            jobs.submit("probe_upload", owner.id, "u" * 32)


def test_nothing_is_enqueued_when_the_transaction_rolls_back(app):
    conn = connect(app.config["REDIS_URL"])
    from webapp.uploads import probe_upload

    spec = JobSpec(probe_upload, "cpu", timeout=60)
    with app.app_context():
        enqueue_after_commit(db.session(), conn, spec, "rolled-back", "rolled-back")
        db.session.rollback()
        enqueue_after_commit(db.session(), conn, spec, "committed", "committed")
        db.session.commit()
    assert Queue("cpu", connection=conn).job_ids == ["committed"]


def test_a_missing_row_fails_the_job_without_touching_others(app):
    conn = connect(app.config["REDIS_URL"])
    Queue("cpu", connection=conn).enqueue(
        "webapp.uploads.probe_upload", "nope", job_id="nope", retry=None
    )
    with app.app_context():
        SimpleWorker([Queue("cpu", connection=conn)], connection=conn).work(burst=True)
    assert RqJob.fetch("nope", connection=conn).get_status() == "failed"


@pytest.mark.slow
def test_worker_process_runs_the_job(app, client, grid_clip):
    """`dhf worker --burst` as its own process, configured only by the environment."""
    headers, body = _upload(app, client, grid_clip)
    cfg = app.config
    env = dict(
        os.environ,
        DATABASE_URL=cfg["DATABASE_URL"],
        REDIS_URL=cfg["REDIS_URL"],
        DHF_SECRET_KEY=cfg["SECRET_KEY"],
        DHF_MASTER_KEYS=cfg["MASTER_KEYS"],
        DHF_STORAGE_DIR=cfg["STORAGE_DIR"],
    )
    proc = subprocess.run(
        [sys.executable, "-m", "webapp.cli", "worker", "--queues", "cpu", "--burst"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = client.get(f"/api/v1/jobs/{body['job_id']}", headers=headers)
    assert (res.json["status"], res.json["progress"]) == ("finished", 1.0)
