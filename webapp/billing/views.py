from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from ..errors import DomainError
from ..extensions import db
from ..models import Avatar, Order
from ..ownership import get_owned_or_404
from . import bp, ledger, service
from .gateway import DevGateway, dev_event, gateway, sign_payload


@bp.get("/pricing")
def pricing():
    avatars = []
    if current_user.is_authenticated:
        query = select(Avatar).where(Avatar.owner_id == current_user.id)
        avatars = [a for a in db.session.scalars(query) if not service.training_paid(a.id)]
    return render_template("billing/pricing.html", prices=service.prices(), avatars=avatars)


@bp.post("/checkout")
@login_required
def checkout():
    item = request.form.get("item", "")
    minutes = request.form.get("quantity", type=int)
    try:
        _, url = service.create_checkout(current_user, item, request.form.get("avatar_id"), minutes)
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(url_for("billing.pricing"))
    return redirect(url)


@bp.get("/billing")
@login_required
def orders():
    query = select(Order).where(Order.owner_id == current_user.id).order_by(Order.created_at.desc())
    return render_template(
        "billing/orders.html",
        orders=list(db.session.scalars(query)),
        balance=ledger.balance(current_user.id),
    )


@bp.route("/checkout/test/<order_id>", methods=["GET", "POST"])
@login_required
def test_checkout(order_id: str):
    """The development checkout: completes the real fulfilment path with a signed event."""
    if not isinstance(gateway(), DevGateway):
        abort(404)
    order = get_owned_or_404(Order, order_id, current_user.id)
    if request.method == "POST":
        payload = dev_event(order)
        service.handle_webhook(payload, sign_payload(payload, gateway().webhook_secret))
        flash("Test payment received (TEST MODE, no money moved).", "ok")
        return redirect(url_for("billing.orders"))
    return render_template("billing/test_checkout.html", order=order)


@bp.get("/admin/orders")
@login_required
def admin_orders():
    if not current_user.is_admin:
        abort(404)
    query = select(Order).order_by(Order.created_at.desc()).limit(500)
    return render_template("billing/admin_orders.html", orders=list(db.session.scalars(query)))
