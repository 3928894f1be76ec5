"""Response hardening: security headers on every response, and ``ProxyFix`` only for the
number of reverse proxies the configuration says to trust (``DHF_TRUSTED_PROXIES``).

Without trusted proxies, ``X-Forwarded-For`` is ignored: per-IP rate limits see the
socket's peer, so a client cannot pick its own bucket by sending the header.
"""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

# The pages load only their own scripts and styles from /static: no inline code.
# blob:/data: for the recorder previews and generated plots; mediastream: for the camera;
# connect-src blob: for the 3D page (three.js fetches the GLB's own textures as blobs).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for older browsers
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _harden(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    # Pages and API answers may carry secrets (passcodes, tokens, reset links, webhook
    # secrets): no cache keeps them. Static files and responses that chose a policy keep it.
    if request.endpoint != "static" and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.after_request(_harden)
    hops = int(app.config["TRUSTED_PROXIES"])
    if hops > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )
