"""Every POST form the app renders, pressed in a real browser (headless Chromium), against a
live server and the live django-oauth-toolkit provider: the Connections page's Disconnect,
the "Continue to …" page, and in the admin the connector's Save and the credential actions
(Validate credential is in test_browser_admin.py). Each test checks what the button did, not
only that the POST got through: a page whose Referrer-Policy is ``no-referrer`` makes
Chromium send ``Origin: null`` with its forms, which Django's CSRF check refuses (issue 11)."""

from __future__ import annotations

import pytest

from alloy_oauth.models import Connector, Credential

from tests.support.browser import (
    assert_revoked_at_the_provider, connected_credential, log_in, sign_in,
)

pytestmark = pytest.mark.django_db(transaction=True)


def press_disconnect(page, live_server) -> None:
    page.goto(f"{live_server.url}/oauth/connections/")
    row = page.locator("tr[data-connector=demo]")
    with page.expect_navigation():
        row.locator("button", has_text="Disconnect").click()


def test_disconnect(page, live_server, oauth_provider, dot_connector, site):
    credential = connected_credential(site, oauth_provider)
    press_disconnect(page, live_server)
    assert page.url == f"{live_server.url}/oauth/connections/"
    assert page.inner_text(".alloy-oauth-messages") == "Disconnected from Demo provider."
    assert "Not connected" in page.inner_text("tr[data-connector=demo]")
    assert_revoked_at_the_provider(credential, oauth_provider)


def test_disconnect_a_connection_that_needs_reconnecting(page, live_server, oauth_provider,
                                                         dot_connector, site):
    credential = connected_credential(site, oauth_provider)
    Credential.objects.filter(pk=credential.pk).update(status=Credential.Status.REAUTH_REQUIRED)
    page.goto(f"{live_server.url}/oauth/connections/")
    assert "Needs reconnecting" in page.inner_text("tr[data-connector=demo]")
    press_disconnect(page, live_server)
    assert page.inner_text(".alloy-oauth-messages") == "Disconnected from Demo provider."
    assert "Not connected" in page.inner_text("tr[data-connector=demo]")
    assert_revoked_at_the_provider(credential, oauth_provider)


def test_the_confirmation_page_continues_to_the_provider(page, live_server, oauth_provider,
                                                         dot_connector, site, end_user):
    # A plain link (no start ticket): the person confirms first.
    page.goto(f"{live_server.url}/oauth/demo/authorize/?next=/oauth/connections/")
    page.click("button:has-text('Continue to Demo provider')")
    page.wait_for_url(f"{oauth_provider.login_url}**")  # the provider reached
    with page.expect_navigation(url=f"{live_server.url}/oauth/connections/"):
        page.fill("#id_username", oauth_provider.username)
        page.fill("#id_password", oauth_provider.password)
        page.click("button[type=submit]")
    assert "Connected" in page.inner_text("tr[data-connector=demo]")
    credential = Credential.objects.get()
    assert (credential.user, credential.status) == (end_user, Credential.Status.ACTIVE)
    assert oauth_provider.call_api(credential.access_token).status_code == 200


# --- the admin -----------------------------------------------------------------------------

def run_action(page, live_server, credential: Credential, action: str) -> None:
    page.goto(f"{live_server.url}/admin/alloy_oauth/credential/")
    page.check(f"input[name=_selected_action][value='{credential.pk}']")
    page.select_option("select[name=action]", action)
    with page.expect_navigation():
        page.click("button[name=index]")


def test_refresh_now(page, live_server, oauth_provider, dot_connector, site, operator):
    credential = connected_credential(site, oauth_provider)
    log_in(page, live_server)  # (the operator, in this browser)
    run_action(page, live_server, credential, "refresh_now")
    assert page.inner_text("ul.messagelist") == "1 credential(s) refreshed."
    old_access_token, old_refresh_token = credential.access_token, credential.refresh_token
    credential.refresh_from_db()
    assert credential.access_token != old_access_token
    assert credential.refresh_token != old_refresh_token  # the provider rotates them
    assert credential.last_refreshed_at is not None
    assert oauth_provider.call_api(credential.access_token).status_code == 200


def test_revoke(page, live_server, oauth_provider, dot_connector, site, operator):
    credential = connected_credential(site, oauth_provider)
    log_in(page, live_server)
    run_action(page, live_server, credential, "revoke")
    assert page.inner_text("ul.messagelist") == "1 credential(s) revoked."
    assert page.locator(".alloy-oauth-badge-revoked").count() == 1
    assert_revoked_at_the_provider(credential, oauth_provider)


def test_mark_for_reconnection(page, live_server, oauth_provider, dot_connector, site,
                               operator, end_user):
    credential = connected_credential(site, oauth_provider)
    log_in(page, live_server)
    run_action(page, live_server, credential, "mark_for_reconnection")
    assert page.inner_text("ul.messagelist") == "1 credential(s) marked for reconnection."
    credential.refresh_from_db()
    assert credential.status == Credential.Status.REAUTH_REQUIRED
    # The end user sees it on their Connections page.
    page.context.clear_cookies()
    sign_in(page, live_server, end_user, client=site)
    page.goto(f"{live_server.url}/oauth/connections/")
    assert "Needs reconnecting" in page.inner_text("tr[data-connector=demo]")


def test_the_pre_flight_action(page, live_server, oauth_provider, dot_connector,
                               operator):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/")
    page.check(f"input[name=_selected_action][value='{dot_connector.pk}']")
    page.select_option("select[name=action]", "validate_preflight")
    with page.expect_navigation():
        page.click("button[name=index]")
    assert "Demo provider: the pre-flight checks passed." in page.inner_text("ul.messagelist")
    report = Connector.objects.get().validation_report
    assert [check["ok"] for check in report["preflight"]] == [True] * len(report["preflight"])


def test_saving_the_connector(page, live_server, oauth_provider, dot_connector, operator):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/{dot_connector.pk}/change/")
    page.fill("#id_scope", "read write")
    with page.expect_navigation():
        page.click("input[name=_save]")
    assert page.url == f"{live_server.url}/admin/alloy_oauth/connector/"
    assert "was changed successfully" in page.inner_text("ul.messagelist")
    connector = Connector.objects.get()
    assert connector.scope == "read write"
    assert connector.client_secret == oauth_provider.client_secret  # (write-only: kept)
