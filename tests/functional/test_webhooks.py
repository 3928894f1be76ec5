"""Customer webhooks: signed with the endpoint's secret, delivered by a real worker to a
real local HTTP endpoint, retried when the endpoint fails."""

from __future__ import annotations

import http.server
import logging
import threading
import time

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job

from webapp import webhooks
from webapp.extensions import db
from webapp.models import User
from webapp.queue import connect

from .. import factories


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[bytes, str]] = []
    fail_next = 0

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Receiver.fail_next:
            _Receiver.fail_next -= 1
            self.send_response(503)
        else:
            _Receiver.received.append((body, self.headers["DHF-Signature"]))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    _Receiver.received, _Receiver.fail_next = [], 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_event_is_signed_and_delivered_and_retried(make_app, receiver, caplog):
    app = make_app(WEBHOOK_ALLOW_LOOPBACK=True)  # the receiver listens on 127.0.0.1
    client = app.test_client()
    caplog.set_level(logging.DEBUG)
    with app.app_context():
        owner = factories.user()
        headers, owner_id = factories.token_for(owner), owner.id
    res = client.put("/api/v1/webhook", headers=headers, json={"url": receiver})
    assert res.status_code == 200 and res.json["secret"].startswith("whsec_")
    secret = res.json["secret"]
    bad = client.put("/api/v1/webhook", headers=headers, json={"url": "ftp://x"})
    assert (bad.status_code, bad.json["error"]) == (422, "bad_webhook_url")

    with app.app_context():
        event_id = webhooks.notify(
            db.session.get(User, owner_id).id,
            "render.finished",
            {"render_id": "r1", "content_id": "c1"},
        )
        db.session.commit()  # enqueued after the commit
        _Receiver.fail_next = 1  # the first attempt meets a 503
        conn = connect(app.config["REDIS_URL"])
        worker = SimpleWorker([Queue("cpu", connection=conn)], connection=conn)
        worker.work(burst=True)
        assert _Receiver.received == []
        deadline = time.time() + 30
        while not _Receiver.received and time.time() < deadline:  # retried after 10 s
            time.sleep(1)
            worker.work(burst=True, with_scheduler=True)
    assert len(_Receiver.received) == 1
    body, signature = _Receiver.received[0]
    assert webhooks.verify(secret, body, signature)
    assert not webhooks.verify("whsec_other", body, signature)
    assert not webhooks.verify(secret, body.replace(b"c1", b"c2"), signature)
    assert f'"id":"{event_id}"'.encode() in body and b'"type":"render.finished"' in body
    # the secret is neither a job argument (RQ logs and stores those) nor in any log line
    assert "deliver" in caplog.text and secret not in caplog.text
    assert secret not in repr(Job.fetch(event_id, connection=conn).args)

    assert client.delete("/api/v1/webhook", headers=headers).status_code == 204
    with app.app_context():
        assert webhooks.notify(owner_id, "render.finished", {}) is None
