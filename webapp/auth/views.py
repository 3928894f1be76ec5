from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from compliance.audit import EventTag

from .. import accounts, ratelimits, sessions
from ..audit import record_event
from ..errors import DomainError
from ..extensions import db, login_manager
from ..models import User
from . import bp
from .forms import ChangePasswordForm, ForgotForm, LoginForm, ResetForm, SignupForm


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    """Only while the server-side session named by the cookie is live (see sessions)."""
    return sessions.live_user(user_id)


def _safe_next(default: str) -> str:
    target = request.args.get("next", "")
    parts = urlsplit(target)
    return target if target.startswith("/") and not parts.netloc and not parts.scheme else default


def _sign_in(user: User) -> None:
    sessions.end_current()  # a new login never inherits an older session id
    login_user(user)
    sessions.start(user, request.user_agent.string)


@bp.route("/signup", methods=["GET", "POST"])
@ratelimits.signup
def signup():
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user, _ = accounts.register(form.email.data or "", form.password.data or "")
        except DomainError as exc:
            form.form_errors.append(exc.message)
        else:
            # The same answer whether the email was new or taken (then its owner got a mail).
            if user is not None:
                _sign_in(user)
            email = (form.email.data or "").strip().lower()
            flash(f"Welcome! We sent a message to {email}.", "ok")
            return redirect(url_for("dashboard.index"))
    return render_template("auth/signup.html", form=form), 422 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
@ratelimits.login
def login():
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data or "", form.password.data or "")
        except DomainError as exc:
            form.form_errors.append(exc.message)
        else:
            _sign_in(user)
            return redirect(_safe_next(url_for("dashboard.index")))
    return render_template("auth/login.html", form=form), 401 if form.errors else 200


@bp.post("/logout")
@login_required
def logout():
    record_event(EventTag.AUTH_LOGOUT, actor_id=current_user.id)
    sessions.end_current()
    db.session.commit()
    logout_user()
    flash("You are logged out.", "ok")
    return redirect(url_for("auth.login"))


@bp.post("/logout/everywhere")
@login_required
def logout_everywhere():
    ended = sessions.end_all(current_user.id)
    record_event(
        EventTag.AUTH_LOGOUT,
        actor_id=current_user.id,
        data={"reason": "everywhere", "sessions": ended},
    )
    db.session.commit()
    sessions.end_current()
    logout_user()
    flash("You are logged out on every browser. API tokens stay until you revoke them.", "ok")
    return redirect(url_for("auth.login"))


def _account_page(form: ChangePasswordForm, status: int = 200):
    return render_template(
        "auth/account.html",
        form=form,
        tokens=accounts.live_tokens(current_user),
        session_count=sessions.live_count(current_user.id),
    ), status


@bp.get("/account")
@login_required
def account():
    return _account_page(ChangePasswordForm())


@bp.post("/account/password")
@login_required
@ratelimits.password_change
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            accounts.change_password(
                current_user,
                form.current.data or "",
                form.password.data or "",
                keep_session=sessions.current_id(),
            )
        except DomainError as exc:
            form.form_errors.append(exc.message)
        else:
            flash(
                "Your password is changed; every other browser and API token is logged out.", "ok"
            )
            return redirect(url_for("auth.account"))
    return _account_page(form, 422)


@bp.post("/account/tokens/<token_id>/revoke")
@login_required
def revoke_token(token_id: str):
    accounts.revoke_token(current_user, token_id)
    flash("The token is revoked: it no longer works.", "ok")
    return redirect(url_for("auth.account"))


@bp.route("/forgot", methods=["GET", "POST"])
@ratelimits.reset_request
def forgot():
    form = ForgotForm()
    if form.validate_on_submit():
        email = (form.email.data or "").strip()
        accounts.request_password_reset(email)
        minutes = current_app.config["PASSWORD_RESET_TTL_MINUTES"]
        flash(
            f"If {email} has an account, we sent it a link to choose a new password. "
            f"The link works once, for {minutes} minutes.",
            "ok",
        )
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot.html", form=form), 422 if form.errors else 200


@bp.route("/reset/<token>", methods=["GET", "POST"])
@ratelimits.reset_confirm
def reset(token: str):
    accounts.reset_row(token)  # a used or expired link: the error page says so
    form = ResetForm()
    if form.validate_on_submit():
        try:
            accounts.reset_password(token, form.password.data or "")
        except DomainError as exc:
            form.form_errors.append(exc.message)
        else:
            if current_user.is_authenticated:
                logout_user()
            flash("Your password is changed and every session is logged out: log in with it.", "ok")
            return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", form=form), 422 if form.errors else 200
