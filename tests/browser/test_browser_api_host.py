"""In a real browser (headless Chromium): moving a connector's API base URL to another host
while credentials are stored needs the operator's tick, which names the host and the count."""

from __future__ import annotations

import pytest

from alloy_oauth.models import Connector, Credential

from tests.support.browser import log_in, save_screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_save_asks_then_saves_once_ticked(page, live_server, operator, tmp_path):
    connector = Connector.objects.create(name="Example API", slug="example-api",
                                         auth_type="api_key",
                                         api_base_url="https://api.example.com/v1")
    for owner in ("ann", "bob"):
        Credential.objects.create(connector=connector, external_id=owner, api_key=f"{owner}-key")
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/{connector.pk}/change/")
    assert not page.is_visible("#id_confirm_api_host")  # nothing to confirm yet
    page.fill("#id_api_base_url", "https://api.elsewhere.example/v1")

    with page.expect_navigation():
        page.click("input[name=_save]")  # without the tick: refused, and asked
    connector.refresh_from_db()
    assert connector.api_base_url == "https://api.example.com/v1"
    question = page.inner_text(".field-confirm_api_host")
    assert ("The API base URL now points to another host: https://api.elsewhere.example "
            "instead of https://api.example.com.") in question
    assert "each of the 2 credentials stored for this connector sends its secret" in question
    box = page.locator("#id_confirm_api_host")
    assert box.is_visible() and not box.is_checked()
    assert page.inner_text("label[for=id_confirm_api_host]") == (
        "Yes, send the stored secrets of 2 credentials to https://api.elsewhere.example")
    assert page.input_value("#id_api_base_url") == "https://api.elsewhere.example/v1"  # kept
    assert "ann-key" not in page.content()
    save_screenshot(page, "connector-api-host-confirm.png", tmp_path)

    page.check("#id_confirm_api_host")
    with page.expect_navigation():
        page.click("input[name=_save]")
    connector.refresh_from_db()
    assert connector.api_base_url == "https://api.elsewhere.example/v1"
    assert page.url.endswith("/admin/alloy_oauth/connector/")
