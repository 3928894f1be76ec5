"""The sanctions ladder (R20): what each step forbids, enforced here by the server.

- ``warning``: shown to the account holder with the reason; nothing else changes.
- ``restricted``: no new avatars and no new renders (403 ``account_restricted``); what is
  already made stays downloadable. A moderator lifts it (or the appeal succeeds).
- ``suspended``: no training, rendering or deployment; queued and running jobs stop at
  their next stage (``likeness.blocked`` answers ``account_suspended`` in the worker too).
- ``closed``: no login, every token and browser session ends, nothing runs.

Every step is set by a moderator with a reason and audited (``EventTag.SANCTION``).
"""

from __future__ import annotations

from compliance.audit import EventTag

from . import sessions
from .accounts import revoke_all_tokens
from .audit import record_event
from .errors import Forbidden, InvalidInput
from .models import Sanction, User, utcnow

LADDER = (Sanction.NONE, Sanction.WARNING, Sanction.RESTRICTED, Sanction.SUSPENDED, Sanction.CLOSED)

# What the account holder reads, wherever a step stops them (the reason follows).
MESSAGES = {
    Sanction.WARNING: "Your account has a warning from our trust & safety team.",
    Sanction.RESTRICTED: "Your account is restricted by our trust & safety team: "
    "no new avatars or renders until a moderator lifts it. You can appeal at /account/appeal.",
    Sanction.SUSPENDED: "Your account is suspended by our trust & safety team: "
    "no training, rendering or deployment. You can appeal at /account/appeal.",
    Sanction.CLOSED: "This account is closed by our trust & safety team. "
    "You can appeal at /account/appeal.",
}

# the reason codes ``likeness.blocked`` answers for the steps that stop every use
BLOCKING = {Sanction.SUSPENDED: "account_suspended", Sanction.CLOSED: "account_closed"}


def message(user: User) -> str:
    """The step's notice with the moderator's stated reason."""
    text = MESSAGES.get(user.sanction, "")
    return f"{text} Reason: {user.sanction_reason}" if user.sanction_reason else text


def status(user: User) -> dict[str, str | None]:
    """The account's step as the API shows it (``GET /api/v1/me``), with the reason."""
    since = user.sanctioned_at.isoformat() if user.sanctioned_at else None
    shown = user.sanction != Sanction.NONE
    return {
        "step": user.sanction.value,
        "reason": user.sanction_reason if shown else None,
        "since": since if shown else None,
        "message": message(user) if shown else None,
        "appeal_url": "/account/appeal" if shown else None,
    }


def at_least(user: User, step: Sanction) -> bool:
    return LADDER.index(user.sanction) >= LADDER.index(step)


def require_may_create(user: User) -> None:
    """403 ``account_restricted`` / ``account_suspended`` / ``account_closed``: new
    avatars and renders need an account at most on a warning."""
    if at_least(user, Sanction.RESTRICTED):
        raise Forbidden(message(user), code=f"account_{user.sanction}")


def next_step(current: Sanction) -> Sanction:
    """One step stricter (``closed`` stays ``closed``)."""
    return LADDER[min(LADDER.index(current) + 1, len(LADDER) - 1)]


def parse_step(value: str) -> Sanction:
    try:
        return Sanction(value)
    except ValueError:
        names = ", ".join(s.value for s in LADDER)
        raise InvalidInput(f"step must be one of {names}.", code="bad_step") from None


def apply(user: User, step: Sanction, reason: str, admin_id: str, report_id: str | None) -> None:
    """Set the account's step with the reason (the caller commits); closing ends every
    token and browser session at once."""
    previous = user.sanction
    user.sanction, user.sanction_reason, user.sanctioned_at = step, reason, utcnow()
    if step == Sanction.NONE:
        user.sanction_reason = None
    if step == Sanction.CLOSED:
        revoke_all_tokens(user.id)
        sessions.end_all(user.id)
    record_event(
        EventTag.SANCTION,
        actor_id=admin_id,
        data={
            "user": user.id,
            "from": previous.value,
            "to": step.value,
            "reason": reason,
            "report": report_id,
        },
    )
