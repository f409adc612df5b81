"""Connection parameters, callback parameters and metadata end to end, against the live
django-oauth-toolkit provider's tenants (/provider/t/<tenant>/…: the account in the URL, a
``realm`` in the callback's query, ``instance_url``, ``tenant.id``, an exchange-only
``authed_user`` and ``x_refresh_token_expires_in`` in the token response)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alloy_oauth.models import Credential

from tests.support.connector_page import press_validate
from tests.support.tickets import authorize_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def site(live_server, settings, django_user_model) -> Client:
    settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": live_server.url}
    client = Client()
    client.force_login(django_user_model.objects.create_user("alice"))
    return client


def connect(site: Client, provider, tenant: str, **query: str) -> Credential:
    """Connect the signed-in end user's account at ``tenant`` through the live provider."""
    browser = requests.Session()
    provider.login(browser)
    response = site.get(authorize_url(site, "tenants", tenant=tenant, **query))
    assert response.status_code == 302, response.content[:500]
    provider_url = response["Location"]
    assert provider_url.startswith(f"{provider.base_url}/provider/t/{tenant}/o/authorize/?")
    back = provider.consent(browser, provider_url)
    assert parse_qs(urlsplit(back).query)["realm"]  # the tenant's callback parameter
    answer = site.get(f"/oauth/callback/?{urlsplit(back).query}")
    assert answer.status_code == 303, answer.content[:500]
    return Credential.objects.get(connection_config__tenant=tenant)


def test_an_account_at_a_tenant(site, oauth_provider, tenant_connector):
    credential = connect(site, oauth_provider, "acme")
    user_id = credential.metadata["user_id"]
    assert credential.connection_config == {"tenant": "acme"}
    assert credential.metadata == {
        "instance_url": oauth_provider.base_url, "tenant_id": "acme",
        "user_id": user_id, "realm": credential.metadata["realm"]}
    assert credential.metadata["realm"].startswith("acme-realm-")
    assert credential.account_label == "acme"
    # Intuit's spelling of the refresh token's lifetime (100 days).
    assert abs(credential.refresh_token_expires_at
               - (timezone.now() + timedelta(days=100))) < timedelta(minutes=1)

    # The API session calls this tenant, at the origin the token response named.
    with credential.session() as api:
        answer = api.get("me/")
    assert answer.status_code == 200
    assert answer.json() == {"username": oauth_provider.username, "tenant": "acme"}

    # A refresh goes to the tenant's token endpoint, keeps the fields only the code exchange
    # sent (authed_user), and keeps the metadata it does not repeat (user_id, realm).
    before = len(oauth_provider.token_requests("/provider/t/acme/o/token/"))
    refresh_token = credential.refresh_token
    assert credential.refresh(force=True).result == "refreshed"
    assert oauth_provider.token_requests("/provider/t/acme/o/token/")[before:] == [200]
    assert credential.refresh_token != refresh_token  # (the provider rotates them)
    assert credential.token_response["authed_user"] == {"id": user_id}
    assert credential.token_response["tenant"] == {"id": "acme", "name": "Acme Corporation"}
    assert credential.metadata["user_id"] == user_id
    assert credential.metadata["realm"].startswith("acme-realm-")
    assert oauth_provider.call_api(credential.access_token).status_code == 200

    # Disconnect revokes at the tenant's revocation endpoint.
    access_token = credential.access_token
    assert credential.revoke().result == "revoked"
    assert oauth_provider.call_api(access_token).status_code == 401


def test_two_accounts_for_one_end_user(site, oauth_provider, tenant_connector):
    acme = connect(site, oauth_provider, "acme")
    globex = connect(site, oauth_provider, "globex")
    assert acme.pk != globex.pk and acme.user == globex.user
    assert {c.account_label for c in Credential.objects.for_owner(user=acme.user)} == {
        "acme", "globex"}
    with globex.session() as api:
        assert api.get("me/").json()["tenant"] == "globex"

    # Connecting acme again reconnects the same account (the same label); a Reconnect names
    # the account, and keeps its tenant whatever the query says.
    again = connect(site, oauth_provider, "acme")
    assert again.pk == acme.pk and again.version == acme.version + 1
    Credential.objects.filter(pk=globex.pk).update(status=Credential.Status.REAUTH_REQUIRED)
    reconnected = connect(site, oauth_provider, "globex", credential=str(globex.pk))
    assert reconnected.pk == globex.pk and reconnected.status == Credential.Status.ACTIVE
    assert Credential.objects.count() == 2

    # The Connections page lists both; Disconnect names the account.
    page = site.get(reverse("alloy_oauth:connections")).content.decode()
    assert "acme" in page and "globex" in page and "Connect another account" in page
    response = site.post(reverse("alloy_oauth:disconnect", args=["tenants"]),
                         {"credential": acme.pk}, follow=True)
    assert "Disconnected from Tenant provider (acme)." in response.content.decode()
    acme.refresh_from_db()
    globex.refresh_from_db()
    assert acme.status == Credential.Status.REVOKED
    assert globex.status == Credential.Status.ACTIVE
    assert oauth_provider.call_api(globex.access_token).status_code == 200


def test_the_form_asks_for_the_tenant(site, oauth_provider, tenant_connector):
    # The connect button without a tenant: a form first, then the tenant's consent page.
    url = authorize_url(site, "tenants")
    form = site.get(url)
    assert form.status_code == 200
    assert 'name="tenant"' in form.content.decode()
    wrong = site.post(reverse("alloy_oauth:authorize", args=["tenants"]), {"tenant": "no/such"})
    assert wrong.status_code == 400
    assert "Tenant is not in the expected form." in wrong.content.decode()
    answer = site.post(reverse("alloy_oauth:authorize", args=["tenants"]), {"tenant": "globex"})
    assert answer.status_code == 303
    assert answer["Location"].startswith(
        f"{oauth_provider.base_url}/provider/t/globex/o/authorize/?")


def test_an_unknown_tenant_fails_cleanly(site, oauth_provider, tenant_connector):
    """A value the pattern allows, at a tenant the provider does not have: its 404 at the
    consent page is the provider's; nothing is stored."""
    response = site.get(authorize_url(site, "tenants", tenant="initech"))
    assert response.status_code == 302
    assert requests.get(response["Location"], timeout=10,
                        allow_redirects=False).status_code == 404
    assert not Credential.objects.exists()


def test_validate_credential_with_a_tenant(admin_client, live_server, settings, oauth_provider,
                                           tenant_connector):
    """The admin's Validate asks for the tenant, checks its endpoints, runs the round trip
    there and reports the metadata found."""
    settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": live_server.url}
    missing = press_validate(admin_client, tenant_connector)
    assert missing["ok"] is False and "Enter Tenant." in missing["checks"][0]["message"]
    result = press_validate(admin_client, tenant_connector, **{"param-tenant": "acme"})
    assert result["ok"], result["checks"]
    assert result["authorize_url"].startswith(f"{oauth_provider.base_url}/provider/t/acme/o/")
    browser = requests.Session()
    oauth_provider.login(browser)
    back = oauth_provider.consent(browser, result["authorize_url"])
    assert admin_client.get(f"/oauth/callback/?{urlsplit(back).query}").status_code == 200
    tenant_connector.refresh_from_db()
    report = tenant_connector.validation_report
    assert tenant_connector.validated_at is not None, tenant_connector.validation_error
    assert report["metadata"]["tenant_id"] == "acme"
    assert report["metadata"]["realm"].startswith("acme-realm-")
    assert report["metadata_missing"] == []
    assert report["test_request"] == {
        "url": f"{oauth_provider.base_url}/provider/t/acme/api/me/", "ok": True, "status": 200}
    assert report["revoked"] is True  # (at the tenant's revocation endpoint)
    assert not Credential.objects.exists()
