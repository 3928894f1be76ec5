"""Outbound HTTP to addresses a customer chose, without reaching past the server (SSRF).

:func:`check_url` parses a URL, resolves its host once and refuses it unless every address
is public. :func:`post` connects to exactly one of those checked addresses (no second DNS
lookup: the original name still goes out as ``Host`` and as the TLS SNI / certificate
name), follows no redirects and is bounded in time and in what it reads back.

Refused, in every spelling (IPv4, IPv6, IPv4-mapped / NAT64 / 6to4 IPv6, decimal, hex or
octal integer hosts such as ``0x7f000001`` or ``2130706433``, which the resolver turns
into the address that would be dialled): loopback, private, link-local, CGNAT
(100.64.0.0/10), multicast, reserved, documentation and unspecified addresses; URLs with
user info; anything but http(s); URLs longer than :data:`MAX_URL_LENGTH`.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import InvalidInput

MAX_URL_LENGTH = 500  # the users.webhook_url column
MAX_RESPONSE_BYTES = 64 * 1024  # read (and discard) at most this much of an answer
IP = ipaddress.IPv4Address | ipaddress.IPv6Address

# Beyond what ``ipaddress`` calls non-global: shared (CGNAT), benchmarking, IETF protocol
# assignments, local-use NAT64, 6to4 relays, discard-only and the ORCHID ranges.
_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "240.0.0.0/4",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fec0::/10",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeURL(InvalidInput):
    """The URL is malformed or points somewhere the server must not connect to."""

    code = "bad_webhook_url"


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``addresses``) and what to ask for."""

    scheme: str
    host: str  # as written (sent as Host and TLS server name)
    port: int
    path: str  # path and query
    addresses: tuple[str, ...]  # every address the host resolved to, all public


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (tests replace this to simulate DNS)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def forbidden(ip: IP, *, allow_loopback: bool = False) -> str | None:
    """Why ``ip`` must not be dialled (a short name of its range), or None when public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return forbidden(embedded, allow_loopback=allow_loopback)
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    for name in ("unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    if any(ip in net for net in _BLOCKED if net.version == ip.version) or not ip.is_global:
        return "reserved"
    return None


def check_url(url: str, *, require_https: bool, allow_loopback: bool = False) -> Target:
    """Parse and resolve ``url``; raise :class:`UnsafeURL` (422) saying what is wrong."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"The webhook URL is too long: at most {MAX_URL_LENGTH} characters.")
    if any(c.isspace() or ord(c) < 32 or c == "\\" for c in url):
        raise UnsafeURL("The webhook URL must not contain spaces, control characters or '\\'.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("The webhook URL must be an http(s):// address with a host name.")
    if require_https and parts.scheme != "https":
        raise UnsafeURL("The webhook URL must be an https:// address.")
    if "@" in parts.netloc:
        raise UnsafeURL("The webhook URL must not contain a user name or password.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeURL("The webhook URL has an invalid port.") from None
    host = parts.hostname
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        raise UnsafeURL(f"The webhook host {host} does not resolve: check the name.") from None
    for address in addresses or ["0.0.0.0"]:
        why = forbidden(
            ipaddress.ip_address(address.split("%", 1)[0]), allow_loopback=allow_loopback
        )
        if why:
            raise UnsafeURL(
                f"The webhook host {host} resolves to a non-public address "
                f"({why}: {address}): use a public internet address."
            )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, tuple(addresses))


def _dial(address: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to an address literal: no name lookup of any kind."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((address, port))
    except OSError:
        sock.close()
        raise
    return sock


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to a checked address; ``host`` only names it."""

    def __init__(self, target: Target, address: str, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = _dial(self._address, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to a checked address; SNI and the certificate name the host."""

    def __init__(self, target: Target, address: str, timeout: float):
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = address

    def connect(self) -> None:
        sock = _dial(self._address, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(target: Target, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST ``body`` to ``target``; the status code. Redirects are answers, not followed.

    Connects to the first checked address that answers; the whole exchange (connect,
    send, status line and headers) is cut off after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    conn, failure = None, None
    for address in target.addresses:
        conn = kind(target, address, timeout=max(deadline - time.monotonic(), 0.1))
        try:
            conn.connect()
            break
        except OSError as exc:
            conn.close()
            conn, failure = None, exc
    if conn is None:
        raise failure or OSError(f"could not connect to {target.host}")
    timer = threading.Timer(max(deadline - time.monotonic(), 0.0), _cut, (conn,))
    timer.start()  # a peer that trickles bytes is cut off at the deadline
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return int(response.status)
    except http.client.HTTPException as exc:
        raise OSError(f"bad answer from {target.host}: {type(exc).__name__}") from None
    finally:
        timer.cancel()
        conn.close()


def _cut(conn: http.client.HTTPConnection) -> None:
    if conn.sock is not None:
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
