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

from .browser import save_screenshot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", "op@example.com", "operator-pw")


def log_in(page, live_server) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "operator-pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def fill_connector(page, provider, *, secret: str) -> None:
    page.fill("#id_name", "Demo provider")  # the slug follows: demo-provider
    page.fill("#id_auth_url", provider.auth_url)
    page.fill("#id_token_url", provider.token_url)
    page.fill("#id_client_id", provider.client_id)
    page.fill("#id_client_secret", secret)
    page.fill("#id_scope", "read, write")


def test_operator_creates_and_validates_a_connector(page, live_server, oauth_provider, operator,
                                                   tmp_path):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/add/")
    callback = f"{live_server.url}/oauth/callback/"
    assert page.input_value("#id_callback_url") == callback
    page.click(".alloy-oauth-copy")
    assert page.evaluate("navigator.clipboard.readText()") == callback
    fill_connector(page, oauth_provider, secret=oauth_provider.client_secret)
    save_screenshot(page, "connector-form.png", tmp_path)
    page.click("input[name=_continue]")
    page.wait_for_selector("#alloy-oauth-validate")
    connector = Connector.objects.get()
    assert connector.client_secret == oauth_provider.client_secret
    assert oauth_provider.client_secret not in page.content()

    with page.expect_popup() as popup_info:
        page.click("#alloy-oauth-validate")
    popup = popup_info.value
    popup.wait_for_url(f"{oauth_provider.login_url}**")  # the provider's own login page
    popup.fill("#id_username", oauth_provider.username)
    popup.fill("#id_password", oauth_provider.password)
    with page.expect_navigation():  # the popup reports back, closes, the page reloads
        popup.click("button[type=submit]")
    page.wait_for_selector("text=token received")
    assert popup.is_closed()
    connector.refresh_from_db()
    assert connector.validated_at is not None and connector.validation_error == ""
    assert connector.validation_report["scopes_granted"] == ["read", "write"]
    text = page.inner_text(".field-validation_report_display")
    assert "Client ID and secret" in text and "Accepted: the token endpoint refused only" in text
    assert not Credential.objects.exists()  # validating stores no credential
    save_screenshot(page, "connector-validated.png", tmp_path)


def test_a_wrong_client_secret_is_named_as_such(page, live_server, oauth_provider, operator):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/add/")
    fill_connector(page, oauth_provider, secret="not-the-secret")
    page.click("input[name=_continue]")
    page.wait_for_selector("#alloy-oauth-validate")
    with page.expect_popup() as popup_info:
        page.click("#alloy-oauth-validate")
    page.wait_for_selector(".alloy-oauth-failed")
    assert "The client credentials were rejected" in page.inner_text("#alloy-oauth-validate-result")
    popup = popup_info.value
    for _ in range(50):  # the page closes the popup it had opened for the round trip
        if popup.is_closed():
            break
        page.wait_for_timeout(100)
    assert popup.is_closed()
    assert Connector.objects.get().validated_at is None


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
    assert "Marked for reconnection by operator." in page.inner_text("#events-group")


def test_only_its_own_validation_reloads_the_connector_page(page, live_server, oauth_provider,
                                                            operator):
    """Issue 11: another site navigates a window to a popup address of ours that fails; its
    page tells every tab of this origin. The connector page, unsaved edits and all, must not
    reload for it: only for the result of the Validate popup it opened."""
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
    with page.expect_navigation():
        popup.click("button[type=submit]")
    page.wait_for_selector("text=token received")
    connector.refresh_from_db()
    assert connector.validated_at is not None
