"""Customer webhooks cannot reach past the server (SSRF): refused when set, re-checked at
every delivery, connected to the checked address only, never redirected.

A loopback listener that must never be hit counts every TCP connection it accepts.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from webapp import safe_http, webhooks
from webapp.config import ConfigError
from webapp.extensions import db
from webapp.models import User

from .. import factories


class _Listener:
    """A loopback HTTP server counting connections; answers 200 or a redirect."""

    def __init__(self, redirect_to: str | None = None):
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                listener.hosts.append(self.headers["Host"])
                self.send_response(302 if redirect_to else 200)
                if redirect_to:
                    self.send_header("Location", redirect_to)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            def get_request(self):  # type: ignore[no-untyped-def]
                listener.connections += 1
                return super().get_request()

        self.connections, self.hosts = 0, []
        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def never_hit() -> Iterator[_Listener]:
    listener = _Listener()
    yield listener
    listener.close()
    assert listener.connections == 0, "a refused webhook URL was connected to"


def _attack_urls(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/",
        "http://127.0.0.1:6379/",
        "http://169.254.169.254/latest/meta-data/",
        f"http://[::1]:{port}/",
        f"http://0x7f000001:{port}/",
        f"http://2130706433:{port}/",
        f"http://0177.0.0.1:{port}/",
        f"http://127.1:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://[::ffff:7f00:1]:{port}/",
        f"http://[64:ff9b::7f00:1]:{port}/",
        f"http://[2002:7f00:1::]:{port}/",
        f"http://localhost:{port}/",
        "https://10.0.0.1/",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://100.64.0.1/",
        "https://224.0.0.1/",
        "https://0.0.0.0/",
        "https://[fe80::1]/",
        "https://[fc00::1]/",
        "https://240.0.0.1/",
        f"http://user:pass@127.0.0.1:{port}/",
        "https://user@example.com/hook",
        "https://example.com@127.0.0.1/",
        "ftp://example.com/",
        "https://" + "a" * 600 + ".example.com/",
    ]


def test_internal_and_malformed_urls_are_refused_when_set(client, app, never_hit):
    with app.app_context():
        headers = factories.token_for(factories.user())
    for url in _attack_urls(never_hit.port):
        res = client.put("/api/v1/webhook", headers=headers, json={"url": url})
        assert (res.status_code, res.json["error"]) == (422, "bad_webhook_url"), url
    res = client.put(
        "/api/v1/webhook", headers=headers, json={"url": f"http://0x7f000001:{never_hit.port}/"}
    )
    assert res.json["message"] == (
        "The webhook host 0x7f000001 resolves to a non-public address (loopback: "
        "127.0.0.1): use a public internet address."
    )
    res = client.put("/api/v1/webhook", headers=headers, json={"url": "https://a@example.com/"})
    assert res.json["message"] == "The webhook URL must not contain a user name or password."
    res = client.put(
        "/api/v1/webhook", headers=headers, json={"url": "https://example.com/" + "x" * 600}
    )
    assert res.json["message"] == "The webhook URL is too long: at most 500 characters."


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.2", "loopback"),
        ("10.1.2.3", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "reserved"),
        ("239.1.1.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "private"),
        ("198.18.0.1", "private"),
        ("::7f00:1", "reserved"),
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
    ],
)
def test_address_ranges(address, why):
    import ipaddress

    assert safe_http.forbidden(ipaddress.ip_address(address)) == why


def test_production_takes_https_only_and_no_loopback_switch(make_app, monkeypatch):
    monkeypatch.setattr(safe_http, "resolve", lambda host, port: ["93.184.216.34"])
    with pytest.raises(safe_http.UnsafeURL, match="https://"):
        safe_http.check_url("http://hooks.example.com/", require_https=True)
    assert safe_http.check_url("https://hooks.example.com/x?y=1", require_https=True).path == (
        "/x?y=1"
    )
    with pytest.raises(ConfigError, match="WEBHOOK_ALLOW_LOOPBACK"):
        make_app(
            ENV="production",
            WEBHOOK_ALLOW_LOOPBACK=True,
            STRIPE_SECRET_KEY="sk_x",
            STRIPE_WEBHOOK_SECRET="whsec_x",
            KYC_PROVIDER="self_hosted",
        )


def _owner_with_url(app, url: str) -> tuple[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    """An owner whose stored URL bypassed the check (an older row, or a rebound name)."""
    with app.app_context():
        owner = factories.user()
        owner.webhook_url, owner.webhook_secret = url, "whsec_test"
        db.session.commit()
        return owner.id, {"id": "evt_1", "type": "render.finished", "data": {}}


def test_delivery_rechecks_a_stored_internal_url(app, never_hit):
    for url in (f"http://127.0.0.1:{never_hit.port}/", f"http://0x7f000001:{never_hit.port}/"):
        owner_id, event = _owner_with_url(app, url)
        with app.app_context(), pytest.raises(safe_http.UnsafeURL):
            webhooks.deliver(owner_id, event)


def test_dns_rebinding_to_loopback_is_refused_at_delivery(app, client, never_hit, monkeypatch):
    answers = {"hooks.example.com": "93.184.216.34"}
    monkeypatch.setattr(safe_http, "resolve", lambda host, port: [answers[host]])
    with app.app_context():
        owner = factories.user()
        headers, owner_id = factories.token_for(owner), owner.id
    url = f"http://hooks.example.com:{never_hit.port}/hook"
    assert client.put("/api/v1/webhook", headers=headers, json={"url": url}).status_code == 200
    answers["hooks.example.com"] = "127.0.0.1"  # the name now points inside
    with app.app_context(), pytest.raises(safe_http.UnsafeURL, match="loopback"):
        webhooks.deliver(owner_id, {"id": "evt_1", "type": "render.finished", "data": {}})


def test_connects_to_the_checked_address_with_the_original_host(make_app, monkeypatch):
    app = make_app(WEBHOOK_ALLOW_LOOPBACK=True)
    listener = _Listener()
    resolved: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        resolved.append(host)  # a second lookup would find 10.0.0.1 instead
        return ["127.0.0.1"] if len(resolved) == 1 else ["10.0.0.1"]

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        assert host not in ("hooks.example.com", "127.0.0.1"), "a second lookup"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(safe_http, "resolve", resolve)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        owner_id, event = _owner_with_url(app, f"http://hooks.example.com:{listener.port}/h")
        with app.app_context():
            assert webhooks.deliver(owner_id, event) == 200
    finally:
        listener.close()
    assert resolved == ["hooks.example.com"]
    assert listener.hosts == [f"hooks.example.com:{listener.port}"]


def test_a_redirect_is_not_followed(make_app, never_hit):
    app = make_app(WEBHOOK_ALLOW_LOOPBACK=True)  # the redirecting listener is on loopback
    redirector = _Listener(redirect_to=f"http://127.0.0.1:{never_hit.port}/")
    try:
        owner_id, event = _owner_with_url(app, f"http://127.0.0.1:{redirector.port}/hook")
        with app.app_context(), pytest.raises(RuntimeError, match="answered 302"):
            webhooks.deliver(owner_id, event)
    finally:
        redirector.close()
    assert redirector.connections == 1


def test_a_silent_endpoint_is_cut_off(make_app, monkeypatch):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        target = safe_http.check_url(
            f"http://127.0.0.1:{silent.getsockname()[1]}/", require_https=False, allow_loopback=True
        )
        with pytest.raises(OSError):
            safe_http.post(target, b"{}", {}, timeout_s=0.5)
    finally:
        silent.close()


def test_removed_endpoint_sends_nothing(app):
    owner_id, event = _owner_with_url(app, "https://hooks.example.com/")
    with app.app_context():
        db.session.get(User, owner_id).webhook_url = None
        db.session.commit()
        assert webhooks.deliver(owner_id, event) is None
