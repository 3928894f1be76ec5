"""Billing tests run against the local Stripe wire-format server of ``tests/fake_stripe.py``."""

from __future__ import annotations

from ..fake_stripe import WEBHOOK_SECRET, deliver, event, fake_stripe, stripe_app  # noqa: F401
