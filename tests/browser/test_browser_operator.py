"""Issue 15 items 1, 2 and 5 in a real browser (headless Chromium) against the live
django-oauth-toolkit provider: Validate unsaved edits then Save, a connector offered to end
users only when live, and the credential page's own buttons."""

from __future__ import annotations

import pytest
from django.conf import settings

from alloy_oauth.models import Connector, Credential

from tests.support.browser import (
    assert_revoked_at_the_provider, connected_credential, log_in, save_screenshot, sign_in,
    sign_in_at_provider,
)

pytestmark = pytest.mark.django_db(transaction=True)


def connections_page_as(page, live_server, user) -> str:
    """The Connections page's text, for ``user`` signed in to ``page``'s browser."""
    sign_in(page, live_server, user)
    page.goto(f"{live_server.url}/oauth/connections/")
    return page.inner_text("main") if page.locator("main").count() else page.inner_text("body")


def test_unsaved_edits_validated_then_saved(page, live_server, oauth_provider, operator,
                                            dot_connector, end_user, tmp_path):
    """An OAuth edit takes the connector off end users' pages once saved without validation;
    validating the edit on the page, then Save, puts it back."""
    settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": live_server.url}
    log_in(page, live_server)
    change = f"{live_server.url}/admin/alloy_oauth/connector/{dot_connector.pk}/change/"
    page.goto(change)
    page.fill("#id_scope", "read write")  # an OAuth field: saved as is, it needs validating
    with page.expect_navigation():
        page.click("input[name=_continue]")
    assert not Connector.objects.get().is_live
    assert "Demo provider" not in connections_page_as(page, live_server, end_user)

    log_in(page, live_server)
    page.goto(change)
    page.fill("#id_scope", "read")  # unsaved: this is what Validate checks
    with page.expect_popup() as popup_info:
        page.click("#alloy-oauth-validate")
    sign_in_at_provider(popup_info.value, oauth_provider)
    page.wait_for_selector("#alloy-oauth-validate-status.alloy-oauth-ok")
    assert "Granted: read." in page.inner_text("#alloy-oauth-validate-result")
    connector = Connector.objects.get()
    assert connector.scope == "read write" and not connector.is_live  # nothing saved yet
    with page.expect_navigation():
        page.click("input[name=_save]")
    connector.refresh_from_db()
    assert connector.scope == "read" and connector.is_live
    assert page.inner_text(".field-live_status") == "Live"
    save_screenshot(page, "connector-list.png", tmp_path)
    assert "Demo provider" in connections_page_as(page, live_server, end_user)


def test_the_recipes_link(page, live_server, operator):
    """Item 7: the connector form links the provider recipes (PROVIDER_RECIPES_URL)."""
    settings.ALLOY_OAUTH = {"PROVIDER_RECIPES_URL": "https://docs.example/providers.html"}
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/add/")
    link = page.locator("#alloy-oauth-recipes-link")
    assert link.get_attribute("href") == "https://docs.example/providers.html"
    settings.ALLOY_OAUTH = {}
    page.reload()
    assert page.locator("#alloy-oauth-recipes-link").count() == 0
    assert "docs/providers.md" in page.inner_text(".alloy-oauth-recipes")


def credential_page(page, live_server, credential: Credential) -> None:
    page.goto(f"{live_server.url}/admin/alloy_oauth/credential/{credential.pk}/change/")


def test_refresh_now_button(page, live_server, oauth_provider, dot_connector, site,
                            operator, tmp_path):
    credential = connected_credential(site, oauth_provider)
    log_in(page, live_server)
    credential_page(page, live_server, credential)
    save_screenshot(page, "credential-page.png", tmp_path)
    with page.expect_navigation():
        page.click("#alloy-oauth-refresh")
    assert page.url.endswith(f"/credential/{credential.pk}/change/")
    assert page.inner_text("ul.messagelist") == "1 credential(s) refreshed."
    old = credential.access_token
    credential.refresh_from_db()
    assert credential.access_token != old
    assert oauth_provider.call_api(credential.access_token).status_code == 200
    events = page.locator(".alloy-oauth-events tbody tr")  # each event once
    assert events.count() == 2 and events.first.inner_text().split("\t")[1] == "Refreshed"


def test_revoke_button_asks_first(page, live_server, oauth_provider, dot_connector, site,
                                  operator, tmp_path):
    credential = connected_credential(site, oauth_provider)
    log_in(page, live_server)
    credential_page(page, live_server, credential)
    with page.expect_navigation():
        page.click("#alloy-oauth-revoke")
    assert "Revoke this credential?" in page.inner_text("#content")
    save_screenshot(page, "credential-confirm-revoke.png", tmp_path)
    with page.expect_navigation():
        page.click("#alloy-oauth-cancel")  # No, go back: nothing happens
    assert Credential.objects.get().status == Credential.Status.ACTIVE
    with page.expect_navigation():
        page.click("#alloy-oauth-revoke")
    with page.expect_navigation():
        page.click("#alloy-oauth-confirm")
    assert page.inner_text("ul.messagelist") == "1 credential(s) revoked."
    assert page.locator(".alloy-oauth-badge-revoked").count() == 1
    assert_revoked_at_the_provider(credential, oauth_provider)


def test_mark_for_reconnection_button_asks_first(page, live_server, oauth_provider,
                                                 dot_connector, site, operator):
    credential = connected_credential(site, oauth_provider)
    log_in(page, live_server)
    credential_page(page, live_server, credential)
    with page.expect_navigation():
        page.click("#alloy-oauth-reconnect")
    assert "Mark this credential for reconnection?" in page.inner_text("#content")
    with page.expect_navigation():
        page.click("#alloy-oauth-confirm")
    assert page.inner_text("ul.messagelist") == "1 credential(s) marked for reconnection."
    assert Credential.objects.get().status == Credential.Status.REAUTH_REQUIRED
    assert "Marked for reconnection by operator." in page.inner_text(".field-events_display")
