"""Pricing -> test checkout -> credits shown, in a real browser (development mode)."""

from __future__ import annotations

import pytest

from .conftest import sign_up

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_buy_credits_with_the_test_checkout(live_server, page):
    _, base = live_server
    sign_up(page, base, "ada@example.com")

    page.get_by_role("link", name="Pricing").click()
    assert "€129.00" in page.inner_text("main")
    page.fill("#minutes", "3")
    page.click("#buy-credits")
    page.wait_for_url(base + "/checkout/test/*")
    assert page.locator(".test-mode").is_visible()
    assert "3.00 EUR" in page.inner_text("main")
    page.click("#pay-test")

    page.wait_for_url(base + "/billing")
    assert page.locator("#balance").inner_text() == "3 min 0 s"
    assert page.locator("#orders .pill").first.inner_text() == "paid"
    assert "Test payment received" in page.inner_text(".flash")
