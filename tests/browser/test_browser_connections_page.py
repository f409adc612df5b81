"""The Connections page in a real browser (headless Chromium) against the live
django-oauth-toolkit provider: it says what is happening while and after connecting, after
Disconnect, and when a connection's status changes; connectors show their logo (issue 15
items 8 and 9)."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from alloy_oauth.models import Connector, Credential

from tests.support.browser import log_in, save_screenshot, sign_in_at_provider

pytestmark = pytest.mark.django_db(transaction=True)

STATUS = re.compile(r".*/oauth/connections/status/$")


def mark(page) -> None:
    """A marker that a reload would lose: the page updated itself if it is still there."""
    page.evaluate("window.notReloaded = true")


def not_reloaded(page) -> bool:
    return page.evaluate("window.notReloaded === true")


def polling_every(page, milliseconds: int) -> None:
    """The Connections page as served, but polling every ``milliseconds`` (10 s in use)."""
    def shorten(route):
        response = route.fetch()
        route.fulfill(response=response, body=response.text().replace(
            'data-alloy-oauth-poll="10000"', f'data-alloy-oauth-poll="{milliseconds}"'))
    page.route(re.compile(r".*/oauth/connections/$"), shorten)


def test_connecting_then_connected_without_a_reload(connections, oauth_provider,
                                                    tmp_path):
    mark(connections)
    notice = connections.locator(".alloy-oauth-notice")
    with connections.expect_popup() as popup_info:
        connections.click("a[data-alloy-oauth-connect=demo]")
    assert notice.inner_text().startswith("Connecting to Demo provider…")
    assert connections.locator(".alloy-oauth-cancel").is_visible()
    assert connections.get_attribute("a[data-alloy-oauth-connect=demo]", "aria-busy") == "true"
    save_screenshot(connections, "connections-connecting.png", tmp_path)
    sign_in_at_provider(popup_info.value, oauth_provider)
    connections.wait_for_function(
        "document.querySelector('tr[data-connector=demo]').innerText.includes('Disconnect')")
    assert notice.inner_text() == "Connected to Demo provider."
    assert not connections.locator(".alloy-oauth-cancel").is_visible()
    assert "Connected" in connections.inner_text("tr[data-connector=demo]")
    assert not_reloaded(connections)
    assert Credential.objects.get().status == Credential.Status.ACTIVE
    save_screenshot(connections, "connections-connected.png", tmp_path)


def without_ticket(page) -> None:
    """The Connect button without its start ticket: the popup first asks to confirm, on a
    page of ours (which its opener can still reach, unlike the provider's pages)."""
    page.evaluate("document.querySelector('a[data-alloy-oauth-connect=demo]').href ="
                  " '/oauth/demo/authorize/'")


def test_cancel_closes_the_window(connections, oauth_provider):
    without_ticket(connections)
    with connections.expect_popup() as popup_info:
        connections.click("a[data-alloy-oauth-connect=demo]")
    popup = popup_info.value
    popup.wait_for_selector("button[type=submit]")
    with popup.expect_event("close"):
        connections.click(".alloy-oauth-cancel")
    notice = connections.locator(".alloy-oauth-notice")
    assert notice.inner_text() == "Connecting to Demo provider was cancelled."
    assert connections.get_attribute("a[data-alloy-oauth-connect=demo]", "aria-busy") is None
    assert not connections.locator(".alloy-oauth-error").is_visible()
    assert not Credential.objects.exists()


def test_cancel_at_the_provider_stops_waiting(connections, oauth_provider):
    # The provider's COOP header cuts the popup off: this page can no longer close it (the
    # person does), but stops waiting for it.
    with connections.expect_popup() as popup_info:
        connections.click("a[data-alloy-oauth-connect=demo]")
    popup_info.value.wait_for_url(f"{oauth_provider.login_url}**")
    connections.click(".alloy-oauth-cancel")
    notice = connections.locator(".alloy-oauth-notice")
    assert notice.inner_text() == "Connecting to Demo provider was cancelled."
    assert connections.get_attribute("a[data-alloy-oauth-connect=demo]", "aria-busy") is None


def test_a_failure_is_said(connections, oauth_provider, dot_connector):
    dot_connector.client_secret = "wrong"  # the token exchange fails: invalid_client
    dot_connector.save()
    with connections.expect_popup() as popup_info:
        connections.click("a[data-alloy-oauth-connect=demo]")
    sign_in_at_provider(popup_info.value, oauth_provider)
    error = connections.locator(".alloy-oauth-error")
    error.wait_for(state="visible")
    assert error.inner_text().startswith("Could not connect to Demo provider: ")
    assert not connections.locator(".alloy-oauth-notice").is_visible()
    assert "wrong" not in error.inner_text()
    assert not Credential.objects.filter(status=Credential.Status.ACTIVE).exists()


def test_closing_the_window_on_our_page_is_said(connections, dot_connector):
    without_ticket(connections)
    with connections.expect_popup() as popup_info:
        connections.click("a[data-alloy-oauth-connect=demo]")
    popup = popup_info.value
    popup.wait_for_selector("button[type=submit]")
    popup.wait_for_timeout(600)
    popup.close()
    error = connections.locator(".alloy-oauth-error")
    error.wait_for(state="visible")
    assert error.inner_text() == "The window was closed before the connection was made."


def test_disconnect_says_so(connections, end_user, dot_connector):
    Credential.objects.create(connector=dot_connector, user=end_user, access_token="unknown-a",
                              refresh_token="unknown-r")
    connections.reload()
    with connections.expect_navigation():
        connections.click("tr[data-connector=demo] button:has-text('Disconnect')")
    assert connections.inner_text(".alloy-oauth-messages") == "Disconnected from Demo provider."
    assert "Not connected" in connections.inner_text("tr[data-connector=demo]")
    assert not Credential.objects.filter(status=Credential.Status.ACTIVE).exists()


def test_the_page_follows_a_status_change(page, connections, end_user,
                                          dot_connector):
    credential = Credential.objects.create(connector=dot_connector, user=end_user,
                                           access_token="a", refresh_token="r",
                                           last_refreshed_at=timezone.now())
    polling_every(page, 500)
    page.reload()
    assert "refreshed just now" in page.inner_text("tr[data-connector=demo]")
    mark(page)
    Credential.objects.filter(pk=credential.pk).update(status=Credential.Status.REAUTH_REQUIRED)
    page.wait_for_function(
        "document.querySelector('tr[data-connector=demo]').innerText"
        ".includes('Needs reconnecting')", timeout=10_000)
    assert page.locator("tr[data-connector=demo] a:has-text('Reconnect')").is_visible()
    assert not_reloaded(page)


def hide(page, hidden: bool) -> None:
    """What the browser does when the tab goes to the background (or comes back)."""
    page.evaluate("hidden => { Object.defineProperty(document, 'hidden',"
                  " {configurable: true, get: () => hidden});"
                  " document.dispatchEvent(new Event('visibilitychange')); }", hidden)


def test_polling_stops_while_hidden_and_backs_off_on_errors(page, connections):
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url)
            if STATUS.match(request.url) else None)
    polling_every(page, 300)
    page.reload()
    for _ in range(100):  # polling (every 0.3 s, however long a loaded machine takes)
        if len(requests) >= 3:
            break
        page.wait_for_timeout(100)
    assert len(requests) >= 3, requests
    hide(page, True)
    page.wait_for_timeout(300)
    requests.clear()
    page.wait_for_timeout(1500)
    assert requests == []  # hidden: none
    page.route(STATUS, lambda route: route.fulfill(status=503, body="down"))
    hide(page, False)
    page.wait_for_timeout(4000)
    # Shown again: at once, then after 0.6 s, 1.2 s, 2.4 s (not every 0.3 s: 13 times).
    assert 2 <= len(requests) <= 4


def test_logos_and_the_initial(page, connections, dot_connector, tmp_path):
    Connector.objects.filter(pk=dot_connector.pk).update(logo_url="tests/logo.svg")
    Connector.objects.create(name="Zeta", slug="zeta", auth_url="https://zeta.example/a",
                             token_url="https://zeta.example/t", client_id="z",
                             validated_at=timezone.now())  # (live: offered to end users)
    connections.reload()
    logos = connections.locator("tr[data-connector=demo] img.alloy-oauth-logo")
    assert logos.count() == 2  # by the name, and in the Connect button
    for index in range(2):
        assert logos.nth(index).evaluate("img => img.complete && img.naturalWidth > 0")
        assert logos.nth(index).get_attribute("alt") == ""
    button = connections.locator("a[data-alloy-oauth-connect=demo] img")
    assert button.bounding_box()["width"] == 18
    initial = connections.locator("tr[data-connector=zeta] .alloy-oauth-logo-initial").first
    assert initial.inner_text() == "Z"
    save_screenshot(connections, "connections-logos.png", tmp_path)


def test_the_operator_sets_a_logo_in_the_admin(chromium, live_server, connections,
                                               operator, dot_connector):
    admin = chromium.new_context(viewport={"width": 1440, "height": 900})
    admin.set_default_timeout(20_000)
    page = admin.new_page()
    log_in(page, live_server)
    change = f"{live_server.url}/admin/alloy_oauth/connector/{dot_connector.pk}/change/"
    page.goto(change)
    assert "alloy_oauth/logos/github.svg" in page.inner_text(".field-logo_url")  # help text
    page.fill("#id_logo_url", "http://cdn.example/logo.svg")
    page.click("input[name=_continue]")
    assert "Enter an https URL" in page.inner_text(".field-logo_url .errorlist")
    page.fill("#id_logo_url", "tests/logo.svg")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    admin.close()
    assert Connector.objects.get(pk=dot_connector.pk).logo_url == "tests/logo.svg"
    connections.reload()
    logo = connections.locator("tr[data-connector=demo] img.alloy-oauth-logo").first
    assert logo.evaluate("img => img.complete && img.naturalWidth > 0")


def test_the_name_and_log_out(connections):
    assert connections.inner_text(".alloy-oauth-user") == "Signed in as alice"
    with connections.expect_navigation():
        connections.click("button:has-text('Log out')")
    connections.goto(connections.url)
    assert "/accounts/login/" in connections.url
