"""Identity tests run against the local Stripe wire-format server of ``tests/fake_stripe.py``."""

from __future__ import annotations

from ..fake_stripe import fake_stripe  # noqa: F401
