"""The operator's connector form and the admin pages (which never show a secret)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from alloy_oauth.forms import ConnectorForm
from alloy_oauth.models import Connector, Credential, CredentialEvent

pytestmark = pytest.mark.django_db

VALID = {
    "name": "GitHub", "slug": "github", "is_active": "on",
    "auth_url": "https://github.com/login/oauth/authorize",
    "token_url": "https://github.com/login/oauth/access_token",
    "client_id": "Iv1.abc", "client_secret": "gh-client-secret", "scope": "repo, user",
    "refresh_url": "", "refresh_params": "{}", "refresh_lead_time": "", "default_expires_in": "",
    "client_auth_method": "client_secret_basic", "use_pkce": "on", "scope_separator": " ",
    "authorization_params": "{}", "token_params": "{}", "revocation_url": "",
    "api_base_url": "https://api.github.com", "test_request_path": "/user",
}


def form(data=None, instance=None, **changes) -> ConnectorForm:
    values = dict(VALID if data is None else data)
    values.update(changes)
    return ConnectorForm(data=values, instance=instance)


class TestConnectorForm:
    def test_valid(self):
        f = form()
        assert f.is_valid(), f.errors
        connector = f.save()
        assert connector.client_secret == "gh-client-secret"
        assert connector.scope_separator == " "
        assert connector.scopes == ["repo", "user"]

    def test_secret_is_never_rendered_back(self, connector):
        html = str(ConnectorForm(instance=connector))
        assert "client-secret-value" not in html
        assert "A secret is stored" in html

    def test_blank_secret_keeps_the_stored_one(self, connector):
        data = {**VALID, "slug": "example", "client_secret": "", "token_url": connector.token_url}
        f = form(data, instance=connector)
        assert f.is_valid(), f.errors
        assert f.save().client_secret == "client-secret-value"

    @pytest.mark.parametrize("field", ["token_url", "refresh_url", "revocation_url"])
    def test_moving_the_secret_elsewhere_needs_it_typed_again(self, connector, field):
        """Someone who cannot read the secret must not be able to have it sent to a new URL."""
        data = {**VALID, "slug": "example", "client_secret": "", "token_url": connector.token_url,
                field: "https://attacker.example/collect"}
        f = form(data, instance=connector)
        assert not f.is_valid()
        assert "Type the client secret again" in " ".join(f.errors["client_secret"])
        assert form({**data, "client_secret": "typed-again"}, instance=connector).is_valid()

    def test_new_secret_replaces(self, connector):
        f = form({**VALID, "slug": "example"}, instance=connector, client_secret="new-one")
        assert f.is_valid(), f.errors
        assert Connector.objects.get().client_secret == "client-secret-value"
        f.save()
        assert Connector.objects.get().client_secret == "new-one"

    @pytest.mark.parametrize("field, value, message", [
        ("token_url", "http://github.com/token", "must use https"),
        ("auth_url", "not a url", "Enter a valid URL"),
        ("revocation_url", "https://u:p@github.com/revoke", "user name or password"),
        ("authorization_params", "{not json", "Enter a valid JSON"),
        ("authorization_params", "[1, 2]", "Enter a JSON object"),
        ("token_params", '"text"', "Enter a JSON object"),
        ("authorization_params", '{"state": "x", "prompt": "consent"}', "set by the OAuth flow"),
        ("refresh_params", '{"refresh_token": "x"}', "set by the OAuth flow"),
        ("scope", " , ,, ", "Enter at least one scope"),
        ("slug", "not a slug!", "Enter a valid"),
        ("client_auth_method", "private_key_jwt", "Select a valid choice"),
    ])
    def test_field_errors(self, field, value, message):
        f = form(**{field: value})
        assert not f.is_valid()
        assert message in " ".join(f.errors[field])

    def test_plain_http_allowed_for_loopback_and_debug(self, settings):
        assert form(token_url="http://127.0.0.1:8000/token").is_valid()
        settings.DEBUG = True
        assert form(token_url="http://github.example/token").is_valid()

    def test_duplicate_slug(self, connector):
        f = form(slug="example")
        assert not f.is_valid()
        assert "already exists" in " ".join(f.errors["slug"])

    def test_editing_an_oauth_field_clears_validation(self, connector):
        Connector.objects.update(validated_at=timezone.now())
        connector.refresh_from_db()
        data = {**VALID, "slug": "example", "name": "Renamed", "client_secret": "",
                "auth_url": connector.auth_url, "token_url": connector.token_url,
                "client_id": connector.client_id, "scope": connector.scope,
                "api_base_url": "", "test_request_path": "",
                # What the page sends for fields with callable defaults (show_hidden_initial).
                "initial-refresh_params": "{}", "initial-authorization_params": "{}",
                "initial-token_params": "{}"}
        f = form(data, instance=connector)
        assert f.is_valid(), f.errors
        assert f.save().validated_at is not None  # only the name changed
        f = form({**data, "scope": "read"}, instance=Connector.objects.get())
        assert f.is_valid(), f.errors
        assert f.save().validated_at is None


@pytest.fixture
def operator(admin_client):
    return admin_client


@pytest.fixture
def credential(connector, django_user_model):
    user = django_user_model.objects.create_user("enduser")
    credential = Credential.objects.create(
        connector=connector, user=user, access_token="access-token-XYZ123",
        refresh_token="refresh-token-ABC789", token_response={"id_token": "id-token-QRS456"},
        scope="read write", expires_at=timezone.now(),
    )
    CredentialEvent.objects.create(credential=credential, kind="connected", detail="Connected.")
    return credential


SECRETS = ["client-secret-value", "access-token-XYZ123", "refresh-token-ABC789",
           "id-token-QRS456"]


def test_admin_pages_never_show_a_secret(operator, connector, credential):
    pages = [
        reverse("admin:alloy_oauth_connector_changelist"),
        reverse("admin:alloy_oauth_connector_change", args=[connector.pk]),
        reverse("admin:alloy_oauth_connector_add"),
        reverse("admin:alloy_oauth_credential_changelist"),
        reverse("admin:alloy_oauth_credential_change", args=[credential.pk]),
        reverse("admin:alloy_oauth_connector_delete", args=[connector.pk]),
        reverse("admin:alloy_oauth_credential_delete", args=[credential.pk]),
        reverse("admin:alloy_oauth_connector_history", args=[connector.pk]),
    ]
    for page in pages:
        response = operator.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        for secret in SECRETS:
            assert secret not in html, (page, secret)


def test_connector_page_shows_the_callback_url(operator, connector):
    html = operator.get(reverse("admin:alloy_oauth_connector_change", args=[connector.pk]))
    assert 'value="http://testserver/oauth/callback/"' in html.content.decode()


def test_deleting_a_connector_with_credentials_is_refused(operator, connector, credential):
    response = operator.post(reverse("admin:alloy_oauth_connector_delete", args=[connector.pk]),
                             {"post": "yes"})
    assert response.status_code == 200
    assert "would require deleting the following protected related objects" in (
        response.content.decode())
    assert Connector.objects.exists() and Credential.objects.exists()


def test_create_connector_through_the_admin(operator):
    response = operator.post(reverse("admin:alloy_oauth_connector_add"), VALID)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Connector.objects.get().client_secret == "gh-client-secret"
