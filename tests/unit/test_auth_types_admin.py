"""The admin for the new authentication types: the connector form's rules per type, adding
a client credentials credential or an operator's API key / Basic / Bearer credential
(checked with the test request, stored encrypted, never shown back), and Validate
credential for client credentials without a popup."""

from __future__ import annotations

import base64

import pytest
from django.db import connection
from django.urls import reverse

from alloy_oauth.forms import ConnectorForm
from alloy_oauth.models import Connector, Credential

from tests.support.connector_page import VALID, press_validate
from tests.support.example_provider import TOKEN_URL
from tests.support.staff import staff_client

pytestmark = pytest.mark.django_db

API = "https://api.example/v1"
ADD = "admin:alloy_oauth_credential_add"


def connector_form(**changes) -> ConnectorForm:
    return ConnectorForm(data={**VALID, **changes})


class TestConnectorForm:
    def test_existing_forms_default_to_oauth2(self):
        form = connector_form()
        assert form.is_valid(), form.errors
        connector = form.save()
        assert (connector.auth_type, connector.token_placement, connector.token_template) == (
            "oauth2", "header", "{token_type} {token}")

    def test_oauth2_needs_its_urls(self):
        form = connector_form(auth_url="", client_id="")
        assert not form.is_valid()
        assert set(form.errors) == {"auth_url", "client_id"}

    def test_api_key_needs_no_oauth_field_but_an_api_base_url(self):
        form = connector_form(auth_type="api_key", auth_url="", token_url="", client_id="",
                              client_secret="", api_base_url="")
        assert not form.is_valid()
        assert set(form.errors) == {"api_base_url"}
        form = connector_form(auth_type="api_key", auth_url="", token_url="", client_id="",
                              client_secret="", token_header="X-Api-Key",
                              token_template="{api_key}")
        assert form.is_valid(), form.errors

    def test_client_credentials_needs_token_url_and_client(self):
        form = connector_form(auth_type="oauth2_client_credentials", auth_url="",
                              token_url="", client_id="")
        assert not form.is_valid()
        assert set(form.errors) == {"token_url", "client_id"}

    @pytest.mark.parametrize("changes, field", [
        ({"token_template": "{api_key}"}, "token_template"),
        ({"token_header": "X Bad: header"}, "token_header"),
        ({"token_placement": "query"}, "token_query_param"),
        ({"auth_type": "basic", "token_placement": "query", "token_query_param": "k"},
         "token_placement"),
        ({"test_request_statuses": "200, ok"}, "test_request_statuses"),
    ])
    def test_placement_rules(self, changes, field):
        form = connector_form(**changes)
        assert not form.is_valid()
        assert field in form.errors


@pytest.fixture
def key_connector(make_connector):
    return make_connector(auth_type="api_key", auth_url="", token_url="", client_id="",
                          api_base_url=API, test_request_path="/me",
                          token_header="X-Api-Key", token_template="{api_key}")


def add(admin_client, **data):
    return admin_client.post(reverse(ADD), {"connection_config": "{}", **data})


class TestAddCredential:
    def test_the_add_page_offers_no_oauth2_connector(self, admin_client, connector,
                                                     key_connector):
        html = admin_client.get(reverse(ADD)).content.decode()
        assert f'value="{key_connector.pk}" data-auth-type="api_key"' in html
        assert f'value="{connector.pk}"' not in html
        assert "auth_types.js" in html

    def test_api_key_checked_then_stored_encrypted(self, admin_client, key_connector,
                                                   responses):
        responses.get(f"{API}/me", json={})
        answer = add(admin_client, connector=key_connector.pk, external_id="shared",
                     api_key="key-VALUE-1234")
        assert answer.status_code == 302, answer.content.decode()[:3000]
        assert responses.calls[0].request.headers["X-Api-Key"] == "key-VALUE-1234"
        credential = Credential.objects.get()
        assert credential.api_key == "key-VALUE-1234"
        assert [e.kind for e in credential.events.all()] == ["connected"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT api_key FROM alloy_oauth_credential")
            assert b"key-VALUE" not in bytes(cursor.fetchone()[0])
        page = admin_client.get(reverse("admin:alloy_oauth_credential_change",
                                        args=[credential.pk])).content.decode()
        assert "key-VALUE-1234" not in page and "stored (ends …1234)" in page

    def test_refused_key_stores_nothing_and_says_why(self, admin_client, key_connector,
                                                     responses):
        responses.get(f"{API}/me", status=401)
        answer = add(admin_client, connector=key_connector.pk, external_id="shared",
                     api_key="wrong-key-5678")
        html = answer.content.decode()
        assert answer.status_code == 200
        assert "Not stored: the API refused it" in html and "HTTP 401" in html
        assert "wrong-key-5678" not in html
        assert not Credential.objects.exists()

    def test_basic_needs_both_fields(self, admin_client, make_connector, responses):
        connector = make_connector(auth_type="basic", api_base_url=API, test_request_path="me")
        answer = add(admin_client, connector=connector.pk, external_id="x", username="ann")
        assert "needs: Password" in answer.content.decode()
        responses.get(f"{API}/me", json={})
        add(admin_client, connector=connector.pk, external_id="x", username="ann",
            password="pw")
        assert responses.calls[0].request.headers["Authorization"] == (
            "Basic " + base64.b64encode(b"ann:pw").decode())
        assert Credential.objects.get().password == "pw"

    def test_one_owner_and_one_credential(self, admin_client, key_connector, responses,
                                          admin_user):
        responses.get(f"{API}/me", json={})
        answer = add(admin_client, connector=key_connector.pk, api_key="k")
        assert "Choose a user or enter an external ID" in answer.content.decode()
        add(admin_client, connector=key_connector.pk, user=admin_user.pk, api_key="k")
        answer = add(admin_client, connector=key_connector.pk, user=admin_user.pk, api_key="k")
        assert "already has a credential" in answer.content.decode()
        assert Credential.objects.count() == 1

    def test_client_credentials_fetches_a_token_at_once(self, admin_client, make_connector,
                                                        responses,
                                                        django_capture_on_commit_callbacks):
        connector = make_connector(auth_type="oauth2_client_credentials", auth_url="")
        responses.post(TOKEN_URL, json={"access_token": "cc-token-9876", "expires_in": 3600})
        with django_capture_on_commit_callbacks(execute=True):
            answer = add(admin_client, connector=connector.pk, external_id="service")
        assert answer.status_code == 302
        credential = Credential.objects.get()
        assert credential.access_token == "cc-token-9876"
        assert [e.kind for e in credential.events.all()] == ["refreshed", "connected"]
        page = admin_client.get(reverse("admin:alloy_oauth_credential_change",
                                        args=[credential.pk])).content.decode()
        assert "cc-token-9876" not in page and "stored (ends …9876)" in page


class TestValidateClientCredentials:
    def test_without_popup(self, admin_client, make_connector, responses):
        connector = make_connector(auth_type="oauth2_client_credentials", auth_url="",
                                   api_base_url=API, test_request_path="/me")
        responses.post(TOKEN_URL, json={"access_token": "cc-v", "expires_in": 600,
                                        "scope": "read write"})
        responses.get(f"{API}/me", json={})
        answer = press_validate(admin_client, connector)  # (the page's values)
        assert answer["ok"] and "authorize_url" not in answer  # no popup
        assert responses.calls[1].request.headers["Authorization"] == "Bearer cc-v"
        connector.refresh_from_db()
        assert connector.validated_at is not None and connector.validation_error == ""
        assert connector.validation_report["scopes_granted"] == ["read", "write"]
        assert "no refresh token" not in str(connector.validation_report)

    def test_refused_test_request_is_a_failed_check(self, admin_client, make_connector,
                                                    responses):
        connector = make_connector(auth_type="oauth2_client_credentials", auth_url="",
                                   api_base_url=API, test_request_path="/me")
        responses.post(TOKEN_URL, json={"access_token": "cc-v", "expires_in": 600})
        responses.get(f"{API}/me", status=403)
        answer = press_validate(admin_client, connector)
        assert not answer["ok"]
        assert "answered HTTP 403" in answer["checks"][-1]["message"]

    def test_refused_client(self, admin_client, make_connector, responses):
        connector = make_connector(auth_type="oauth2_client_credentials", auth_url="")
        responses.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
        answer = press_validate(admin_client, connector)
        assert not answer["ok"]
        assert "issued no token" in answer["checks"][-1]["message"]
        assert Connector.objects.get().validated_at is None


class TestReplaceSecret:
    def test_checked_then_replaced(self, admin_client, key_connector, responses):
        credential = Credential.objects.create(connector=key_connector, external_id="shared",
                                               api_key="old-key-1111")
        change = reverse("admin:alloy_oauth_credential_change", args=[credential.pk])
        url = reverse("admin:alloy_oauth_credential_replace_secret", args=[credential.pk])
        assert url in admin_client.get(change).content.decode()
        responses.get(f"{API}/me", status=403)
        answer = admin_client.post(url, {"api_key": "bad-key-2222"})
        assert answer.status_code == 400 and "HTTP 403" in answer.content.decode()
        assert "bad-key-2222" not in answer.content.decode()
        responses.replace("GET", f"{API}/me", json={})
        answer = admin_client.post(url, {"api_key": "new-key-3333"})
        assert answer.status_code == 302
        credential.refresh_from_db()
        assert credential.api_key == "new-key-3333" and credential.version == 1
        assert Credential.objects.count() == 1
        assert "Replaced" in credential.events.first().detail

    def test_not_for_other_types(self, admin_client, make_connector, connector,
                                             django_user_model):
        credential = Credential.objects.create(connector=connector, external_id="x",
                                               access_token="t")
        url = reverse("admin:alloy_oauth_credential_replace_secret", args=[credential.pk])
        assert admin_client.get(url).status_code == 403
        assert url not in admin_client.get(reverse("admin:alloy_oauth_credential_change",
                                                   args=[credential.pk])).content.decode()

    def test_not_for_viewers(self, key_connector, django_user_model):
        credential = Credential.objects.create(connector=key_connector, external_id="x",
                                               api_key="k")
        viewer = staff_client(django_user_model, "view")
        url = reverse("admin:alloy_oauth_credential_replace_secret", args=[credential.pk])
        assert viewer.get(url).status_code == 403
        assert url not in viewer.get(reverse("admin:alloy_oauth_credential_change",
                                             args=[credential.pk])).content.decode()
