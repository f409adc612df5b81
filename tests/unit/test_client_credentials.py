"""The client credentials grant (RFC 6749 §4.4): credentials with no end user, whose tokens
the engine fetches and renews before expiry through the same path as refreshes."""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.utils import timezone

from alloy_oauth.exceptions import TokenRefreshFailed
from alloy_oauth.models import Credential
from alloy_oauth.refresh import Result
from alloy_oauth.refresh.batch import refresh_batch
from alloy_oauth.refresh.single import refresh_one
from alloy_oauth.signals import credential_refreshed

from tests.support.example_provider import TOKEN_URL


@pytest.fixture
def service_connector(make_connector):
    return make_connector(auth_type="oauth2_client_credentials", auth_url="", scope="read, write",
                          token_params={"audience": "https://api.example"},
                          api_base_url="https://api.example")


def body(call) -> dict[str, list[str]]:
    return parse_qs(call.request.body)


class TestCreated:
    def test_without_tokens_it_is_due_at_once(self, service_connector):
        before = timezone.now()
        credential = Credential.objects.create(connector=service_connector,
                                               external_id="service")
        assert credential.access_token == ""
        assert credential.status == Credential.Status.ACTIVE
        assert before <= credential.next_refresh_at <= timezone.now()
        assert credential.expires_at == credential.next_refresh_at
        assert credential.requested_scope == "read write"
        assert Credential.objects.due().filter(pk=credential.pk).exists()

    def test_other_types_are_left_alone(self, make_connector):
        credential = Credential.objects.create(connector=make_connector(), external_id="x")
        assert credential.next_refresh_at is None and credential.expires_at is None


class TestFetch:
    def test_get_access_token_fetches_one(self, service_connector, responses):
        responses.post(TOKEN_URL, json={"access_token": "cc-1", "token_type": "bearer",
                                        "expires_in": 3600})
        received = []
        credential_refreshed.connect(lambda sender, credential, **kw: received.append(
            credential.pk), weak=False, dispatch_uid="cc-test")
        try:
            credential = Credential.objects.create(connector=service_connector,
                                                   external_id="service")
            assert credential.get_access_token() == "cc-1"
        finally:
            credential_refreshed.disconnect(dispatch_uid="cc-test")
        sent = responses.calls[0].request
        assert body(responses.calls[0]) == {"grant_type": ["client_credentials"],
                                            "scope": ["read write"],
                                            "audience": ["https://api.example"]}
        assert sent.headers["Authorization"] == "Basic " + base64.b64encode(
            b"client-id:client-secret-value").decode()
        credential.refresh_from_db()
        assert credential.refresh_token == "" and credential.scope == "read write"
        assert credential.next_refresh_at > timezone.now() + timedelta(minutes=50)
        assert [e.kind for e in credential.events.all()] == ["refreshed"]
        assert received == [credential.pk]

    def test_session_uses_the_fetched_token(self, service_connector, responses):
        responses.post(TOKEN_URL, json={"access_token": "cc-1", "expires_in": 3600})
        responses.get("https://api.example/items", json=[])
        credential = Credential.objects.create(connector=service_connector, external_id="s")
        credential.session().get("items")
        assert responses.calls[1].request.headers["Authorization"] == "Bearer cc-1"

    def test_client_secret_post_and_comma_scopes(self, make_connector, responses):
        connector = make_connector(auth_type="oauth2_client_credentials",
                                   client_auth_method="client_secret_post", scope_separator=",")
        responses.post(TOKEN_URL, json={"access_token": "cc-1", "expires_in": 3600})
        Credential.objects.create(connector=connector, external_id="s").get_access_token()
        assert body(responses.calls[0]) == {
            "grant_type": ["client_credentials"], "scope": ["read,write"],
            "client_id": ["client-id"], "client_secret": ["client-secret-value"]}
        assert "Authorization" not in responses.calls[0].request.headers

    def test_connection_parameters_fill_the_token_url(self, make_connector, responses):
        connector = make_connector(
            auth_type="oauth2_client_credentials",
            token_url="https://login.example/{tenant}/oauth2/token",
            connection_params=[{"name": "tenant", "label": "Tenant",
                                "pattern": "[a-z0-9-]+"}])
        responses.post("https://login.example/acme/oauth2/token",
                       json={"access_token": "cc-acme", "expires_in": 3600})
        credential = Credential.objects.create(connector=connector, external_id="acme",
                                               connection_config={"tenant": "acme"})
        assert credential.get_access_token() == "cc-acme"


class TestRenewal:
    def test_the_sweep_batch_renews_before_expiry_with_a_new_request(self, service_connector,
                                                                      responses):
        responses.post(TOKEN_URL, json={"access_token": "cc-2", "expires_in": 3600})
        now = timezone.now()
        credential = Credential.objects.create(
            connector=service_connector, external_id="s", access_token="cc-1",
            expires_at=now + timedelta(seconds=60), next_refresh_at=now - timedelta(seconds=1))
        fresh = Credential.objects.create(connector=service_connector, external_id="new")
        assert set(Credential.objects.due().values_list("pk", flat=True)) == {
            credential.pk, fresh.pk}
        counts = refresh_batch([credential.pk, fresh.pk])
        assert counts[Result.REFRESHED] == 2
        assert all(body(call)["grant_type"] == ["client_credentials"] for call in responses.calls)
        assert all("refresh_token" not in body(call) for call in responses.calls)
        credential.refresh_from_db()
        assert credential.access_token == "cc-2" and credential.version == 1

    def test_refused_client_is_an_operator_error_not_a_reconnection(self, service_connector,
                                                                   responses):
        responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
        credential = Credential.objects.create(connector=service_connector, external_id="s")
        with pytest.raises(TokenRefreshFailed):
            credential.get_access_token()
        credential.refresh_from_db()
        assert credential.status == Credential.Status.ERROR
        responses.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
        assert credential.refresh(force=True).result is Result.FAILED

    def test_down_provider_is_retried(self, service_connector, responses):
        responses.post(TOKEN_URL, status=503)
        credential = Credential.objects.create(connector=service_connector, external_id="s")
        outcome = refresh_one(credential.pk)
        assert outcome.result is Result.RETRY
        credential.refresh_from_db()
        assert credential.status == Credential.Status.ACTIVE and credential.failure_count == 1

    def test_revoke_without_revocation_url_deletes_the_token(self, service_connector, responses):
        responses.post(TOKEN_URL, json={"access_token": "cc-1", "expires_in": 3600})
        credential = Credential.objects.create(connector=service_connector, external_id="s")
        credential.get_access_token()
        assert credential.revoke().result is Result.REVOKED
        assert credential.access_token == "" and credential.status == "revoked"


def test_a_401_from_the_api_fetches_a_new_token_and_retries(service_connector, responses):
    responses.post(TOKEN_URL, json={"access_token": "cc-2", "expires_in": 3600})
    responses.get("https://api.example/items", status=401)
    responses.get("https://api.example/items", json=[])
    now = timezone.now()
    credential = Credential.objects.create(
        connector=service_connector, external_id="s", access_token="cc-1",
        expires_at=now + timedelta(hours=1), next_refresh_at=now + timedelta(minutes=55))
    assert credential.session().get("items").status_code == 200
    assert [call.request.headers.get("Authorization") for call in responses.calls
            if call.request.method == "GET"] == ["Bearer cc-1", "Bearer cc-2"]
    assert body(responses.calls[1])["grant_type"] == ["client_credentials"]


def test_the_preflight_action_needs_no_round_trip(admin_client, service_connector, responses):
    from django.urls import reverse
    responses.post(TOKEN_URL, json={"access_token": "cc-v", "expires_in": 600})
    page = admin_client.post(reverse("admin:alloy_oauth_connector_changelist"), {
        "action": "validate_preflight", "_selected_action": [service_connector.pk]},
        follow=True).content.decode()
    assert "the checks passed" in page and "round trip" not in page


def test_end_users_never_see_a_client_credentials_connector(service_connector, client,
                                                           django_user_model, caplog):
    from django.template import Context, Template
    from django.urls import reverse
    client.force_login(django_user_model.objects.create_user("alice"))
    assert client.get(reverse("alloy_oauth:authorize", args=[service_connector.slug])
                      ).status_code == 404
    assert service_connector.name not in client.get(
        reverse("alloy_oauth:connections")).content.decode()
    rendered = Template('{% load alloy_oauth %}{% alloy_oauth_connect_button slug %}').render(
        Context({"slug": service_connector.slug}))
    assert "authorize" not in rendered and "nothing rendered" in caplog.text
