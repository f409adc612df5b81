"""connect.js in a real browser: AlloyOAuth.connect() against the live provider (whose pages
send Cross-Origin-Opener-Policy: same-origin, like many real providers)."""

from __future__ import annotations

import pytest

from alloy_oauth.models import Credential

from tests.support.browser import sign_in, sign_in_at_provider

pytestmark = pytest.mark.django_db(transaction=True)


def start(page, script: str):
    """Run AlloyOAuth.connect(...) and keep its outcome in window.outcome."""
    with page.expect_popup() as popup_info:
        page.evaluate(
            "window.outcome = null;"
            f"{script}.then(r => window.outcome = {{ok: true, value: r}},"
            " e => window.outcome = {ok: false, reason: e.reason, message: e.message});"
            "null")  # (returning the Promise would make evaluate() wait for it)
    return popup_info.value


def outcome(page, timeout: int = 20_000):
    page.wait_for_function("window.outcome !== null", timeout=timeout)
    return page.evaluate("window.outcome")


def test_success_resolves_with_the_credential(connections, oauth_provider, end_user):
    popup = start(connections, "AlloyOAuth.connect('demo')")
    sign_in_at_provider(popup, oauth_provider)
    result = outcome(connections)
    credential = Credential.objects.get()
    flow = result["value"].pop("flow")
    assert len(flow) == 32  # this attempt's id: another tab's result would not match
    assert result == {"ok": True, "value": {
        "source": "alloy_oauth", "connector": "demo", "status": "connected",
        "credential": credential.pk, "created": True}}
    assert credential.user == end_user
    for _ in range(50):  # the popup closes itself after reporting
        if popup.is_closed():
            break
        connections.wait_for_timeout(100)
    assert popup.is_closed()


def test_the_connect_button_reloads_a_host_page_connected(page, live_server, oauth_provider,
                                                          end_user, dot_connector):
    """On a page of the host (the Connections page redraws itself instead: see
    test_browser_connections_page.py)."""
    sign_in(page, live_server, end_user)
    page.goto(f"{live_server.url}/accounts/login/")  # any page of the site
    page.add_script_tag(url=f"{live_server.url}/static/alloy_oauth/connect.js")
    page.evaluate("const button = document.createElement('a');"
                  "button.href = '/oauth/demo/authorize/'; button.textContent = 'Connect';"
                  "button.setAttribute('data-alloy-oauth-connect', 'demo');"
                  "document.body.appendChild(button); window.notReloaded = true")
    with page.expect_popup() as popup_info:
        page.click("a[data-alloy-oauth-connect=demo]")
    popup = popup_info.value
    popup.click("button[type=submit]")  # "Continue to Demo provider" (no ticket here)
    with page.expect_navigation():
        sign_in_at_provider(popup, oauth_provider)
    assert page.evaluate("window.notReloaded") is None
    assert Credential.objects.get().status == Credential.Status.ACTIVE


def test_closing_the_popup_on_one_of_our_pages_rejects_at_once(connections):
    popup = start(connections, "AlloyOAuth.connect('no-such-connector')")
    popup.wait_for_load_state()  # our own 404 page, which the user reads, then closes
    popup.wait_for_timeout(600)
    popup.close()
    result = outcome(connections, timeout=5_000)
    assert result["ok"] is False and result["reason"] == "closed"


def test_closing_the_popup_on_the_confirmation_page_rejects_at_once(connections):
    # (A start without a ticket: "Continue to Demo provider?" first.)
    popup = start(connections, "AlloyOAuth.connect('demo', {url: '/oauth/demo/authorize/'})")
    popup.wait_for_selector("button[type=submit]")
    popup.wait_for_timeout(600)
    popup.close()
    result = outcome(connections, timeout=5_000)
    assert result["ok"] is False and result["reason"] == "closed"


def test_closing_the_popup_at_the_provider_rejects_after_the_timeout(connections,
                                                                     oauth_provider):
    # The provider's COOP header cuts the popup off: closed or not, it looks closed.
    popup = start(connections, "AlloyOAuth.connect('demo', {closedTimeout: 1500})")
    popup.wait_for_url(f"{oauth_provider.login_url}**")
    popup.close()
    result = outcome(connections, timeout=10_000)
    assert result["ok"] is False and result["reason"] == "timeout"


def test_a_message_from_another_origin_is_ignored(connections, oauth_provider):
    popup = start(connections, "AlloyOAuth.connect('demo')")
    forged = ("{source: 'alloy_oauth', connector: 'demo', status: 'connected', "
              "credential: 999}")
    connections.evaluate(  # a frame of another origin (data: URLs have an opaque one)
        "const frame = document.createElement('iframe');"
        f"frame.src = \"data:text/html,<script>parent.postMessage({forged}, '*')</script>\";"
        "document.body.appendChild(frame);")
    connections.evaluate(  # and same-origin messages about another attempt
        "const channel = new BroadcastChannel('alloy_oauth');"
        "channel.postMessage({source: 'alloy_oauth', connector: 'demo', flow: 'another-tab',"
        " status: 'connected', credential: 998});"
        "window.postMessage({source: 'alloy_oauth', connector: 'demo', flow: 'another-tab',"
        " status: 'connected', credential: 997}, window.location.origin);")
    connections.wait_for_timeout(1000)
    assert connections.evaluate("window.outcome") is None
    sign_in_at_provider(popup, oauth_provider)  # the real answer still settles it
    assert outcome(connections)["value"]["credential"] == Credential.objects.get().pk


def test_a_blocked_popup_falls_back_to_a_full_page_redirect(connections, oauth_provider,
                                                            live_server):
    connections.evaluate("window.open = () => null; AlloyOAuth.connect('demo'); null")
    connections.wait_for_url(f"{oauth_provider.login_url}**")
    with connections.expect_navigation(url=f"{live_server.url}/oauth/connections/"):
        connections.fill("#id_username", oauth_provider.username)
        connections.fill("#id_password", oauth_provider.password)
        connections.click("button[type=submit]")
    assert "Connected" in connections.inner_text("tr[data-connector=demo]")
    assert connections.inner_text(".alloy-oauth-messages") == "Connected to Demo provider."
    assert Credential.objects.get().status == "active"


def test_a_second_click_focuses_the_same_popup(connections, oauth_provider):
    with connections.expect_popup() as popup_info:
        same = connections.evaluate(
            "window.first = AlloyOAuth.connect('demo');"
            "window.first === AlloyOAuth.connect('demo')")
    assert same is True
    assert len(connections.context.pages) == 2  # one popup, not two
    sign_in_at_provider(popup_info.value, oauth_provider)
    connections.wait_for_function("window.settled = false;"
                                  "window.first.then(() => window.settled = true); true")
    connections.wait_for_function("window.settled === true")
    assert Credential.objects.count() == 1


def test_a_headless_link_for_an_external_end_user(page, live_server, oauth_provider,
                                                  dot_connector):
    """An end user who is no Django user: the host page opens a connect link with
    connect.js; the popup asks to confirm, then goes to the provider."""
    from alloy_oauth.headless import connect_url

    link = connect_url(dot_connector, "customer-42")
    page.goto(f"{live_server.url}/accounts/login/")  # any page of the site
    page.add_script_tag(url=f"{live_server.url}/static/alloy_oauth/connect.js")
    popup = start(page, f"AlloyOAuth.connect('demo', {{url: {link!r}}})")
    popup.click("button[type=submit]")  # "Continue to Demo provider"
    # The provider's COOP header cuts the popup off, which looks as if it were closed on our
    # page: a person who takes a while to sign in must not see "closed" (once a flaky test).
    popup.wait_for_url(f"{oauth_provider.login_url}**")
    popup.wait_for_timeout(2500)  # (more than connect.js's grace for a close on our page)
    sign_in_at_provider(popup, oauth_provider)
    result = outcome(page)
    assert result["ok"] is True
    credential = Credential.objects.get()
    assert (credential.external_id, credential.user) == ("customer-42", None)
    assert result["value"]["credential"] == credential.pk
