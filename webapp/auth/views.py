from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from compliance.audit import EventTag

from .. import accounts
from ..audit import record_event
from ..errors import DomainError
from ..extensions import db, limiter, login_manager
from ..models import User
from . import bp
from .forms import LoginForm, SignupForm


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    return db.session.get(User, user_id)


def _auth_limit() -> str:
    return str(current_app.config["RATELIMIT_AUTH"])


def _safe_next(default: str) -> str:
    target = request.args.get("next", "")
    parts = urlsplit(target)
    return target if target.startswith("/") and not parts.netloc and not parts.scheme else default


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(_auth_limit, methods=["POST"])
def signup():  # type: ignore[no-untyped-def]
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user = accounts.signup(form.email.data or "", form.password.data or "")
        except DomainError as exc:
            form.form_errors.append(exc.message)
        else:
            login_user(user)
            flash("Welcome! Your account is ready.", "ok")
            return redirect(url_for("dashboard.index"))
    return render_template("auth/signup.html", form=form), 422 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_auth_limit, methods=["POST"])
def login():  # type: ignore[no-untyped-def]
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data or "", form.password.data or "")
        except DomainError as exc:
            form.form_errors.append(exc.message)
        else:
            login_user(user)
            return redirect(_safe_next(url_for("dashboard.index")))
    return render_template("auth/login.html", form=form), 401 if form.errors else 200


@bp.post("/logout")
@login_required
def logout():  # type: ignore[no-untyped-def]
    record_event(EventTag.AUTH_LOGOUT, actor_id=current_user.id)
    db.session.commit()
    logout_user()
    flash("You are logged out.", "ok")
    return redirect(url_for("auth.login"))
