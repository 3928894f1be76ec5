"""The app on S3 object storage (a real SeaweedFS server): an upload goes to S3 as
ciphertext, a `dhf worker` process with its own empty instance folder probes it, a
render downloads streamed from S3, and a withdrawal shreds the key and deletes every
object of the person. PostgreSQL, Redis and S3 are all the web app and worker share."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from webapp.extensions import db
from webapp.models import Render, Upload
from webapp.storage import vault
from webapp.studio import delivery

from .. import factories
from ..conftest import REPO
from . import s3check

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _worker(app, instance, queues: str):  # type: ignore[no-untyped-def]
    """`dhf worker --burst` in its own instance folder, configured only by the environment."""
    cfg = app.config
    env = dict(
        os.environ,
        DHF_INSTANCE_DIR=str(instance),
        DATABASE_URL=cfg["DATABASE_URL"],
        REDIS_URL=cfg["REDIS_URL"],
        DHF_SECRET_KEY=cfg["SECRET_KEY"],
        DHF_MASTER_KEYS=cfg["MASTER_KEYS"],
        DHF_WATERMARK_KEYS=cfg["WATERMARK_KEYS"],
        DHF_TRAINING_VIDEO_MIN_SECONDS=str(cfg["TRAINING_VIDEO_MIN_SECONDS"]),
        **{f"DHF_{k}": cfg[k] for k in factories.STORAGE_SETTINGS if cfg.get(k)},
    )
    return subprocess.run(
        [sys.executable, "-m", "webapp.cli", "worker", "--queues", queues, "--burst"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_upload_probe_download_and_shred_on_s3(make_app, s3_config, seaweed, grid_clip, tmp_path):
    app = make_app(**s3_config)
    prefix = s3_config["STORAGE_URL"].split("/", 3)[3] + "/"
    client = app.test_client()
    with app.app_context():
        owner = factories.user()
        subject, consent_token = factories.consented_subject(owner)
        avatar = factories.avatar(owner, subject)
        headers, avatar_id, subject_id = factories.token_for(owner), avatar.id, subject.id
        owner_id = owner.id
    with grid_clip.open("rb") as fh:
        res = client.post(
            f"/api/v1/avatars/{avatar_id}/training-video",
            headers=headers,
            data={"video": (fh, "take1.mpg")},
        )
    assert res.status_code == 202, res.json
    upload_id, job_id = res.json["upload_id"], res.json["job_id"]

    # the upload is on S3, as ciphertext only; nothing went to the local storage folder
    stored = s3check.objects(seaweed, prefix)
    with app.app_context():
        blob_id = db.session.get(Upload, upload_id).blob_id
    assert set(stored) == {f"keys/{subject_id}.key", f"blobs/{subject_id}/{blob_id}"}
    plaintext = grid_clip.read_bytes()
    windows = {plaintext[i : i + 64] for i in range(0, len(plaintext) - 64, 4096)}
    assert not any(w in stored[f"blobs/{subject_id}/{blob_id}"] for w in windows)
    assert not os.path.exists(app.config["STORAGE_DIR"])

    # a worker that shares no folder with the web app probes it from S3
    instance = tmp_path / "worker-instance"
    done = _worker(app, instance, "cpu")
    assert done.returncode == 0, done.stderr[-2000:]
    job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json
    assert job["status"] == "finished", job
    assert job["result"] == {"upload_id": upload_id, "status": "valid", "reasons": []}
    assert not (instance / "storage").exists()
    assert [p for p in (instance / "work").rglob("*") if p.is_file()] == []

    # a render's file streams from S3 through the signed link, across chunk boundaries
    video = os.urandom(2 * (1 << 20) + 12345)
    with app.app_context():
        render = Render(
            owner_id=owner_id,
            avatar_id=avatar_id,
            script="Hello there.",
            status="ready",
            content_id="c" * 32,
            output_blob_id=vault().put(subject_id, io.BytesIO(video))[0],
        )
        db.session.add(render)
        db.session.commit()
        link = f"/api/v1/renders/{render.id}/download?t={delivery.link_token(render)}"
    got = client.get(link)
    assert got.status_code == 200 and got.data == video

    # withdrawal: the key goes, then every object of the person
    res = client.post(f"/api/v1/consent/{consent_token}/revoke")
    assert res.status_code == 200, res.json
    assert set(s3check.objects(seaweed, prefix)) == {f"keys/{subject_id}.destroyed"}
    gone = client.get(link)
    assert gone.status_code == 403 and gone.json["error"] == "consent_revoked"


def test_retention_aborts_interrupted_multipart_uploads(make_app, s3_config, seaweed, monkeypatch):
    from webapp import retention

    app = make_app(**s3_config)
    prefix = s3_config["STORAGE_URL"].split("/", 3)[3] + "/"
    s3 = seaweed.client()
    s3.create_multipart_upload(Bucket=seaweed.bucket, Key=prefix + "blobs/s1/killed")
    with app.app_context():
        assert retention.run().stale_uploads_aborted == 0  # younger than a day: may be running
        monkeypatch.setattr(retention, "STALE_UPLOAD_S", 0)
        assert retention.run(dry_run=True).stale_uploads_aborted == 0
        assert retention.run().as_json()["stale_uploads_aborted"] == 1
    assert s3.list_multipart_uploads(Bucket=seaweed.bucket, Prefix=prefix).get("Uploads", []) == []
