"""Connection parameters and several accounts in a real browser (headless Chromium), against
the live provider's tenants: the popup asks for the tenant before the provider, the
Connections page lists each account with its own Reconnect and Disconnect, and the admin's
Validate credential asks the operator for the tenant."""

from __future__ import annotations

import pytest

from alloy_oauth.models import Credential

from tests.support.browser import log_in, redrawn, sign_in, sign_in_at_provider

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def connections(page, live_server, end_user, tenant_connector, settings):
    settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": live_server.url}
    sign_in(page, live_server, end_user)
    page.goto(f"{live_server.url}/oauth/connections/")
    page.wait_for_function("window.AlloyOAuth !== undefined")
    return page


def connect_in_popup(page, button: str, tenant: str, provider, *, sign_in: bool) -> None:
    """Press ``button``; in the popup, give the tenant, go on to the provider and come back:
    the page redraws its table with the new account."""
    with page.expect_popup() as popup_info:
        page.click(button)
    popup = popup_info.value
    popup.wait_for_selector("#alloy-oauth-param-tenant")
    assert "Tenant" in popup.inner_text("label[for=alloy-oauth-param-tenant]")
    popup.fill("#alloy-oauth-param-tenant", tenant)
    with redrawn(page):  # the popup reports and closes
        popup.click("button[type=submit]")
        if sign_in:
            sign_in_at_provider(popup, provider)


def test_two_accounts_through_the_connections_page(connections, live_server, oauth_provider,
                                                   end_user):
    page = connections
    assert "Not connected" in page.inner_text("tr[data-connector=tenants]")

    # A wrong value is asked again, in the popup, before anything goes to the provider.
    with page.expect_popup() as popup_info:
        page.click("a[data-alloy-oauth-connect=tenants]")
    popup = popup_info.value
    popup.fill("#alloy-oauth-param-tenant", "no/such tenant")
    popup.click("button[type=submit]")
    popup.wait_for_selector(".alloy-oauth-field-error")
    assert "Tenant is not in the expected form." in popup.inner_text(".alloy-oauth-field-error")
    popup.close()
    page.reload()

    connect_in_popup(page, "a[data-alloy-oauth-connect=tenants]", "acme", oauth_provider,
                     sign_in=True)
    acme = Credential.objects.get(connection_config__tenant="acme")
    assert acme.user == end_user and acme.metadata["realm"].startswith("acme-realm-")
    assert "acme" in page.inner_text(f"tr[data-credential='{acme.pk}']")

    # The provider remembers the person: the second account needs no sign-in.
    connect_in_popup(page, "a[data-alloy-oauth-connect=tenants]:has-text('Connect another "
                     "account')", "globex", oauth_provider, sign_in=False)
    globex = Credential.objects.get(connection_config__tenant="globex")
    assert Credential.objects.count() == 2
    assert "2 accounts" in page.inner_text("tr.alloy-oauth-several")
    with globex.session() as api:
        assert api.get("me/").json()["tenant"] == "globex"

    # Disconnect (a POST form in Chromium) names its account.
    row = page.locator(f"tr[data-credential='{acme.pk}']")
    with page.expect_navigation():
        row.locator("button", has_text="Disconnect").click()
    assert page.inner_text(".alloy-oauth-messages") == \
        "Disconnected from Tenant provider (acme)."
    acme.refresh_from_db()
    globex.refresh_from_db()
    assert acme.status == Credential.Status.REVOKED
    assert globex.status == Credential.Status.ACTIVE
    assert page.locator(f"tr[data-credential='{acme.pk}']").count() == 0
    assert "1 account" in page.inner_text("tr.alloy-oauth-several")


def test_reconnect_an_account(connections, oauth_provider):
    """A Reconnect button goes straight to that account's tenant, without asking."""
    page = connections
    connect_in_popup(page, "a[data-alloy-oauth-connect=tenants]", "globex", oauth_provider,
                     sign_in=True)
    globex = Credential.objects.get()
    Credential.objects.filter(pk=globex.pk).update(status=Credential.Status.REAUTH_REQUIRED)
    page.reload()
    row = page.locator(f"tr[data-credential='{globex.pk}']")
    assert "Needs reconnecting" in row.inner_text()
    with redrawn(page):  # (signed in at the provider: no page to stop at)
        row.locator("a", has_text="Reconnect").click()
    globex.refresh_from_db()
    assert globex.status == Credential.Status.ACTIVE and Credential.objects.count() == 1
    assert "Connected" in page.inner_text(f"tr[data-credential='{globex.pk}']")


def test_validate_credential_asks_for_the_tenant(page, live_server, oauth_provider, operator,
                                                tenant_connector, settings):
    settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": live_server.url}
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/{tenant_connector.pk}/change/")
    page.fill("#alloy-oauth-validate-param-tenant", "acme")
    with page.expect_popup() as popup_info:
        page.click("#alloy-oauth-validate")
    popup = popup_info.value
    popup.wait_for_url(f"{oauth_provider.login_url}**")
    popup.fill("#id_username", oauth_provider.username)
    popup.fill("#id_password", oauth_provider.password)
    popup.click("button[type=submit]")
    page.wait_for_selector("#alloy-oauth-validate-status.alloy-oauth-ok")  # (no reload)
    text = page.inner_text("#alloy-oauth-validate-result")
    assert "tenant=acme" in text and "tenant_id = acme" in text and "realm = acme-realm-" in text
    assert f"GET {oauth_provider.base_url}/provider/t/acme/api/me/ → 200" in text
    tenant_connector.refresh_from_db()
    assert tenant_connector.validated_at is not None
    assert not Credential.objects.exists()
