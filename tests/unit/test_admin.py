"""The operator's connector form and the admin pages (which never show a secret)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from alloy_oauth.forms import ConnectorForm
from alloy_oauth.models import AuthorizationRequest, Connector, Credential, CredentialEvent

from tests.support.connector_page import (
    VALID, form, press_validate, state_of, stub_preflight, validate_url,
)

pytestmark = pytest.mark.django_db


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
        assert "type the client secret again" in " ".join(f.errors["client_secret"])
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
        ("authorization_params", '{"state": "x", "prompt": "consent"}', "the OAuth flow sets these parameters"),
        ("refresh_params", '{"refresh_token": "x"}', "the OAuth flow sets these parameters"),
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


def test_callback_url_has_a_copy_button(operator, connector):
    html = operator.get(reverse("admin:alloy_oauth_connector_change",
                                args=[connector.pk])).content.decode()
    assert 'data-copy-target="id_callback_url"' in html
    assert 'id="alloy-oauth-validate"' in html


def test_connector_list_counts_credentials_by_status(operator, connector, django_user_model):
    for index, status in enumerate(["active", "active", "error", "reauth_required"]):
        Credential.objects.create(connector=connector, external_id=f"e{index}", status=status,
                                  access_token="a")
    response = operator.get(reverse("admin:alloy_oauth_connector_changelist"))
    row = response.context["cl"].result_list[0]
    assert (row.active_count, row.error_count, row.reauth_required_count, row.revoked_count) == (
        2, 1, 1, 0)


class TestValidatePreflight:
    def url(self, connector):
        return reverse("admin:alloy_oauth_connector_validate", args=[connector.pk])

    @pytest.mark.parametrize("status", [400, 403])  # Auth0 (and Atlassian's) answer 403
    def test_client_credentials_accepted(self, operator, connector, responses, status):
        responses.get(connector.auth_url, status=302)
        responses.post(connector.token_url, json={"error": "invalid_grant"}, status=status)
        result = press_validate(operator, connector)
        assert result["ok"] is True
        # The popup goes straight to the provider, for the values on the page.
        assert result["authorize_url"].startswith(connector.auth_url + "?")
        assert result["checks"][-1]["message"].startswith("Accepted: the token endpoint refused only")
        sent = responses.calls[-1].request
        assert "alloy-oauth-validation-deliberately-invalid-code" in sent.body
        validated_at = connector.validated_at
        connector.refresh_from_db()
        # Passing the pre-flight keeps the validation (the round trip is still to come).
        assert connector.validation_error == "" and connector.validated_at == validated_at

    @pytest.mark.parametrize("error", ["bad_verification_code", "invalid_code"])
    def test_a_providers_own_refusal_of_the_code_lets_the_round_trip_tell(
            self, operator, connector, responses, error):
        responses.get(connector.auth_url, status=302)
        responses.post(connector.token_url, json={"error": error}, status=200)
        result = press_validate(operator, connector)
        assert result["ok"] is True and result["authorize_url"]
        assert f"refused the deliberately invalid test code ({error})" in (
            result["checks"][-1]["message"])

    @pytest.mark.parametrize("stub", [
        dict(status=404, body="Not Found"),
        dict(status=404, json={"error": "Not Found"}),  # a web framework's JSON 404
        dict(status=401, json={"status": 401, "error": "Unauthorized"}),
        dict(status=400, json={"error": {"message": "Error validating client secret.",
                                         "type": "OAuthException"}}),
        dict(status=400, json={"error": "invalid_request",
                               "error_description": "client_id missing"}),
        # The words of a refused code, but not from a token endpoint refusing it.
        dict(status=404, json={"error": "bad_verification_code"}),
        dict(status=404, json={"error": "invalid_grant"}),
        dict(status=401, json={"error": "invalid_grant"}),
    ])
    def test_other_refusals_still_fail(self, operator, connector, responses, stub):
        responses.get(connector.auth_url, status=302)
        responses.post(connector.token_url, **stub)
        result = press_validate(operator, connector)
        assert result["ok"] is False and "authorize_url" not in result

    @pytest.mark.parametrize("stub", [
        dict(json={"error": "invalid_client"}, status=401),
        dict(body="", status=401),
        dict(json={"error": "unauthorized_client"}, status=400),
    ])
    def test_client_credentials_rejected(self, operator, connector, responses, stub):
        responses.get(connector.auth_url, status=200)
        responses.post(connector.token_url, **stub)
        result = press_validate(operator, connector)
        assert result["ok"] is False and "authorize_url" not in result
        assert "The client credentials were rejected" in result["checks"][-1]["message"]
        connector.refresh_from_db()
        assert "client credentials were rejected" in connector.validation_error

    def test_network_errors_are_reported_not_raised(self, operator, connector, responses):
        import requests as requests_lib

        responses.get(connector.auth_url, body=requests_lib.ConnectionError())
        responses.post(connector.token_url, body=requests_lib.ReadTimeout())
        result = press_validate(operator, connector)
        assert result["ok"] is False
        messages_ = [check["message"] for check in result["checks"]]
        assert any("No answer from this address" in m for m in messages_)
        assert any("did not answer within" in m for m in messages_)

    def test_auth_url_not_found(self, operator, connector, responses):
        responses.get(connector.auth_url, status=404)
        responses.post(connector.token_url, json={"error": "invalid_grant"}, status=400)
        result = press_validate(operator, connector)
        assert result["ok"] is False
        assert "answered HTTP 404" in result["checks"][-2]["message"]

    def test_get_is_refused(self, operator, connector):
        assert operator.get(self.url(connector)).status_code == 405

    def test_needs_the_change_permission(self, client, connector, django_user_model):
        from django.contrib.auth.models import Permission

        staff = django_user_model.objects.create_user("viewer", is_staff=True)
        staff.user_permissions.add(Permission.objects.get(codename="view_connector"))
        client.force_login(staff)
        assert client.post(self.url(connector)).status_code == 403
        assert client.post(validate_url(None)).status_code == 403  # (no add permission)
        client.force_login(django_user_model.objects.create_user("nobody"))
        assert client.post(self.url(connector)).status_code == 302  # to the admin login

    def test_admin_action(self, operator, connector, make_connector, responses):
        other = make_connector()
        responses.get(connector.auth_url, status=200)
        responses.post(connector.token_url, json={"error": "invalid_client"}, status=401)
        response = operator.post(reverse("admin:alloy_oauth_connector_changelist"), {
            "action": "validate_preflight", "_selected_action": [connector.pk, other.pk],
        }, follow=True)
        texts = [str(m) for m in response.context["messages"]]
        assert len(texts) == 2
        assert all("client credentials were rejected" in t for t in texts)


class TestValidateRoundTrip:
    def start(self, operator, connector, responses):
        """Press Validate (the pre-flight passes): the popup's state at the provider."""
        stub_preflight(responses, connector)
        result = press_validate(operator, connector)
        assert result["ok"], result
        return state_of(result["authorize_url"])

    def test_success_reports_and_stores_no_credential(self, operator, connector, responses):
        connector.api_base_url = "https://api.provider.example"
        connector.test_request_path = "/me"
        connector.save()
        state = self.start(operator, connector, responses)
        responses.post(connector.token_url, json={
            "access_token": "validation-token", "token_type": "bearer", "expires_in": 3600,
            "refresh_token": "validation-refresh", "scope": "read"})
        responses.get("https://api.provider.example/me", json={"id": 1})
        pending = AuthorizationRequest.objects.get()
        assert (pending.purpose, pending.popup) == ("validate", True)
        response = operator.get("/oauth/callback/", {"state": state, "code": "the-code"})
        assert response.status_code == 200
        assert response.context["result"] == {"source": "alloy_oauth", "connector": "example",
                                              "flow": "flow-1", "status": "validated"}
        assert responses.calls[-1].request.headers["Authorization"] == "Bearer validation-token"
        assert not Credential.objects.exists()
        connector.refresh_from_db()
        assert connector.validated_at is not None and connector.validation_error == ""
        report = connector.validation_report
        assert report["scopes_requested"] == ["read", "write"]
        assert report["scopes_granted"] == ["read"] and report["scopes_missing"] == ["write"]
        assert report["expires_in"] == 3600 and report["refresh_token"] is True
        assert report["test_request"]["status"] == 200
        page = operator.get(reverse("admin:alloy_oauth_connector_change",
                                    args=[connector.pk])).content.decode()
        assert "Not granted: write." in page
        assert "validation-token" not in page and "validation-refresh" not in page

    def test_failing_test_request(self, operator, connector, responses):
        connector.api_base_url = "https://api.provider.example"
        connector.test_request_path = "me"
        connector.save()
        state = self.start(operator, connector, responses)
        responses.post(connector.token_url, json={"access_token": "t", "expires_in": 60})
        responses.get("https://api.provider.example/me", status=403)
        operator.get("/oauth/callback/", {"state": state, "code": "the-code"})
        connector.refresh_from_db()
        assert connector.validated_at is None
        assert connector.validation_error == (
            "The test request GET https://api.provider.example/me answered HTTP 403.")

    @pytest.mark.parametrize("statuses, answer", [("200, 404", 404), ("", 302)])
    def test_the_report_marks_the_test_request_by_the_connectors_statuses(
            self, operator, connector, responses, statuses, answer):
        """A status the connector counts as valid (its own list, else any below 400) is a ✔
        in the report, not only a 2xx (issue 14)."""
        connector.api_base_url = "https://api.provider.example"
        connector.test_request_path = "/me"
        connector.test_request_statuses = statuses
        connector.save()
        state = self.start(operator, connector, responses)
        responses.post(connector.token_url, json={"access_token": "t", "expires_in": 60})
        responses.get("https://api.provider.example/me", status=answer)
        operator.get("/oauth/callback/", {"state": state, "code": "the-code"})
        connector.refresh_from_db()
        assert connector.validated_at is not None, connector.validation_error
        rows = operator.get(reverse("admin:alloy_oauth_connector_validation_result"),
                            {"flow": "flow-1"}).json()["rows"]
        assert [(row["state"], row["symbol"]) for row in rows
                if row["name"] == "Test request"] == [("ok", "✔")]
        page = operator.get(reverse("admin:alloy_oauth_connector_change",
                                    args=[connector.pk])).content.decode()
        assert re.search(r'<tr class="alloy-oauth-ok"><th>Test request</th>'
                         r'<td class="alloy-oauth-symbol">✔</td><td>GET https://api.provider'
                         rf'\.example/me → {answer}</td>', page)

    def test_failed_exchange(self, operator, connector, responses):
        state = self.start(operator, connector, responses)
        responses.post(connector.token_url, json={"error": "invalid_client"}, status=401)
        response = operator.get("/oauth/callback/", {"state": state, "code": "the-code"})
        assert response.status_code == 400
        assert response.context["result"]["status"] == "error"
        connector.refresh_from_db()
        assert connector.validated_at is None
        assert "invalid_client" in connector.validation_error

    @pytest.mark.parametrize("answer", ["token", "callback"])
    def test_hostile_provider_text_is_stored_printable(self, operator, connector, responses,
                                                       answer):
        state = self.start(operator, connector, responses)
        responses.post(connector.token_url, status=400,
                       json={"error": "invalid_grant", "error_description": "bad\u0000code"})
        query = ({"code": "the-code"} if answer == "token"
                 else {"error": "x\x00y", "error_description": "bad\x00code"})
        response = operator.get("/oauth/callback/", {"state": state, **query})
        assert response.status_code == 400
        connector.refresh_from_db()
        assert "bad code" in connector.validation_error

    def test_inactive_connector_can_be_validated(self, operator, connector, responses):
        connector.is_active = False
        connector.save()
        state = self.start(operator, connector, responses)
        responses.post(connector.token_url, json={"access_token": "t"})
        assert operator.get("/oauth/callback/",
                            {"state": state, "code": "c"}).context["result"]["status"] == "validated"


class TestCredentialAdmin:
    def test_list(self, operator, credential):
        html = operator.get(reverse("admin:alloy_oauth_credential_changelist")).content.decode()
        assert "alloy-oauth-badge-active" in html
        assert " ago" in html  # expires_at is now: "0 minutes ago"

    def test_detail_shows_token_tails_only(self, operator, credential):
        html = operator.get(reverse("admin:alloy_oauth_credential_change",
                                    args=[credential.pk])).content.decode()
        assert "stored (ends …Z123)" in html and "stored (ends …C789)" in html
        assert 'name="_save"' not in html

    def test_post_to_the_change_page_changes_nothing(self, operator, credential):
        Credential.objects.filter(pk=credential.pk).update(refresh_token="rotated", version=7)
        url = reverse("admin:alloy_oauth_credential_change", args=[credential.pk])
        operator.post(url, {"events-TOTAL_FORMS": "1", "events-INITIAL_FORMS": "1",
                            "events-MIN_NUM_FORMS": "0", "events-MAX_NUM_FORMS": "1000",
                            "_save": "Save"})
        row = Credential.objects.get(pk=credential.pk)
        assert (row.refresh_token, row.version) == ("rotated", 7)

    def action(self, operator, name, credential):
        return operator.post(reverse("admin:alloy_oauth_credential_changelist"), {
            "action": name, "_selected_action": [credential.pk]}, follow=True)

    def test_refresh_now(self, operator, credential, responses):
        responses.post(credential.connector.token_url, json={"access_token": "fresh"})
        response = self.action(operator, "refresh_now", credential)
        assert "1 credential(s) refreshed." in [str(m) for m in response.context["messages"]]
        assert Credential.objects.get(pk=credential.pk).access_token == "fresh"

    def test_revoke_with_a_revocation_url(self, operator, credential, responses):
        connector = credential.connector
        connector.revocation_url = "https://provider.example/oauth/revoke"
        connector.save()
        responses.post(connector.revocation_url, body="")  # 200, even for unknown tokens
        response = self.action(operator, "revoke", credential)
        assert "1 credential(s) revoked." in [str(m) for m in response.context["messages"]]
        row = Credential.objects.get(pk=credential.pk)
        assert (row.status, row.access_token, row.refresh_token) == ("revoked", "", "")
        body = responses.calls[0].request.body
        assert "token=refresh-token-ABC789" in body and "token_type_hint=refresh_token" in body
        assert row.events.first().kind == "revoked"

    def test_revoke_refused_keeps_the_tokens(self, operator, credential, responses):
        connector = credential.connector
        connector.revocation_url = "https://provider.example/oauth/revoke"
        connector.save()
        responses.post(connector.revocation_url, status=503, body="")
        response = self.action(operator, "revoke", credential)
        [message] = [str(m) for m in response.context["messages"]]
        assert "did not confirm the revocation, so the tokens are kept" in message
        assert "HTTP 503" in message
        row = Credential.objects.get(pk=credential.pk)
        assert (row.status, row.refresh_token, row.lease_until) == (
            "active", "refresh-token-ABC789", None)

    def test_revoke_without_a_revocation_url(self, operator, credential, responses):
        self.action(operator, "revoke", credential)
        row = Credential.objects.get(pk=credential.pk)
        assert row.status == "revoked" and row.access_token == ""
        assert "no revocation URL" in row.events.first().detail
        assert len(responses.calls) == 0

    def test_mark_for_reconnection(self, operator, credential):
        response = self.action(operator, "mark_for_reconnection", credential)
        assert "1 credential(s) marked for reconnection." in [
            str(m) for m in response.context["messages"]]
        row = Credential.objects.get(pk=credential.pk)
        assert row.status == "reauth_required" and row.next_refresh_at is None
        assert row.events.first().detail == "Marked for reconnection by admin."

    def test_actions_need_the_change_permission(self, client, credential, django_user_model):
        from django.contrib.auth.models import Permission

        staff = django_user_model.objects.create_user("viewer", is_staff=True)
        staff.user_permissions.add(Permission.objects.get(codename="view_credential"))
        client.force_login(staff)
        response = client.get(reverse("admin:alloy_oauth_credential_changelist"))
        assert response.status_code == 200
        assert "refresh_now" not in response.content.decode()
        self.action(client, "revoke", credential)
        assert Credential.objects.get(pk=credential.pk).status == "active"
