"""The README's deployment, run on one machine (issue 22): two web processes behind a
reverse proxy, two workers, and nothing shared but PostgreSQL, Redis and S3.

The web tier: two ``dhf serve --workers 0`` processes (waitress), each with its own empty
instance folder and configured only by its environment, behind Debian's nginx
(``tests/functional/webtier.py``) with ``DHF_TRUSTED_PROXIES=1``. Every API call below
goes through nginx. Shown on it: requests alternate over both web processes (nginx's
access log), a browser session and its CSRF token work on both (one secret key, sessions
in PostgreSQL) and a logout on one ends it on both, and the per-IP login limit counts the
client address nginx saw, whatever ``X-Forwarded-For`` the client sends.

The workers: a ``cpu`` worker checks a training footage upload, a ``gpu`` worker trains a
tiny-profile avatar and then renders a script. Each is a ``dhf worker --burst`` process
with its own empty instance folder (its work folder inside), configured only by its
environment; the C2PA signer files are deployed to each machine beside it, like any
secret. At the end: the render downloads through its signed link, every object in the
bucket is ciphertext, and no worker's or web process's folder keeps a file.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from urllib.parse import urlencode, urlsplit

import pytest

from compliance.keys import init_keys
from webapp.billing import ledger
from webapp.extensions import db
from webapp.models import Avatar, Order, Render

from .. import factories
from ..conftest import SHARED_DATA, TEST_PASSWORD
from . import s3check, webtier

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["postgresql"], indirect=True)]
CLIPS = 6  # as the crash test: the tiny profile's diet
LOGIN_LIMIT = 3  # DHF_RATELIMIT_AUTH of the web processes, per minute


def test_two_web_processes_and_two_workers_share_only_postgresql_redis_and_s3(
    make_app, s3_config, seaweed, tmp_path
):
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
        headers, avatar_id, email = factories.token_for(owner), avatar.id, owner.email
    # each machine: an empty instance folder, the signer files deployed beside it
    init_keys(app.config["SIGNING_DIR"])
    machines = {}
    for name in ("web0", "web1", "cpu", "gpu"):
        secrets = tmp_path / f"{name}-secrets" / "keys"
        shutil.copytree(app.config["SIGNING_DIR"], secrets)
        machines[name] = (tmp_path / f"{name}-instance", secrets)
    settings = {
        "TRAINING_PROFILE": "tiny",
        "VOICE_MIN_SAMPLES": str(CLIPS),
        "TRAINING_VIDEO_MIN_SECONDS": str(app.config["TRAINING_VIDEO_MIN_SECONDS"]),
        "RENDER_MAX_WER": "1.0",
    }

    def work(queue: str) -> None:
        instance, secrets = machines[queue]
        proc = factories.worker_process(
            app, queue, instance=instance, burst=True, SIGNING_DIR=str(secrets), **settings
        )
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]

    web = [machines["web0"], machines["web1"]]
    with (
        webtier.web_processes(
            app,
            web,
            TRUSTED_PROXIES="1",
            RATELIMIT_AUTH=f"{LOGIN_LIMIT} per hour",
            **settings,
        ) as ports,
        webtier.nginx(ports) as proxy,
    ):
        upstreams = {f"127.0.0.1:{p}" for p in ports}
        _browser_session_on_both(proxy, email, upstreams)
        _login_limit_counts_the_address_nginx_saw(proxy, upstreams)

        def api(method: str, path: str, body: object = None, **kw):  # type: ignore[no-untyped-def]
            data = json.dumps(body).encode() if body is not None else kw.pop("data", None)
            kind = "application/json" if body is not None else kw.pop("content_type", None)
            extra = {"Content-Type": kind} if kind else {}
            status, _, raw = webtier.request(
                proxy.url, method, path, headers={**headers, **extra}, body=data
            )
            return status, json.loads(raw or b"null")

        # the footage goes up through nginx and a web process (to S3); the cpu worker checks it
        status, upload = api(
            "POST",
            f"/api/v1/avatars/{avatar_id}/training-video",
            **factories.multipart("video", footage),
        )
        assert status == 202, upload
        work("cpu")
        _, probed = api("GET", f"/api/v1/jobs/{upload['job_id']}")
        assert probed["status"] == "finished" and probed["result"]["status"] == "valid", probed

        # the gpu worker trains, then renders
        status, train = api("POST", f"/api/v1/avatars/{avatar_id}/train")
        assert status == 202, train
        work("gpu")
        _, trained = api("GET", f"/api/v1/avatars/{avatar_id}")
        assert trained["status"] == "ready", trained
        body = {"avatar_id": avatar_id, "script": "Welcome to our spring sale."}
        status, render = api("POST", "/api/v1/renders", body)
        assert status == 202, render
        work("gpu")
        _, done = api("GET", f"/api/v1/renders/{render['id']}")
        assert done["status"] == "ready", done

        # the signed link names the proxy's address (X-Forwarded-Host believed from one
        # hop) and downloads through it, no bearer token, streamed from S3
        link = urlsplit(done["download_url"])
        assert link.netloc == f"127.0.0.1:{proxy.port}", done["download_url"]
        status, got, video = webtier.request(proxy.url, "GET", f"{link.path}?{link.query}")
        assert status == 200 and got["content-type"] == "video/mp4"
        assert video[4:8] == b"ftyp"
        served = [line.upstream for line in proxy.access_log()]

    # nginx spread the requests evenly over both web processes
    counts = sorted(served.count(u) for u in upstreams)
    assert set(served) == upstreams and counts[1] - counts[0] <= 1, counts

    # S3 holds only ciphertext: keys, uploads, the model and the render
    prefix = s3check.prefix_of(s3_config)
    objects = s3check.objects(seaweed, prefix)
    with app.app_context():
        subject_id = db.session.get(Avatar, avatar_id).subject_id
        made = {
            db.session.get(Avatar, avatar_id).model_blob_id,
            db.session.get(Render, render["id"]).output_blob_id,
        }
    assert {f"blobs/{subject_id}/{blob}" for blob in made} <= set(objects)
    s3check.assert_ciphertext_only(objects, [video])

    # nothing stays on any machine, nor in the test app's own folders
    for name, (instance, _) in machines.items():
        assert s3check.files_in(instance) == [], name
    assert not (tmp_path / "storage").exists()
    print(f"two web processes behind nginx, two workers: {time.monotonic() - began:.0f} s")


def _csrf(page: bytes) -> str:
    found = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found, page[:2000]
    return found.group(1).decode()


def _cookie(got: dict[str, str]) -> str:
    return got["set-cookie"].split(";", 1)[0]


def _browser_session_on_both(proxy, email: str, upstreams: set[str]) -> None:  # type: ignore[no-untyped-def]
    """Log in through nginx: the form from one web process, its CSRF token checked by the
    other; the session works on both; a logout on one ends it on both."""
    url = proxy.url
    _, got, page = webtier.request(url, "GET", "/login")
    form = urlencode({"email": email, "password": TEST_PASSWORD, "csrf_token": _csrf(page)})
    status, got, _ = webtier.request(
        url,
        "POST",
        "/login",
        body=form,
        headers={"Cookie": _cookie(got), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 302, got
    cookie = {"Cookie": _cookie(got)}
    pages = [webtier.request(url, "GET", "/dashboard", headers=cookie) for _ in range(2)]
    assert [p[0] for p in pages] == [200, 200]
    form = urlencode({"csrf_token": _csrf(pages[1][2])})
    out = {**cookie, "Content-Type": "application/x-www-form-urlencoded"}
    assert webtier.request(url, "POST", "/logout", body=form, headers=out)[0] == 302
    after = [webtier.request(url, "GET", "/dashboard", headers=cookie) for _ in range(2)]
    assert [(s, urlsplit(h["location"]).path) for s, h, _ in after] == [(302, "/login")] * 2

    log = proxy.access_log()
    login = [line.upstream for line in log if line.request.endswith(" /login")]
    assert len(login) == 2 and set(login) == upstreams  # the form here, its POST there
    for status in (200, 302):
        seen = {x.upstream for x in log if x.request.endswith("/dashboard") and x.status == status}
        assert seen == upstreams, (status, seen)


def _login_limit_counts_the_address_nginx_saw(proxy, upstreams: set[str]) -> None:  # type: ignore[no-untyped-def]
    """Wrong logins from 127.0.0.2 use up its budget on both web processes together (the
    counters are in Redis); an X-Forwarded-For it makes up does not get it a new one, nor
    does naming 127.0.0.2 cost 127.0.0.3 its own."""
    wrong = json.dumps({"email": "nobody@example.com", "password": "not the password"})
    kind = {"Content-Type": "application/json"}

    def login(source: str, **sent: str) -> int:
        headers = {**kind, **({"X-Forwarded-For": sent["xff"]} if sent else {})}
        return webtier.request(
            proxy.url, "POST", "/api/v1/auth/tokens", source=source, headers=headers, body=wrong
        )[0]

    assert [login("127.0.0.2") for _ in range(LOGIN_LIMIT)] == [401] * LOGIN_LIMIT
    assert login("127.0.0.2") == 429
    assert login("127.0.0.2", xff="203.0.113.9") == 429
    assert login("127.0.0.3", xff="127.0.0.2") == 401
    tokens = [x for x in proxy.access_log() if x.request.endswith("/api/v1/auth/tokens")]
    assert {x.upstream for x in tokens[:LOGIN_LIMIT]} == upstreams
    assert [(x.client, x.sent_for, x.status) for x in tokens[-2:]] == [
        ("127.0.0.2", "203.0.113.9", 429),
        ("127.0.0.3", "127.0.0.2", 401),
    ]
