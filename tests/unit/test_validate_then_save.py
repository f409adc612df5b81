"""Issue 15 items 1 and 2: "Validate credential" checks the values on the page (saved or not,
the add page's too), Save keeps exactly those values validated, and a connector reaches end
users only when live: active and validated since its last OAuth change."""

from __future__ import annotations

import base64
import re

import pytest
from django.db import connection
from django.template import Context, Template
from django.urls import reverse

from alloy_oauth.models import AuthorizationRequest, Connector

from tests.support.example_provider import AUTH_URL, TOKEN_URL
from tests.support.connector_page import page_values, press_validate, state_of, stub_preflight

pytestmark = pytest.mark.django_db

TYPED_SECRET = "typed-secret-not-saved-yet"
NEW = {"name": "Acme", "slug": "acme", "is_active": "on", "auth_url": AUTH_URL,
       "token_url": TOKEN_URL, "client_id": "acme-id", "client_secret": TYPED_SECRET,
       "scope": "read"}
TOKEN = {"access_token": "round-trip-access", "token_type": "Bearer", "expires_in": 3600,
         "refresh_token": "round-trip-refresh", "scope": "read"}


def outcome(client, flow: str = "flow-1") -> dict:
    return client.get(reverse("admin:alloy_oauth_connector_validation_result"),
                      {"flow": flow}).json()


def round_trip(client, responses, connector, *, token=TOKEN, **changes) -> dict:
    """Press Validate with the page's values and ``changes``, sign in at the provider: the
    outcome the page then shows."""
    stub_preflight(responses, connector or Connector(**{
        name: value for name, value in changes.items() if name in ("auth_url", "token_url")}))
    pressed = press_validate(client, connector, **changes)
    assert pressed["ok"], pressed
    responses.post(changes.get("token_url", connector.token_url if connector else ""),
                   json=token)
    answer = client.get("/oauth/callback/", {"state": state_of(pressed["authorize_url"]),
                                             "code": "the-code"})
    assert answer.status_code == (400 if "error" in token else 200)
    return outcome(client)


def save(client, connector, **changes):
    url = (reverse("admin:alloy_oauth_connector_change", args=[connector.pk]) if connector
           else reverse("admin:alloy_oauth_connector_add"))
    response = client.post(url, page_values(connector, **changes))
    assert response.status_code == 302, response.context["adminform"].form.errors
    return Connector.objects.get(slug=changes.get("slug", connector and connector.slug))


class TestValidateTheValuesOnThePage:
    def test_unsaved_edits_are_what_is_checked(self, admin_client, connector, responses):
        result = round_trip(admin_client, responses, connector, scope="admin")
        assert result["done"] and result["ok"]
        assert AuthorizationRequest.objects.get().scope == "admin"
        assert [row["name"] for row in result["rows"]][-2:] == ["Token", "Scopes"]
        connector.refresh_from_db()
        # The stored connector is not what was validated: its record is unchanged.
        assert connector.validation_report == {} and connector.scope == "read, write"

    def test_the_stored_secret_is_used_when_the_field_is_blank(self, admin_client, connector,
                                                               responses):
        stub_preflight(responses, connector)
        assert press_validate(admin_client, connector, scope="admin")["ok"]
        sent = responses.calls[1].request.headers["Authorization"]
        assert base64.b64decode(sent.split()[1]).decode() == "client-id:client-secret-value"

    def test_but_not_for_a_new_token_url(self, admin_client, connector, responses):
        """As Save: the stored secret is only sent where it was entered for."""
        result = press_validate(admin_client, connector,
                                token_url="https://elsewhere.example/token")
        assert result["ok"] is False and not responses.calls
        [check] = result["checks"]
        assert check["name"] == "Client secret" and "type the client secret again" in (
            check["message"])
        typed = press_validate(admin_client, connector, client_secret=TYPED_SECRET,
                               token_url="https://elsewhere.example/token")
        assert typed["checks"][0]["state"] == "ok"  # (the URL checks ran; no form problem)

    def test_form_errors_are_failed_checks(self, admin_client, connector, responses):
        result = press_validate(admin_client, connector, auth_url="not a url", scope=",")
        assert result["ok"] is False and not responses.calls
        names = {check["name"] for check in result["checks"]}
        assert names == {"Auth URL", "Scope"}, result

    def test_never_echoes_a_secret(self, admin_client, connector, responses):
        responses.get(connector.auth_url, status=302)
        responses.post(connector.token_url, json={"error": "invalid_client",
                                                  "error_description": "bad secret"},
                       status=401)
        result = press_validate(admin_client, connector, client_secret=TYPED_SECRET)
        assert result["ok"] is False
        assert TYPED_SECRET not in str(result) and "client-secret-value" not in str(result)
        result = round_trip(admin_client, responses, connector, client_secret=TYPED_SECRET)
        page = admin_client.get(reverse("admin:alloy_oauth_connector_change",
                                        args=[connector.pk])).content.decode()
        for text in (str(result), page):
            for secret in (TYPED_SECRET, "client-secret-value", "round-trip-access",
                           "round-trip-refresh"):
                assert secret not in text
        with connection.cursor() as cursor:  # the draft is encrypted at rest
            cursor.execute("SELECT draft FROM alloy_oauth_authorizationrequest")
            assert all(TYPED_SECRET not in str(row) for row in cursor.fetchall())


def test_the_unsaved_values_wait_encrypted_until_the_callback(admin_client, responses):
    stub_preflight(responses, Connector(auth_url=AUTH_URL, token_url=TOKEN_URL))
    assert press_validate(admin_client, None, **NEW)["ok"]
    pending = AuthorizationRequest.objects.get()
    assert pending.connector is None and pending.draft["client_secret"] == TYPED_SECRET
    with connection.cursor() as cursor:
        cursor.execute("SELECT draft FROM alloy_oauth_authorizationrequest")
        [(stored,)] = cursor.fetchall()
    assert TYPED_SECRET not in str(stored) and "acme-id" not in str(stored)


class TestValidateThenSave:
    def test_a_new_connector(self, admin_client, responses):
        """The add page validates before anything is saved; Save keeps it validated: live."""
        result = round_trip(admin_client, responses, None, **NEW)
        assert result["ok"], result
        assert not Connector.objects.exists()
        pending = AuthorizationRequest.objects.get()
        assert pending.connector is None and pending.draft == {}  # (dropped once used)
        connector = save(admin_client, None, **NEW, _alloy_oauth_validation="flow-1")
        assert connector.is_live and connector.validation_error == ""
        assert connector.validation_report["scopes_granted"] == ["read"]

    def test_without_the_round_trip_it_is_not_live(self, admin_client):
        connector = save(admin_client, None, **NEW)
        assert connector.is_active and not connector.is_live

    def test_edits_then_save(self, admin_client, connector, responses):
        assert round_trip(admin_client, responses, connector, scope="admin")["ok"]
        connector.validated_at = None
        connector.save()
        saved = save(admin_client, connector, scope="admin", _alloy_oauth_validation="flow-1")
        assert saved.is_live and saved.scope == "admin"

    def test_saving_other_values_than_validated(self, admin_client, connector, responses):
        assert round_trip(admin_client, responses, connector, scope="admin")["ok"]
        saved = save(admin_client, connector, scope="admin other",
                     _alloy_oauth_validation="flow-1")
        assert saved.validated_at is None and not saved.is_live

    def test_a_failed_round_trip_is_no_proof(self, admin_client, connector, responses):
        result = round_trip(admin_client, responses, connector, scope="admin",
                            token={"error": "invalid_client"})
        assert result["done"] and result["ok"] is False
        assert any(row["state"] == "failed" for row in result["rows"])
        saved = save(admin_client, connector, scope="admin", _alloy_oauth_validation="flow-1")
        assert not saved.is_live

    def test_another_sessions_proof_does_not_count(self, admin_client, client, connector,
                                                   responses, django_user_model):
        assert round_trip(admin_client, responses, connector, scope="admin")["ok"]
        client.force_login(django_user_model.objects.create_superuser("colleague"))
        saved = save(client, connector, scope="admin", _alloy_oauth_validation="flow-1")
        assert not saved.is_live

    def test_unchanged_values_are_recorded_on_the_connector(self, admin_client, connector,
                                                            responses):
        Connector.objects.filter(pk=connector.pk).update(validated_at=None)
        assert round_trip(admin_client, responses, connector)["ok"]
        connector.refresh_from_db()
        assert connector.is_live and connector.validation_report["scopes_granted"] == ["read"]


class TestLive:
    def test_offered_only_when_live(self, client, connector, make_connector, django_user_model):
        waiting = make_connector(name="Waiting", slug="waiting", validated_at=None)
        client.force_login(django_user_model.objects.create_user("enduser"))
        page = client.get(reverse("alloy_oauth:connections")).content.decode()
        assert "Example" in page and "Waiting" not in page
        authorize = reverse("alloy_oauth:authorize", args=["waiting"])
        assert client.get(authorize).status_code == 404
        button = Template("{% load alloy_oauth %}{% alloy_oauth_connect_button c %}")
        assert button.render(Context({"c": waiting})).strip() == ""
        assert "href" in button.render(Context({"c": connector}))

    def test_an_oauth_change_takes_it_offline(self, admin_client, connector):
        assert save(admin_client, connector, name="Renamed").is_live
        assert not save(admin_client, connector, token_url="https://provider.example/v2/token",
                        client_secret="retyped").is_live

    def test_a_failed_validation_takes_it_offline(self, admin_client, connector, responses):
        responses.get(connector.auth_url, status=302)
        responses.post(connector.token_url, json={"error": "invalid_client"}, status=401)
        assert press_validate(admin_client, connector)["ok"] is False
        connector.refresh_from_db()
        assert not connector.is_live

    def test_the_list_says_which_are_live(self, admin_client, connector, make_connector):
        make_connector(name="Waiting", validated_at=None)
        make_connector(name="Off", is_active=False)
        make_connector(name="Broken", validated_at=None, validation_error="rejected")
        response = admin_client.get(reverse("admin:alloy_oauth_connector_changelist"))
        page = response.content.decode()
        for badge in ("live", "not_validated", "inactive", "validation_failed"):
            assert f"alloy-oauth-badge-{badge}" in page
        headings = re.findall(r'<th scope="col"[^>]*>.*?<div class="text">(?:<a [^>]*>)?([^<]*)<',
                              page, re.S)
        assert len(headings) == len(set(headings)), headings
        assert "Offered to end users" in headings
