"""A person in a real browser: sign up, see the dashboard with live progress, log out, log in."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Job, User

from ..conftest import TEST_PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _set_progress(app, job_id: str, progress: float, stage: str, status: str = "started") -> None:
    with app.app_context():
        job = db.session.get(Job, job_id)
        job.progress, job.stage, job.status = progress, stage, status
        db.session.commit()


def test_signup_dashboard_live_progress_logout_login(live_server, page, tmp_path):
    app, base = live_server
    page.goto(base + "/")
    page.get_by_role("link", name="Get started").click()

    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=password]", "short")
    page.fill("input[name=confirm]", "short")
    page.click("#signup-submit")
    assert page.locator(".error").first.inner_text() == "Use a password of at least 10 characters."

    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.fill("input[name=confirm]", TEST_PASSWORD)
    page.click("#signup-submit")
    page.wait_for_url(base + "/dashboard")
    assert page.locator("h1").inner_text() == "Dashboard"
    assert page.locator(".who").inner_text() == "ada@example.com"
    assert page.locator(".test-mode").is_visible()
    assert page.locator("#no-avatars").is_visible()

    # a job appears and advances while the page is open: the bar follows without a reload
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "ada@example.com"))
        job = Job(
            owner_id=user.id,
            kind="train_avatar",
            queue="gpu",
            target_id="a" * 32,
            status="started",
            progress=0.25,
            stage="ingest",
        )
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    page.reload()
    row = page.locator(f'[data-job="{job_id}"]')
    assert row.locator(".pct").inner_text() == "25%"
    _set_progress(app, job_id, 0.8, "face model")
    # locator waits, not wait_for_function strings: the page's CSP forbids eval
    expect(row.locator(".pct")).to_have_text("80%", timeout=10_000)
    assert row.locator(".stage").inner_text() == "face model"
    assert row.locator("progress").evaluate("el => el.value") == pytest.approx(0.8)
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    if os.environ.get("DHF_SCREENSHOT_DIR"):
        page.screenshot(
            path=os.path.join(os.environ["DHF_SCREENSHOT_DIR"], "dashboard.png"), full_page=True
        )

    page.click("#logout")
    page.wait_for_url(base + "/login")
    page.goto(base + "/dashboard")
    assert page.url.startswith(base + "/login")

    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(base + "/dashboard")
    assert page.locator(".who").inner_text() == "ada@example.com"
