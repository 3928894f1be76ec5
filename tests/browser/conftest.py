"""A live server in a thread and headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Chromium's fake camera and microphone play their files on clocks of their own: against
# the page's MediaRecorder the sound drifted by a second or more, and in a clean-clone CI
# run even a 3 s / 5 s allowance failed once. These tests check the page (each cue shown at
# its moment, the recording sent, the code heard, the head turn seen, the consent decided),
# so they accept a cue met anywhere in the recording; the server's own timing windows
# (0.3 / 2.2 s) are tested on recordings in tests/webapp and tests/functional.
FAKE_DEVICE_TIMING = {"CONSENT_CUE_EARLY_S": 30.0, "CONSENT_CUE_LATE_S": 30.0}


@pytest.fixture
def live_config() -> dict[str, object]:
    """Extra app config for ``live_server``; a test module may override this fixture."""
    return {}


@pytest.fixture
def live_server(make_app, live_config) -> Iterator[tuple[object, str]]:  # type: ignore[no-untyped-def]
    app = make_app(WTF_CSRF_ENABLED=True, **live_config)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = (
        os.environ.get("DHF_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not path:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: 'make test' installs Debian's chromium")
        pytest.skip("no chromium: run 'make test' (installs Debian's chromium) or set DHF_CHROMIUM")
    return path


@pytest.fixture
def open_page(chromium_path: str) -> Iterator:  # type: ignore[no-untyped-def]
    """Open a page in a fresh headless Chromium launched with extra flags."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browsers = []

        def launch(*extra: str):  # type: ignore[no-untyped-def]
            browser = pw.chromium.launch(
                executable_path=chromium_path, headless=True, args=[*CHROMIUM_FLAGS, *extra]
            )
            browsers.append(browser)
            page = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
            page.set_default_timeout(15_000)
            return page

        yield launch
        for browser in browsers:
            browser.close()


@pytest.fixture
def page(open_page):  # type: ignore[no-untyped-def]
    return open_page()


def sign_up(page, base: str, email: str) -> None:  # type: ignore[no-untyped-def]
    """Create an account through the signup form; ends on the dashboard."""
    from ..conftest import TEST_PASSWORD

    page.goto(base + "/signup")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.fill("input[name=confirm]", TEST_PASSWORD)
    page.click("#signup-submit")
    page.wait_for_url(base + "/dashboard")
