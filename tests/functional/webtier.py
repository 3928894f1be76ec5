"""The README's web tier, for real: ``dhf serve --workers 0`` processes (waitress) behind
Debian's nginx as the reverse proxy, all on loopback.

nginx runs unprivileged from a folder of its own (config, pid, logs, temp paths); as root
it is started as ``nobody``. Its access log names, per request, the client address it
saw, the ``X-Forwarded-For`` the client sent and the web process it chose, so a test can
see the balancing. Each web process has its own instance folder and is configured only by
its environment, like a worker (``factories.dhf_env``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import factories
from ..conftest import REPO

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
LOG_FORMAT = "$remote_addr|$http_x_forwarded_for|$upstream_addr|$status|$request_method $uri"

# The proxy part of the README's deployment guide (there with TLS on 443 in front of it).
# Bodies are streamed, not buffered to nginx's temporary files: an upload is plaintext
# biometric data until the web process encrypts it, and a download is a decrypted render.
PROXY = """
    client_max_body_size 1g;  # >= DHF_MAX_CONTENT_LENGTH: the app answers 413 itself
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_http_version 1.1;
    proxy_read_timeout 300s;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host $http_host;
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_conf(folder: Path, port: int, upstreams: list[int]) -> str:
    """A whole nginx.conf: ``127.0.0.1:port`` round-robin to the web processes' ports."""
    temp = " ".join(f"{name}_temp_path {folder}/{name};" for name in _TEMPS)
    servers = " ".join(f"server 127.0.0.1:{p};" for p in upstreams)
    return f"""worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format dhf '{LOG_FORMAT}';
    access_log {folder}/access.log dhf;
    {temp}
    upstream dhf_web {{ {servers} }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://dhf_web;
{PROXY}
        }}
    }}
}}
"""


_TEMPS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass
class AccessLine:
    client: str  # the address nginx saw
    sent_for: str  # the X-Forwarded-For the client sent ("-": none)
    upstream: str  # the web process nginx chose, host:port
    status: int
    request: str


@dataclass
class Proxy:
    folder: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> list[AccessLine]:
        lines = (self.folder / "access.log").read_text().splitlines()
        parsed = [line.split("|") for line in lines]
        return [AccessLine(c, f, u, int(s), r) for c, f, u, s, r in parsed]


def _as_nobody() -> None:
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)


@contextlib.contextmanager
def nginx(upstreams: list[int], timeout: float = 20.0) -> Iterator[Proxy]:
    """A running nginx in front of ``upstreams``; stopped (SIGQUIT) and removed after."""
    folder = Path(tempfile.mkdtemp(prefix="dhf-nginx-"))  # under /tmp: nobody can reach it
    port = free_port()
    (folder / "nginx.conf").write_text(nginx_conf(folder, port, upstreams))
    root = os.geteuid() == 0
    if root:
        nobody = pwd.getpwnam("nobody")
        for path in (folder, folder / "nginx.conf"):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    args = [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", "stderr"]
    with open(folder / "stderr.log", "wb") as err:
        proc = subprocess.Popen(
            [*args, "-g", "daemon off;"],
            preexec_fn=_as_nobody if root else None,  # noqa: PLW1509 (before any thread)
            stderr=err,
        )
    try:
        _wait_port(port, proc, timeout, folder / "stderr.log")
        yield Proxy(folder, port, proc)
    finally:
        proc.terminate()  # SIGTERM: fast shutdown
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def web_processes(app, machines: list[tuple[Path, Path]], **config: str) -> Iterator[list[int]]:  # type: ignore[no-untyped-def]
    """``dhf serve --workers 0`` per ``(instance folder, signer files folder)``, each on a
    free loopback port; yields the ports once every process answers, stops them after."""
    ports = [free_port() for _ in machines]
    logs = [instance.parent / f"{instance.name}.log" for instance, _ in machines]
    procs = []
    try:
        for (instance, secrets), port, log in zip(machines, ports, logs, strict=True):
            args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "0"]
            env = factories.dhf_env(app, instance, SIGNING_DIR=str(secrets), **config)
            with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "webapp.cli", *args],
                        env=env,
                        cwd=REPO,
                        start_new_session=True,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        for proc, port, log in zip(procs, ports, logs, strict=True):
            _wait_port(port, proc, 120, log)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port} after {timeout:.0f} s: {log.read_text()}")


def request(  # type: ignore[no-untyped-def]
    url: str, method: str, path: str, *, source: str = "127.0.0.1", headers=None, body=None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request from the loopback address ``source`` (127.0.0.2, ... act as
    different clients): ``(status, headers, body)``."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=300, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()
