"""The credits ledger: every grant, reservation, spend and refund is a row; the balance is
their sum and never stored. Units are seconds of rendered output.

Every movement has an idempotency key (``grant:<order>``, ``reserve:<render>``, ...)
that is unique in the table, so a retried job or a redelivered webhook cannot move
credits twice. Writers first bump ``users.ledger_version``: that UPDATE takes the user's
row lock (PostgreSQL) or the write lock (SQLite), so two renders racing for the last
credits are checked one after the other.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import DomainError
from ..extensions import db
from ..models import CreditEntry, Order, Render, User


class InsufficientCredits(DomainError):
    status, code = 402, "insufficient_credits"


def balance(owner_id: str) -> int:
    total = db.session.scalar(
        select(func.coalesce(func.sum(CreditEntry.delta), 0)).where(
            CreditEntry.owner_id == owner_id
        )
    )
    return int(total or 0)


def _lock(owner_id: str) -> None:
    db.session.execute(
        update(User).where(User.id == owner_id).values(ledger_version=User.ledger_version + 1)
    )


def _post(owner_id: str, delta: int, kind: str, target: str, **links: str | None) -> bool:
    """Insert one movement unless its key exists; True when it was new."""
    key = f"{kind}:{target}"
    if db.session.scalar(select(CreditEntry.id).where(CreditEntry.idem_key == key)):
        return False
    try:
        with db.session.begin_nested():
            db.session.add(
                CreditEntry(owner_id=owner_id, delta=delta, kind=kind, idem_key=key, **links)
            )
    except IntegrityError:  # a concurrent writer got there first
        return False
    return True


def credit_seconds(order: Order) -> int:
    return order.quantity * 60 if order.item == "render_credits" else 0


def grant(order: Order) -> bool:
    _lock(order.owner_id)
    return _post(order.owner_id, credit_seconds(order), "grant", order.id, order_id=order.id)


def refund(order: Order) -> bool:
    """Reverse an order's credits (the balance may go negative if they were spent)."""
    _lock(order.owner_id)
    return _post(order.owner_id, -credit_seconds(order), "refund", order.id, order_id=order.id)


def reserve(render: Render, seconds: int) -> None:
    """Hold credits for a queued render, or raise InsufficientCredits (402)."""
    _lock(render.owner_id)
    available = balance(render.owner_id)
    if available < seconds:
        raise InsufficientCredits(
            f"This render needs {seconds} s of credits; you have {max(available, 0)} s. "
            "Buy render credits on the pricing page."
        )
    if _post(render.owner_id, -seconds, "reserve", render.id, render_id=render.id):
        render.credits_reserved = seconds


def settle(render: Render, used_seconds: int) -> None:
    """A finished render: give the reservation back and spend what it used."""
    _lock(render.owner_id)
    _post(render.owner_id, render.credits_reserved, "release", render.id, render_id=render.id)
    _post(render.owner_id, -used_seconds, "spend", render.id, render_id=render.id)


def charge_live(owner_id: str, minute_key: str, seconds: int) -> str:
    """Debit one started minute of a live show (key ``live:<show job>:<minute>``):
    ``"charged"`` now, ``"paid"`` by an earlier run of the same show job (a restarted job
    never pays twice), or ``"short"``, nothing written, when the balance does not cover it."""
    _lock(owner_id)
    key = f"live:{minute_key}"
    if db.session.scalar(select(CreditEntry.id).where(CreditEntry.idem_key == key)):
        return "paid"
    if balance(owner_id) < seconds:
        return "short"
    return "charged" if _post(owner_id, -seconds, "live", minute_key) else "paid"


def release(render: Render) -> None:
    """A failed or cancelled render: the reservation comes back in full."""
    _lock(render.owner_id)
    _post(render.owner_id, render.credits_reserved, "release", render.id, render_id=render.id)
