"""Two workers that share nothing but PostgreSQL, Redis and S3 (issue 22).

The web app (the test's app, on PostgreSQL, Redis and a real SeaweedFS) takes a training
footage upload through the API and holds a tiny-profile avatar's voice takes; a ``cpu``
worker checks the footage, a ``gpu`` worker trains the avatar and then renders a script.
Each worker is a ``dhf worker --burst`` process with its own empty instance folder (its
work folder inside), configured only by its environment; the C2PA signer files are
deployed to each beside it, like any secret. At the end: the render downloads through its
signed link, every object in the bucket is ciphertext, and neither worker's folder keeps
a file.
"""

from __future__ import annotations

import shutil
import time

import pytest

from compliance.keys import init_keys
from webapp.billing import ledger
from webapp.extensions import db
from webapp.models import Avatar, Order, Render

from .. import factories
from ..conftest import SHARED_DATA

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["postgresql"], indirect=True)]
CLIPS = 6  # as the crash test: the tiny profile's diet
# plaintext signatures no object may contain: MP4 brands, a WAV header, a tar header
MAGIC = (b"ftypisom", b"ftypmp42", b"ftypMSNV", b"WAVEfmt ", b"ustar\x00", b"ustar  \x00")


def _objects(seaweed, prefix: str) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    client = seaweed.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=seaweed.bucket, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {
        k[len(prefix) :]: client.get_object(Bucket=seaweed.bucket, Key=k)["Body"].read()
        for k in keys
    }


def _files(folder) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_two_workers_share_only_postgresql_redis_and_s3(make_app, s3_config, seaweed, tmp_path):
    if not (SHARED_DATA / "grid_s1").exists():
        pytest.skip("shared data missing")
    began = time.monotonic()
    app = make_app(
        **s3_config,
        TRAINING_PROFILE="tiny",
        VOICE_MIN_SAMPLES=CLIPS,
        RENDER_MAX_WER=1.0,  # the tiny 6-take clone is a toy (as in the end-to-end test)
        WORK_DIR=str(tmp_path / "web-work"),
    )
    prefix = s3_config["STORAGE_URL"].split("/", 3)[3] + "/"
    client = app.test_client()
    clips = sorted((SHARED_DATA / "grid_s1" / "train").glob("*.mpg"))[:CLIPS]
    with app.app_context():
        owner = factories.user()
        _, avatar, footage = factories.trainable_avatar(owner, tmp_path, clips, footage=False)
        credits = Order(
            owner_id=owner.id, item="render_credits", status="paid", quantity=2, amount_cents=200
        )
        db.session.add(credits)
        db.session.flush()
        ledger.grant(credits)
        db.session.commit()
        headers, avatar_id = factories.token_for(owner), avatar.id
    # the signer files, deployed to each worker machine beside (not in) its instance folder
    init_keys(app.config["SIGNING_DIR"])
    workers = {}
    for queue in ("cpu", "gpu"):
        secrets = tmp_path / f"{queue}-secrets" / "keys"
        shutil.copytree(app.config["SIGNING_DIR"], secrets)
        workers[queue] = (tmp_path / f"{queue}-instance", secrets)

    def work(queue: str) -> None:
        instance, secrets = workers[queue]
        proc = factories.worker_process(
            app,
            queue,
            instance=instance,
            burst=True,
            SIGNING_DIR=str(secrets),
            TRAINING_PROFILE="tiny",
            VOICE_MIN_SAMPLES=str(CLIPS),
            TRAINING_VIDEO_MIN_SECONDS=str(app.config["TRAINING_VIDEO_MIN_SECONDS"]),
            RENDER_MAX_WER="1.0",
        )
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]

    # the footage goes up through the API (to S3); the cpu worker checks it
    upload = client.post(
        f"/api/v1/avatars/{avatar_id}/training-video",
        headers=headers,
        **factories.multipart("video", footage),
    )
    assert upload.status_code == 202, upload.json
    work("cpu")
    probed = client.get(f"/api/v1/jobs/{upload.json['job_id']}", headers=headers).json
    assert probed["status"] == "finished" and probed["result"]["status"] == "valid", probed

    # the gpu worker trains, then renders
    train = client.post(f"/api/v1/avatars/{avatar_id}/train", headers=headers)
    assert train.status_code == 202, train.json
    work("gpu")
    trained = client.get(f"/api/v1/avatars/{avatar_id}", headers=headers).json
    assert trained["status"] == "ready", trained
    render = client.post(
        "/api/v1/renders",
        headers=headers,
        json={"avatar_id": avatar_id, "script": "Welcome to our spring sale."},
    )
    assert render.status_code == 202, render.json
    work("gpu")
    done = client.get(f"/api/v1/renders/{render.json['id']}", headers=headers).json
    assert done["status"] == "ready", done

    # the render downloads through its signed link (no bearer token), streamed from S3
    video = client.get(done["download_url"].replace("http://localhost", ""))
    assert video.status_code == 200 and video.mimetype == "video/mp4"
    assert video.data[4:8] == b"ftyp"

    # S3 holds only ciphertext: keys, uploads, the model and the render
    objects = _objects(seaweed, prefix)
    with app.app_context():
        subject_id = db.session.get(Avatar, avatar_id).subject_id
        made = {
            db.session.get(Avatar, avatar_id).model_blob_id,
            db.session.get(Render, render.json["id"]).output_blob_id,
        }
    assert {f"blobs/{subject_id}/{blob}" for blob in made} <= set(objects)
    windows = [video.data[i : i + 64] for i in range(0, len(video.data) - 64, 8192)]
    for key, data in objects.items():
        assert not any(m in data for m in MAGIC), key
        assert not any(w in data for w in windows), key

    # nothing stays on either worker, nor in the web app's own folders
    for queue, (instance, _) in workers.items():
        assert _files(instance) == [], (queue, _files(instance))
    assert not (tmp_path / "storage").exists()
    print(f"two workers: {time.monotonic() - began:.0f} s")
