"""The authorize and callback views with a stubbed token endpoint: every path, good and bad."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alloy_oauth import authorization, credential_store, protocol, tickets
from alloy_oauth.models import AuthorizationRequest, Credential, CredentialEvent
from alloy_oauth.signals import credential_connected

from tests.support.connector_page import press_validate, stub_preflight
from tests.support.example_provider import TOKEN_BODY, TOKEN_URL
from tests.support.flow import authorize, callback, open_link, start


def assert_failed(response, reason: str) -> None:
    assert response.status_code == 400, response.status_code
    assert response.context["reason"] == reason, response.context["reason"]
    assert not Credential.objects.exists()


class TestAuthorize:
    def test_anonymous_goes_to_login(self, client, connector):
        response = authorize(client)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
        assert not AuthorizationRequest.objects.exists()

    def test_anonymous_goes_to_login_before_any_parameter_is_checked(self, client, connector):
        """Issue 11: a page of another site that sends a window here gets no popup page
        (which would report an error to every window of this site)."""
        url = reverse("alloy_oauth:authorize", args=["example"]) + "?popup=1&flow=a&flow=b"
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")

    def test_unknown_connector_404(self, browser, connector):
        assert authorize(browser, "nope").status_code == 404

    def test_inactive_connector_404(self, browser, connector):
        connector.is_active = False
        connector.save()
        assert authorize(browser).status_code == 404

    def test_only_get_and_post(self, browser, connector):
        assert browser.put(reverse("alloy_oauth:authorize", args=["example"])).status_code == 405

    def test_authorization_url(self, browser, connector, user):
        connector.authorization_params = {"access_type": "offline", "prompt": "consent"}
        connector.save()
        response = authorize(browser)
        location = response["Location"]
        assert location.startswith("https://provider.example/oauth/authorize?")
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        pending = AuthorizationRequest.objects.get()
        assert params["response_type"] == "code"
        assert params["client_id"] == "client-id"
        assert params["redirect_uri"] == "http://testserver/oauth/callback/"
        assert params["scope"] == "read write"
        assert params["code_challenge_method"] == "S256"
        assert params["code_challenge"] == protocol.pkce_challenge(pending.code_verifier)
        assert params["access_type"] == "offline" and params["prompt"] == "consent"
        assert len(params["state"]) >= 22  # ≥ 128 bits in base64url
        assert pending.state_hash == hashlib.sha256(params["state"].encode()).hexdigest()
        assert pending.redirect_uri == params["redirect_uri"]
        assert pending.user == user
        assert pending.scope == "read write"
        ttl = (pending.expires_at - pending.created_at).total_seconds()
        assert ttl == 600

    def test_headers(self, browser, connector):
        response = authorize(browser)
        assert "no-store" in response["Cache-Control"]
        # Nothing of our URL reaches the provider; our own forms keep their Origin header.
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"

    def test_comma_separator_and_no_pkce(self, browser, make_connector):
        make_connector(slug="slack", scope="channels:read chat:write", scope_separator=",",
                       use_pkce=False)
        params = start(browser, "slack")
        assert params["scope"] == "channels:read,chat:write"
        assert "code_challenge" not in params
        assert AuthorizationRequest.objects.get().code_verifier == ""

    def test_callback_base_url_setting(self, browser, connector, settings):
        settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": "https://app.example.com/"}
        params = start(browser)
        assert params["redirect_uri"] == "https://app.example.com/oauth/callback/"
        assert connector.callback_url == "https://app.example.com/oauth/callback/"

    def test_state_ttl_setting(self, browser, connector, settings):
        settings.ALLOY_OAUTH = {"STATE_TTL": 30}
        start(browser)
        pending = AuthorizationRequest.objects.get()
        assert (pending.expires_at - pending.created_at).total_seconds() == 30

    def test_plain_http_auth_url_refused_outside_debug(self, browser, make_connector, settings):
        make_connector(slug="plain", auth_url="http://provider.example/authorize")
        response = authorize(browser, "plain")
        assert response.status_code == 400
        assert response.context["reason"] == "configuration"
        assert "must use https" in response.content.decode()
        assert not AuthorizationRequest.objects.exists()
        settings.DEBUG = True
        assert authorize(browser, "plain").status_code == 302

    @pytest.mark.parametrize("next_url", [
        "https://evil.example/", "//evil.example/", "/\\evil.example/", "\\\\evil.example",
        "javascript:alert(1)", "http://testserver.evil.example/", " https://evil.example",
        "\x00/x", "http:///evil.example",
    ])
    def test_next_must_stay_on_this_site(self, browser, connector, next_url):
        start(browser, next=next_url)
        assert AuthorizationRequest.objects.get().next_url == ""

    @pytest.mark.parametrize("query", [{"next": "/" + "x" * 3000}, {"popup": "1" * 5000}])
    def test_oversized_parameters_are_refused(self, browser, connector, query):
        response = authorize(browser, **query)
        assert response.status_code == 400
        assert response.context["reason"] == "invalid_request"
        assert not AuthorizationRequest.objects.exists()

    def test_repeated_parameters_are_refused(self, browser, connector):
        response = browser.get(reverse("alloy_oauth:authorize", args=["example"]) +
                               "?next=/a/&next=/b/")
        assert response.status_code == 400

    def test_pending_authorizations_are_capped(self, browser, connector, settings, client,
                                               user):
        settings.ALLOY_OAUTH = {"MAX_PENDING_AUTHORIZATIONS": 3}
        for _ in range(3):
            assert authorize(browser).status_code == 302
        response = authorize(browser)
        assert response.status_code == 429
        assert response.context["reason"] == "too_many_pending"
        assert AuthorizationRequest.objects.count() == 3
        other_browser = Client()
        other_browser.force_login(user)  # the cap is per user too
        assert authorize(other_browser).status_code == 429
        AuthorizationRequest.objects.update(expires_at=timezone.now())  # they expire
        assert authorize(browser).status_code == 302

    @pytest.mark.parametrize("next_url", ["/settings/connections/", "http://testserver/x?y=1"])
    def test_next_on_this_site_kept(self, browser, connector, next_url):
        start(browser, next=next_url)
        assert AuthorizationRequest.objects.get().next_url == next_url


class TestCallbackRefusals:
    """Every bad callback: a 400 page, no token request, nothing stored."""

    def test_missing_state(self, browser, connector, responses):
        assert_failed(callback(browser, code="x"), "missing_state")
        assert len(responses.calls) == 0

    def test_unknown_state(self, browser, connector, responses):
        start(browser)
        assert_failed(callback(browser, state="forged", code="x"), "unknown_state")
        assert len(responses.calls) == 0

    def test_expired_state(self, browser, connector, responses):
        params = start(browser)
        AuthorizationRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        assert_failed(callback(browser, state=params["state"], code="x"), "expired_state")
        assert len(responses.calls) == 0

    def test_replayed_state(self, browser, connector, responses):
        responses.post(TOKEN_URL, json=TOKEN_BODY)
        params = start(browser)
        assert callback(browser, state=params["state"], code="c1").status_code == 303
        Credential.objects.all().delete()
        assert_failed(callback(browser, state=params["state"], code="c2"), "used_state")
        assert len(responses.calls) == 1

    def test_a_used_state_tells_another_browser_nothing_of_the_flow(self, browser, connector,
                                                                    responses):
        responses.post(TOKEN_URL, json=TOKEN_BODY)
        params = start(browser, popup="1", flow="victimflow123", next="/private/invoice/42/")
        assert callback(browser, state=params["state"], code="c1").status_code == 200
        Credential.objects.all().delete()
        response = callback(Client(), state=params["state"], code="c2")
        assert_failed(response, "used_state")
        body = response.content.decode()
        assert "victimflow123" not in body and "/private/invoice/42/" not in body
        assert len(responses.calls) == 1

    def test_state_from_another_browser_session(self, browser, connector, user, responses):
        params = start(browser)
        other = Client()
        other.force_login(user)  # same user, different browser
        assert_failed(callback(other, state=params["state"], code="x"), "wrong_session")
        assert_failed(callback(Client(), state=params["state"], code="x"), "wrong_session")
        assert len(responses.calls) == 0
        # The attacker's attempts did not burn the real user's state.
        assert AuthorizationRequest.objects.get().consumed_at is None

    def test_access_denied(self, browser, connector, responses):
        params = start(browser)
        response = callback(browser, state=params["state"], error="access_denied",
                            error_description="<script>alert('x')</script> User said no")
        assert_failed(response, "access_denied")
        body = response.content.decode()
        assert "You did not grant access to Example." in body
        assert "<script>alert" not in body
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; User said no" in body
        assert len(responses.calls) == 0
        assert AuthorizationRequest.objects.get().consumed_at is not None

    def test_control_characters_in_a_provider_error(self, browser, connector, responses):
        params = start(browser)
        response = callback(browser, state=params["state"], error="invalid\x00scope",
                            error_description="line\x00one\nForged: log line")
        assert_failed(response, "provider_error")
        body = response.content.decode()
        assert "invalid scope" in body and "line one Forged: log line" in body
        assert "\x00" not in body

    def test_other_provider_error(self, browser, connector, responses):
        params = start(browser)
        response = callback(browser, state=params["state"], error="invalid_scope")
        assert_failed(response, "provider_error")
        assert "refused the authorization (invalid_scope)" in response.content.decode()

    def test_neither_code_nor_error(self, browser, connector, responses):
        params = start(browser)
        assert_failed(callback(browser, state=params["state"]), "missing_code")
        assert len(responses.calls) == 0

    def test_repeated_parameter(self, browser, connector, responses):
        params = start(browser)
        url = reverse("alloy_oauth:callback") + f"?state={params['state']}&code=a&code=b"
        assert_failed(browser.get(url), "invalid_request")
        assert len(responses.calls) == 0

    def test_oversized_parameter(self, browser, connector, responses):
        params = start(browser)
        assert_failed(callback(browser, state=params["state"], code="x" * 5000), "invalid_request")
        assert len(responses.calls) == 0

    def test_connector_disabled_meanwhile(self, browser, connector, responses):
        params = start(browser)
        connector.is_active = False
        connector.save()
        assert_failed(callback(browser, state=params["state"], code="x"), "inactive_connector")
        assert len(responses.calls) == 0

    def test_post_not_allowed(self, browser, connector):
        assert browser.post(reverse("alloy_oauth:callback")).status_code == 405

    def test_failure_headers(self, browser, connector):
        response = callback(browser, state="nope")
        assert "no-store" in response["Cache-Control"]
        assert response["Referrer-Policy"] == "no-referrer"

    def test_lost_race_for_the_state(self, browser, connector, responses, monkeypatch):
        """Between our checks and our UPDATE another request consumed the state: we lose."""
        params = start(browser)
        real_binding = tickets.browser_binding

        def binding_then_someone_else_consumes(session, *, create):
            value = real_binding(session, create=create)
            AuthorizationRequest.objects.update(consumed_at=timezone.now())
            return value

        monkeypatch.setattr(tickets, "browser_binding", binding_then_someone_else_consumes)
        assert_failed(callback(browser, state=params["state"], code="x"), "used_state")
        assert len(responses.calls) == 0


class TestCodeExchangeFailures:
    """The provider's token endpoint fails: a clear page, nothing stored, state used up."""

    @pytest.mark.parametrize("stub, fragment", [
        (dict(json={"error": "invalid_grant", "error_description": "Code expired"}, status=400),
         "The provider answered invalid_grant: Code expired"),
        (dict(json={"error": "invalid_client"}, status=401), "The provider answered invalid_client."),
        (dict(body="<html><h1>502 Bad Gateway</h1></html>", status=502,
              content_type="text/html"), "answered HTTP 502 with an HTML page"),
        (dict(json={"error": "bad_verification_code"}, status=200),
         "The provider answered bad_verification_code."),
        (dict(body="<html>login</html>", status=200, content_type="text/html"),
         "answered HTTP 200 with an HTML page instead of a token"),
        (dict(body=requests.ConnectTimeout()), "did not answer within 10 seconds"),
        (dict(body=requests.ConnectionError()),
         "The connection to the token endpoint at provider.example broke"),
    ])
    def test_failure_page(self, browser, connector, responses, stub, fragment):
        responses.post(TOKEN_URL, **stub)
        params = start(browser)
        response = callback(browser, state=params["state"], code="the-code")
        assert_failed(response, "token_error")
        assert fragment in response.content.decode()
        assert not CredentialEvent.objects.exists()


def ways_on(response) -> tuple[str, str, str | None, bool]:
    """Where a failure page leads: (back_to, back_url, retry_url, new_link_needed)."""
    context = response.context
    return (context["back_to"], context["back_url"], context["retry_url"],
            context["new_link_needed"])


class TestFailurePagesLeadOn:
    """Issue 11: the failure page was a dead end. Back to where the flow started (only for the
    browser that started it), else the Connections page, else the site; "Try again" where a
    new attempt may work; a headless end user is told to ask for a new link."""

    RETRY = "/oauth/example/authorize/?next=%2Fsettings%2Fapps%2F"

    def test_an_expired_attempt(self, browser, connector):
        params = start(browser, next="/settings/apps/")
        AuthorizationRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        response = callback(browser, state=params["state"], code="x")
        assert_failed(response, "expired_state")
        assert ways_on(response) == ("next", "/settings/apps/", self.RETRY, False)
        body = response.content.decode()
        assert f'href="{self.RETRY}"' in body and ">Try again</a>" in body
        assert '<a class="alloy-oauth-back" href="/settings/apps/">Go back</a>' in body
        # Trying again asks the person first (the link carries no start ticket).
        again = browser.get(self.RETRY)
        assert again.status_code == 200 and "Continue to Example" in again.content.decode()

    @pytest.mark.parametrize("stub, retry", [
        (dict(json={"error": "invalid_grant"}, status=400), True),  # the code expired
        (dict(body="<html>502</html>", status=502, content_type="text/html"), True),
        (dict(body=requests.ConnectTimeout()), True),
        (dict(json={"error": "invalid_client"}, status=401), False),  # the operator's to fix
        (dict(json={"error": "invalid_request"}, status=400), False),
    ])
    def test_a_failed_code_exchange(self, browser, connector, responses, stub, retry):
        responses.post(TOKEN_URL, **stub)
        params = start(browser, next="/settings/apps/")
        response = callback(browser, state=params["state"], code="the-code")
        assert_failed(response, "token_error")
        assert ways_on(response) == ("next", "/settings/apps/", self.RETRY if retry else None,
                                     False)
        assert ("Try again" in response.content.decode()) is retry

    @pytest.mark.parametrize("error, retry", [
        ("access_denied", True), ("temporarily_unavailable", True), ("server_error", True),
        ("invalid_scope", False), ("unauthorized_client", False),
    ])
    def test_a_refusal_at_the_provider(self, browser, connector, error, retry):
        params = start(browser)
        response = callback(browser, state=params["state"], error=error)
        assert ways_on(response) == ("connections", "/oauth/connections/",
                                     "/oauth/example/authorize/" if retry else None, False)

    def test_a_forged_answer(self, browser, connector):
        start(browser, next="/settings/apps/")
        response = callback(browser, state="forged", code="x")
        assert_failed(response, "unknown_state")
        assert ways_on(response) == ("connections", "/oauth/connections/", None, False)
        assert "Try again" not in response.content.decode()
        assert ways_on(callback(Client(), state="forged")) == ("site", "/", None, False)

    def test_another_browser_learns_nothing_of_the_flow(self, browser, connector, user):
        params = start(browser, next="/private/invoice/42/")
        other = Client()
        other.force_login(user)
        response = callback(other, state=params["state"], code="x")
        assert_failed(response, "wrong_session")
        # A new attempt in this browser, which does not get the flow's next.
        assert ways_on(response) == ("connections", "/oauth/connections/",
                                     "/oauth/example/authorize/", False)
        anonymous = callback(Client(), state=params["state"], code="x")
        assert ways_on(anonymous) == ("site", "/", None, False)
        assert "/private/invoice/42/" not in anonymous.content.decode()

    def test_a_disabled_connector(self, browser, connector):
        params = start(browser)
        connector.is_active = False
        connector.save()
        response = callback(browser, state=params["state"], code="x")
        assert ways_on(response) == ("connections", "/oauth/connections/", None, False)

    def test_too_many_attempts(self, browser, connector, settings):
        settings.ALLOY_OAUTH = {"MAX_PENDING_AUTHORIZATIONS": 1}
        start(browser)
        response = authorize(browser, next="/settings/apps/")
        assert response.status_code == 429
        assert ways_on(response) == ("next", "/settings/apps/", self.RETRY, False)

    def test_a_misconfigured_connector(self, browser, make_connector):
        make_connector(slug="plain", auth_url="http://provider.example/authorize")
        response = authorize(browser, "plain", next="/settings/apps/")
        assert response.context["reason"] == "configuration"
        assert ways_on(response) == ("next", "/settings/apps/", None, False)

    def test_a_bad_parameter(self, browser, connector):
        url = reverse("alloy_oauth:authorize", args=["example"])
        response = browser.get(url + "?next=/a/&next=/b/")
        assert ways_on(response) == ("connections", "/oauth/connections/", None, False)

    def test_a_headless_link_that_does_not_work(self, client, connector):
        from alloy_oauth import headless

        url = headless.connect_url(connector, "customer-42", next_url="/shop/")
        response = client.get(url[:-3] + "xyz")  # (forged)
        assert response.context["reason"] == "invalid_link"
        assert ways_on(response) == ("site", "/", None, True)
        assert "ask for a new connect link" in response.content.decode()

    def test_a_failed_headless_flow(self, client, connector):
        from alloy_oauth import headless

        response = open_link(client, headless.connect_url(connector, "c-42", next_url="/shop/"))
        state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
        response = callback(client, state=state, error="access_denied")
        assert_failed(response, "access_denied")
        # The link worked once: trying again needs a new one.
        assert ways_on(response) == ("next", "/shop/", None, True)

    def test_the_popup_page_opened_without_a_popup(self, browser, connector):
        """popup.js closes a popup; a window it cannot close shows the same ways on."""
        params = start(browser, popup="1", flow="f1", next="/settings/apps/")
        response = callback(browser, state=params["state"], error="access_denied")
        assert response.templates[0].name == "alloy_oauth/popup.html"
        assert response.context["result"]["status"] == "error"
        assert ways_on(response) == ("next", "/settings/apps/", self.RETRY, False)
        body = response.content.decode()
        assert ">Try again</a>" in body and ">Go back</a>" in body
        assert ">Continue</a>" not in body  # (that is for a success)
        popup_failure = browser.get(reverse("alloy_oauth:authorize", args=["example"]),
                                    {"popup": "1", "flow": "f2", "next": "/" + "x" * 3000})
        assert popup_failure.context["result"]["reason"] == "invalid_request"
        assert ways_on(popup_failure) == ("connections", "/oauth/connections/", None, False)

    def test_a_failed_validation_leads_back_to_the_connector(self, client, connector,
                                                             django_user_model, responses):
        client.force_login(django_user_model.objects.create_superuser("operator"))
        stub_preflight(responses, connector)
        unnamed = press_validate(client, connector, flow="<script>")
        assert unnamed["ok"] and AuthorizationRequest.objects.get().flow_id == ""  # (not an id)
        AuthorizationRequest.objects.all().delete()
        # admin.js gives its popup an id: only that page acts on the result.
        response = press_validate(client, connector, flow="v1")
        assert AuthorizationRequest.objects.get().flow_id == "v1"
        state = parse_qs(urlsplit(response["authorize_url"]).query)["state"][0]
        response = callback(client, state=state, code="x")
        assert response.context["result"]["flow"] == "v1"
        # Not "Try again" (that would start a connection): Validate again on its page.
        assert ways_on(response) == (
            "next", f"/admin/alloy_oauth/connector/{connector.pk}/change/", None, False)


class TestSuccess:
    def test_connect(self, browser, connector, user, responses):
        responses.post(TOKEN_URL, json=TOKEN_BODY)
        received = []
        credential_connected.connect(lambda **kw: received.append(kw), weak=False,
                                     dispatch_uid="test_connect")
        try:
            params = start(browser, next="/done/")
            before = timezone.now()
            response = callback(browser, state=params["state"], code="the-code")
            after = timezone.now()
        finally:
            credential_connected.disconnect(dispatch_uid="test_connect")
        assert response.status_code == 303
        assert response["Location"] == "/done/"
        assert "no-store" in response["Cache-Control"]
        assert response["Referrer-Policy"] == "no-referrer"

        credential = Credential.objects.get()
        assert credential.user == user and credential.connector == connector
        assert credential.access_token == "access-token-value"
        assert credential.refresh_token == "refresh-token-value"
        assert credential.token_type == "Bearer"
        assert credential.scope == "read write"
        assert credential.status == Credential.Status.ACTIVE
        # expires_at counts from when the token request was sent.
        assert before <= credential.expires_at - timedelta(seconds=3600) <= after
        assert credential.next_refresh_at == credential.expires_at - timedelta(seconds=300)
        assert credential.token_response == {"token_type": "bearer", "expires_in": 3600,
                                             "scope": "read write"}
        assert [e.kind for e in credential.events.all()] == ["connected"]
        assert received == [{"signal": credential_connected, "sender": Credential,
                             "credential": credential, "created": True}]

        sent = responses.calls[0].request
        body = parse_qs(sent.body)
        pending = AuthorizationRequest.objects.get()
        assert body["code"] == ["the-code"]
        assert body["redirect_uri"] == [pending.redirect_uri]
        assert body["code_verifier"] == [pending.code_verifier]
        assert pending.consumed_at is not None

    def test_default_success_page(self, browser, connector, responses):
        responses.post(TOKEN_URL, json=TOKEN_BODY)
        params = start(browser)
        response = callback(browser, state=params["state"], code="the-code")
        assert response["Location"] == reverse("alloy_oauth:connected", args=["example"])
        page = browser.get(response["Location"])
        assert "Your Example account is connected" in page.content.decode()

    def test_the_success_page_is_only_for_the_session_that_connected(self, browser, connector,
                                                                     responses):
        responses.post(TOKEN_URL, json=TOKEN_BODY)
        url = reverse("alloy_oauth:connected", args=["example"])
        assert browser.get(url).status_code == 404  # before connecting
        callback(browser, state=start(browser)["state"], code="the-code")
        assert browser.get(url).status_code == 200
        assert Client().get(url).status_code == 404  # another browser
        credential = Credential.objects.get()
        credential.status = Credential.Status.REVOKED
        credential.save()
        assert browser.get(url).status_code == 404  # no longer connected
        credential.status = Credential.Status.ACTIVE
        credential.save()
        connector.is_active = False
        connector.save()
        assert browser.get(url).status_code == 404

    @pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example", "/\\evil.example",
                                          "javascript:alert(1)"])
    def test_no_open_redirect_after_success(self, browser, connector, responses, next_url):
        responses.post(TOKEN_URL, json=TOKEN_BODY)
        params = start(browser, next=next_url)
        response = callback(browser, state=params["state"], code="the-code")
        assert response.status_code == 303
        assert response["Location"] == reverse("alloy_oauth:connected", args=["example"])

    def test_defaults_when_provider_omits_fields(self, browser, connector, responses):
        connector.default_expires_in = 7200
        connector.refresh_lead_time = 60
        connector.save()
        responses.post(TOKEN_URL, json={"access_token": "at-only"})
        params = start(browser)
        callback(browser, state=params["state"], code="the-code")
        credential = Credential.objects.get()
        assert credential.refresh_token == ""
        assert credential.scope == "read write"  # what was requested
        assert credential.token_type == "Bearer"
        assert credential.next_refresh_at == credential.expires_at - timedelta(seconds=60)
        assert abs((credential.expires_at - timezone.now()).total_seconds() - 7200) < 5

    def test_unknown_expiry_is_not_scheduled(self, browser, connector, responses):
        responses.post(TOKEN_URL, json={"access_token": "at", "expires_in": "never"})
        params = start(browser)
        callback(browser, state=params["state"], code="the-code")
        credential = Credential.objects.get()
        assert credential.expires_at is None and credential.next_refresh_at is None

    def test_granted_scope_differs(self, browser, connector, responses):
        responses.post(TOKEN_URL, json={"access_token": "at", "scope": "read"})
        params = start(browser)
        callback(browser, state=params["state"], code="the-code")
        assert Credential.objects.get().scope == "read"

    def test_form_encoded_token_response(self, browser, connector, responses):
        responses.post(TOKEN_URL, body="access_token=gho_x&scope=repo%2Cuser&token_type=bearer",
                       content_type="application/x-www-form-urlencoded")
        params = start(browser)
        assert callback(browser, state=params["state"], code="c").status_code == 303
        credential = Credential.objects.get()
        assert (credential.access_token, credential.scope) == ("gho_x", "repo user")

    def test_reconnect_updates_the_same_credential(self, browser, connector, responses):
        responses.post(TOKEN_URL, json=TOKEN_BODY)
        params = start(browser)
        callback(browser, state=params["state"], code="c1")
        first = Credential.objects.get()
        Credential.objects.update(status=Credential.Status.REAUTH_REQUIRED, failure_count=3,
                                  last_error="invalid_grant")
        responses.replace(responses.POST, TOKEN_URL,
                          json={"access_token": "new-access", "token_type": "Bearer"})
        params = start(browser)
        callback(browser, state=params["state"], code="c2")
        credential = Credential.objects.get()
        assert credential.pk == first.pk
        assert credential.status == Credential.Status.ACTIVE
        assert credential.access_token == "new-access"
        # A new grant: the old grant's refresh token (maybe another account's) is not kept.
        assert credential.refresh_token == ""
        assert (credential.failure_count, credential.last_error) == (0, "")
        assert credential.version == first.version + 1
        assert [e.kind for e in credential.events.all()] == ["connected", "connected"]
        assert credential.events.first().detail.startswith("Reconnected.")

    def test_two_users_two_credentials(self, browser, connector, responses, django_user_model):
        responses.post(TOKEN_URL, json=TOKEN_BODY)
        params = start(browser)
        callback(browser, state=params["state"], code="c1")
        other = Client()
        other.force_login(django_user_model.objects.create_user("other"))
        params = start(other)
        callback(other, state=params["state"], code="c2")
        assert Credential.objects.count() == 2


@pytest.mark.database_server
@pytest.mark.django_db(transaction=True)
def test_simultaneous_callbacks_exchange_the_code_once(
    client, django_user_model, make_connector, monkeypatch
):
    """Two requests with one state race on PostgreSQL: both pass every check before either
    consumes the state; one exchanges the code, the other loses."""
    import responses as responses_lib

    user = django_user_model.objects.create_user("racer")
    client.force_login(user)
    make_connector(slug="example")
    params = start(client)
    session = client.session
    barrier = threading.Barrier(2)
    checked = threading.Barrier(2, timeout=10)
    real_binding = tickets.browser_binding

    def binding_then_wait_for_the_other(session, *, create):
        value = real_binding(session, create=create)
        checked.wait()  # the last check before the UPDATE: both requests are here now
        return value

    monkeypatch.setattr(tickets, "browser_binding", binding_then_wait_for_the_other)
    outcomes: list[str] = []

    def slow_token(request):
        threading.Event().wait(0.3)
        return 200, {"Content-Type": "application/json"}, '{"access_token": "at"}'

    from django.http import QueryDict

    def attempt() -> None:
        barrier.wait()
        try:
            credential_store.store_credential(authorization.complete(
                QueryDict(urlencode({"state": params["state"], "code": "c"})), session))
            outcomes.append("connected")
        except authorization.AuthorizationFailed as exc:
            outcomes.append(exc.reason)
        finally:
            connection.close()

    with responses_lib.RequestsMock() as mock:
        mock.add_callback(responses_lib.POST, TOKEN_URL, callback=slow_token)
        threads = [threading.Thread(target=attempt) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(mock.calls) == 1
    assert sorted(outcomes) == ["connected", "used_state"]
    assert Credential.objects.count() == 1
