"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium (or CHROMIUM_PATH)
driven by Playwright. No browser is downloaded."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from alloy_oauth.models import Credential

from . import REPO_DIR

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
IMAGES = REPO_DIR / "docs" / "images"


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip("needs Chromium (apt-get install chromium, or set CHROMIUM_PATH)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    # Playwright drives the browser from an event loop; the ORM calls the tests make in the
    # same thread are still synchronous.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, live_server: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


def save_screenshot(page: Any, name: str, directory: Path) -> Path:
    path = directory / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("ALLOY_OAUTH_UPDATE_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, IMAGES / name)
    return path


@contextmanager
def redrawn(page: Any, timeout: float = 20_000) -> Iterator[None]:
    """Wait, after the block, until the Connections page has redrawn its table
    (connections.js's ``alloy-oauth:updated``), as it does instead of reloading."""
    page.evaluate("""() => { window.__alloyOAuthRedrawn = false;
        document.addEventListener("alloy-oauth:updated",
                                  () => { window.__alloyOAuthRedrawn = true; }, {once: true}); }""")
    yield
    page.wait_for_function("window.__alloyOAuthRedrawn === true", timeout=timeout)


def sign_in(page: Any, live_server: Any, user: Any, client: Client | None = None) -> Client:
    """``user`` signed in to ``page``'s browser: a test client (``client``, or a new one) logs
    in, and the browser gets its session cookie. The client shares that session."""
    client = client or Client()
    client.force_login(user)
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "url": live_server.url,
                               "value": client.cookies[settings.SESSION_COOKIE_NAME].value}])
    return client


def log_in(page, live_server) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "operator-pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def sign_in_at_provider(popup, provider) -> None:
    popup.wait_for_url(f"{provider.login_url}**")
    popup.fill("#id_username", provider.username)
    popup.fill("#id_password", provider.password)
    popup.click("button[type=submit]")


def connected_credential(site: Client, provider) -> Credential:
    """Connect the signed-in end user through the live provider: real tokens."""
    provider.connect(site, "demo")
    credential = Credential.objects.get()
    assert provider.call_api(credential.access_token).status_code == 200
    return credential


def assert_revoked_at_the_provider(credential: Credential, provider) -> None:
    access_token = credential.access_token
    credential.refresh_from_db()
    assert credential.status == Credential.Status.REVOKED
    assert (credential.access_token, credential.refresh_token) == ("", "")
    assert provider.call_api(access_token).status_code == 401  # the grant is gone there too
