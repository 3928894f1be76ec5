"""Identity verification (KYC, COMPLIANCE.md R1) behind one interface.

The configured provider (``DHF_KYC_PROVIDER``) starts a check for the account holder or,
for a subject who is another person, for that subject (``subject``). A provider's
decision always goes through :func:`decide`, which updates the check, the account's
``kyc_status`` and the audit log, so every provider behaves the same afterwards.

Providers: ``dev`` (auto-approves, development only), ``stripe_identity`` and
``self_hosted``; each lives in its own module and registers itself in ``PROVIDERS``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Protocol

from flask import current_app

from compliance.audit import EventTag

from ..audit import record_event
from ..errors import InvalidInput
from ..models import IdentityCheck, KycStatus, Subject, User, utcnow
from ..ownership import get_referenced


@dataclass(frozen=True)
class Started:
    check: IdentityCheck
    url: str | None  # where the person completes the check (None: nothing to do)


class Provider(Protocol):
    name: str

    def start(self, user: User, subject: Subject | None) -> Started: ...

    def refresh(self, check: IdentityCheck) -> IdentityCheck:
        """Bring ``check`` up to date with the provider (no-op where decisions are pushed)."""
        ...


PROVIDERS: dict[str, Provider] = {}


def register(provider: Provider) -> Provider:
    PROVIDERS[provider.name] = provider
    return provider


def configured() -> Provider:
    name = current_app.config["KYC_PROVIDER"]
    if name not in PROVIDERS:
        raise InvalidInput(
            f"Identity provider {name!r} is not configured here.", code="provider_unavailable"
        )
    return PROVIDERS[name]


def start(user: User, subject: Subject | None = None, requested: str | None = None) -> Started:
    """Start a check with the configured provider; asking for another one is refused."""
    provider = configured()
    if requested and requested != provider.name:
        raise InvalidInput(
            f"Identity provider {requested!r} is not configured here; "
            f"this service uses {provider.name!r}.",
            code="provider_unavailable",
        )
    return provider.start(user, subject)


def decide(check: IdentityCheck, status: str, reasons: list[str], is_adult: bool | None) -> None:
    """Record a provider's decision (idempotent: the same decision twice changes nothing).

    ``status``: verified | rejected | needs_review | pending. The account's ``kyc_status``
    follows a check of the account holder (``subject_id`` NULL); a subject's own check
    stays on the subject. Minors are rejected whatever the provider said (R1).
    """
    verdict = KycStatus(status)
    if is_adult is False and verdict == KycStatus.VERIFIED:
        verdict, reasons = KycStatus.REJECTED, [*reasons, "under_18"]
    if (check.status, list(check.reasons), check.is_adult) == (verdict, reasons, is_adult):
        return
    check.status, check.reasons, check.is_adult = verdict, reasons, is_adult
    check.decided_at = utcnow() if verdict in (KycStatus.VERIFIED, KycStatus.REJECTED) else None
    if check.subject_id is None:
        user = get_referenced(User, check.user_id)
        user.kyc_status = KycStatus.PENDING if verdict == KycStatus.NEEDS_REVIEW else verdict
    record_event(
        EventTag.KYC_DECISION,
        actor_id=check.user_id,
        data={
            "check": check.id,
            "provider": check.provider,
            "status": verdict,
            "reasons": reasons,
            "subject": check.subject_id,
            "scores": dict(check.scores or {}),
        },
    )


def _register_all() -> None:
    """Import every provider module of this package; each registers itself."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_register_all()
