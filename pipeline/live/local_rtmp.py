"""A real RTMP server on 127.0.0.1 for the live-stream tests and ``dhf bench live``:
Debian's nginx with libnginx-mod-rtmp (``make test`` installs both when missing), run in
the foreground with its own configuration in a temporary folder (../shared/STACK.md)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


def missing() -> str | None:
    """Why no RTMP server can run here, or None."""
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        return "nginx is not installed (apt-get install nginx-light libnginx-mod-rtmp)"
    if not MODULE.exists():
        return f"the nginx RTMP module is missing ({MODULE}; apt-get install libnginx-mod-rtmp)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _has_video_frame(flv: bytes) -> bool:
    """Whether an FLV file holds a whole video tag carrying a frame (not only the AVC
    sequence header)."""
    at = 13  # FLV header (9) + PreviousTagSize0 (4)
    while at + 11 <= len(flv):
        kind, size = flv[at], int.from_bytes(flv[at + 1 : at + 4], "big")
        body = flv[at + 11 : at + 11 + size]
        if len(body) < size:
            return False
        if kind == 9 and size > 2 and body[1] == 1:  # AVC NALU (1), not sequence header (0)
            return True
        at += 11 + size + 4
    return False


class RtmpServer:
    """``nginx -c <conf> -p <dir>`` with one application ``live`` (live on; each stream is
    also recorded to ``rec/<key>.flv``, so its first frame can be timed at the server)."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder, self.port = folder, port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (folder / "rec").mkdir(parents=True, exist_ok=True)
        self.conf = folder / "nginx.conf"
        self.conf.write_text(
            f"load_module {MODULE};\n"
            "daemon off;\nmaster_process off;\n"
            f"pid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n"
            "events {}\n"
            f"rtmp {{ server {{ listen 127.0.0.1:{self.port}; "
            "application live { live on; "
            f"record all; record_path {folder}/rec; record_unique off; record_lock off; "
            "} } }\n"
        )

    def first_frame_at(self, key: str, timeout: float) -> float | None:
        """time.monotonic() when the server had written the stream's first video frame
        (its own recording, read as it grows); None if none came within ``timeout``."""
        path = self.recording(key)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and _has_video_frame(path.read_bytes()):
                return time.monotonic()
            time.sleep(0.005)
        return None

    def recording(self, key: str) -> Path:
        """The server's own recording of a stream: every frame that reached it."""
        return self.folder / "rec" / f"{key}.flv"

    def url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def start(self) -> RtmpServer:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen(
            [nginx, "-c", os.fspath(self.conf), "-p", os.fspath(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"nginx exited: {err}") from None
                time.sleep(0.05)
        raise RuntimeError("nginx did not listen within 10 s")

    def stop(self) -> None:
        """Drop every connection (the server goes away, as a platform's ingest may)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        self.proc = None
        for recording in (self.folder / "rec").glob("*.flv"):
            recording.unlink()  # a new publisher starts a new recording
