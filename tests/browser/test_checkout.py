"""Pricing -> test checkout -> credits shown, in a real browser (development mode)."""

from __future__ import annotations

import pytest

from ..conftest import TEST_PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_buy_credits_with_the_test_checkout(live_server, page):
    _, base = live_server
    page.goto(base + "/signup")
    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.fill("input[name=confirm]", TEST_PASSWORD)
    page.click("#signup-submit")
    page.wait_for_url(base + "/dashboard")

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
