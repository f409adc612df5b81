"""The operator's admin in a real browser (headless Chromium through Playwright) against a
live server and the live django-oauth-toolkit provider.

Screenshots land in the test's temporary directory; with ALLOY_OAUTH_UPDATE_SCREENSHOTS=1
they also replace docs/images/ (``make screenshots``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alloy_oauth.models import Connector, Credential

from tests.support.browser import log_in, save_screenshot, sign_in_at_provider

pytestmark = pytest.mark.django_db(transaction=True)


def fill_connector(page, provider, *, secret: str) -> None:
    page.fill("#id_name", "Demo provider")  # the slug follows: demo-provider
    page.fill("#id_auth_url", provider.auth_url)
    page.fill("#id_token_url", provider.token_url)
    page.fill("#id_client_id", provider.client_id)
    page.fill("#id_client_secret", secret)
    page.fill("#id_scope", "read, write")


def test_operator_validates_a_new_connector_then_saves_it(page, live_server, oauth_provider,
                                                          operator, tmp_path):
    """Validate, then save (issue 15 item 1): the add page validates what is on it, before
    anything is stored; Save keeps the connector validated, so it is live."""
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/add/")
    callback = f"{live_server.url}/oauth/callback/"
    assert page.input_value("#id_callback_url") == callback
    page.click(".alloy-oauth-copy")
    assert page.evaluate("navigator.clipboard.readText()") == callback
    fill_connector(page, oauth_provider, secret=oauth_provider.client_secret)
    save_screenshot(page, "connector-form.png", tmp_path)

    with page.expect_popup() as popup_info:
        page.click("#alloy-oauth-validate")
    popup = popup_info.value
    sign_in_at_provider(popup, oauth_provider)
    page.wait_for_selector("#alloy-oauth-validate-status.alloy-oauth-ok")  # no reload
    assert popup.is_closed()
    assert not Connector.objects.exists()  # nothing saved yet
    result = page.inner_text("#alloy-oauth-validate-result")
    assert "Client ID and secret" in result and "Accepted: the token endpoint refused only" in result
    assert "A Bearer token was issued" in result
    assert page.inner_text("#alloy-oauth-validate-status") == (
        "Validated. Press Save to keep these values.")
    # ✔ and ✘ differ in colour: the style sheet's, by class.
    assert page.eval_on_selector(".alloy-oauth-ok .alloy-oauth-symbol",
                                 "e => getComputedStyle(e).color") == "rgb(26, 127, 55)"
    assert oauth_provider.client_secret not in page.content()
    save_screenshot(page, "connector-validated-before-save.png", tmp_path)

    with page.expect_navigation():
        page.click("input[name=_continue]")
    connector = Connector.objects.get()
    assert connector.client_secret == oauth_provider.client_secret
    assert connector.is_live and connector.validation_error == ""
    assert connector.validation_report["scopes_granted"] == ["read", "write"]
    text = page.inner_text(".field-validation_report_display")
    assert "Client ID and secret" in text and "A Bearer token was issued" in text
    assert not Credential.objects.exists()  # validating stores no credential
    save_screenshot(page, "connector-validated.png", tmp_path)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/")
    assert page.inner_text(".field-live_status") == "Live"


def test_a_wrong_client_secret_is_named_as_such(page, live_server, oauth_provider, operator):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/add/")
    fill_connector(page, oauth_provider, secret="not-the-secret")
    with page.expect_popup() as popup_info:
        page.click("#alloy-oauth-validate")
    page.wait_for_selector("#alloy-oauth-validate-status.alloy-oauth-failed")
    result = page.inner_text("#alloy-oauth-validate-result")
    assert "The client credentials were rejected" in result
    assert "not-the-secret" not in page.content()
    assert page.eval_on_selector(".alloy-oauth-failed .alloy-oauth-symbol",
                                 "e => getComputedStyle(e).color") == "rgb(207, 34, 46)"
    popup = popup_info.value
    for _ in range(50):  # the page closes the popup it had opened for the round trip
        if popup.is_closed():
            break
        page.wait_for_timeout(100)
    assert popup.is_closed()
    # Saved anyway, it is not offered to end users.
    with page.expect_navigation():
        page.click("input[name=_save]")
    assert not Connector.objects.get().is_live
    assert page.inner_text(".field-live_status") == "No: not validated"


def test_the_credential_list_and_its_actions(page, live_server, operator, connector,
                                             django_user_model, tmp_path):
    now = timezone.now()
    for name, status, expires in [("alice", "active", 50), ("bob", "active", 3000),
                                  ("carol", "reauth_required", -600), ("dave", "error", 20)]:
        Credential.objects.create(
            connector=connector, user=django_user_model.objects.create_user(name),
            access_token=f"{name}-access-secret", refresh_token=f"{name}-refresh-secret",
            status=status, expires_at=now + timedelta(minutes=expires),
            last_refreshed_at=now - timedelta(minutes=10),
            failure_count=3 if status == "error" else 0,
            last_error="The provider answered invalid_client." if status == "error" else "",
        )
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/credential/")
    assert page.locator(".alloy-oauth-badge-active").count() == 2
    assert page.locator(".alloy-oauth-badge-error").count() == 1
    save_screenshot(page, "credential-list.png", tmp_path)
    html = page.content()
    assert "secret" not in html.replace("client_secret", "")

    bob = Credential.objects.get(user__username="bob")
    page.check(f"input[name=_selected_action][value='{bob.pk}']")
    page.select_option("select[name=action]", "mark_for_reconnection")
    page.click("button[name=index]")
    page.wait_for_selector("text=1 credential(s) marked for reconnection.")
    assert Credential.objects.get(pk=bob.pk).status == "reauth_required"
    assert page.locator(".alloy-oauth-badge-reauth_required").count() == 2

    page.goto(f"{live_server.url}/admin/alloy_oauth/credential/{bob.pk}/change/")
    assert "Marked for reconnection by operator." in page.inner_text(".field-events_display")


def test_only_its_own_validation_reloads_the_connector_page(page, live_server, oauth_provider,
                                                            operator):
    """Issue 11: another site navigates a window to a popup address of ours that fails; its
    page tells every tab of this origin. The connector page, unsaved edits and all, must not
    act on it: only on the result of the Validate popup it opened (and never reloads)."""
    connector = Connector.objects.create(
        name="Demo provider", slug="demo", auth_url=oauth_provider.auth_url,
        token_url=oauth_provider.token_url, client_id=oauth_provider.client_id,
        client_secret=oauth_provider.client_secret, scope="read")
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/{connector.pk}/change/")
    with page.expect_popup() as popup_info:
        page.click("#alloy-oauth-validate")
    popup = popup_info.value
    popup.wait_for_url(f"{oauth_provider.login_url}**")  # validating, at the provider
    page.fill("#id_name", "Demo provider (unsaved edit)")
    page.evaluate("window.heard = [];"  # what the page hears, after admin.js does
                  "new BroadcastChannel('alloy_oauth').onmessage = e => window.heard.push(e.data);"
                  "null")

    hostile = page.context.new_page()  # (the operator's browser: logged in)
    hostile.goto(f"{live_server.url}/oauth/demo/authorize/?popup=1&flow=a&flow=b")
    page.wait_for_function("window.heard.length > 0")
    assert page.evaluate("window.heard")[0]["status"] == "error"
    page.wait_for_timeout(500)  # (a reload would have begun by now)
    assert page.evaluate("window.heard.length") == 1  # the same document: not reloaded
    assert page.input_value("#id_name") == "Demo provider (unsaved edit)"

    popup.fill("#id_username", oauth_provider.username)  # its own popup's result does count
    popup.fill("#id_password", oauth_provider.password)
    popup.click("button[type=submit]")
    page.wait_for_selector("#alloy-oauth-validate-status.alloy-oauth-ok")
    assert "A Bearer token was issued" in page.inner_text("#alloy-oauth-validate-result")
    assert page.input_value("#id_name") == "Demo provider (unsaved edit)"  # still not reloaded
    connector.refresh_from_db()
    assert connector.validated_at is not None  # (its OAuth values are the saved ones)
