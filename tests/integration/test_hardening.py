"""Mix-up defence (RFC 9207), keep-alive refresh, refresh-token expiry, scope drift."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alloy_oauth import protocol, refresh
from alloy_oauth.models import Connector, Credential
from alloy_oauth.refresh.single import refresh_one

from tests.support.connector_page import form
from tests.support.example_provider import TOKEN_URL
from tests.support.flow import callback, start
from tests.support.tickets import authorize_url

NOW = datetime.fromisoformat("2026-11-29T12:00:00+00:00")


class TestIssuer:
    """RFC 9700 §4.4: an answer naming another issuer is refused before any code exchange."""

    def test_matching_iss(self, browser, connector, responses):
        connector.issuer = "https://provider.example"
        connector.save()
        responses.post(TOKEN_URL, json={"access_token": "at"})
        params = start(browser)
        response = callback(browser, state=params["state"], code="c",
                            iss="https://provider.example")
        assert response.status_code == 303

    def test_other_iss_is_refused(self, browser, connector, responses):
        connector.issuer = "https://provider.example"
        connector.save()
        params = start(browser)
        response = callback(browser, state=params["state"], code="c",
                            iss="https://attacker.example")
        assert response.status_code == 400 and response.context["reason"] == "issuer_mismatch"
        assert len(responses.calls) == 0 and not Credential.objects.exists()

    def test_missing_iss_when_the_provider_always_sends_it(self, browser, connector, responses):
        connector.issuer = "https://provider.example"
        connector.require_issuer = True
        connector.save()
        params = start(browser)
        response = callback(browser, state=params["state"], code="c")
        assert response.status_code == 400 and response.context["reason"] == "missing_issuer"
        assert len(responses.calls) == 0

    def test_iss_ignored_without_a_configured_issuer(self, browser, connector, responses):
        responses.post(TOKEN_URL, json={"access_token": "at"})
        params = start(browser)
        assert callback(browser, state=params["state"], code="c",
                        iss="https://whoever.example").status_code == 303

    def test_the_form_wants_an_issuer_when_it_is_required(self, db):
        f = form(require_issuer="on", issuer="")
        assert not f.is_valid() and "issuer" in f.errors


@pytest.mark.django_db(transaction=True)
class TestIssuerAgainstLiveProviders:
    def connect(self, provider, django_user_model, settings, **connector_fields):
        settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": "http://127.0.0.1"}
        Connector.objects.update_or_create(slug="live", defaults=dict(
            validated_at=timezone.now(),  # live: offered to end users
            name="Live", auth_url=provider.auth_url, token_url=provider.token_url,
            client_id=provider.client_id, client_secret=provider.client_secret, scope="read",
            **connector_fields))
        site = Client()
        site.force_login(django_user_model.objects.create_user(
            f"u{django_user_model.objects.count()}"))
        browser = requests.Session()
        provider.login(browser)
        back = provider.consent(browser, site.get(authorize_url(site, "live"))["Location"])
        return parse_qs(urlsplit(back).query), site.get(f"/oauth/callback/?{urlsplit(back).query}")

    def test_a_provider_that_sends_iss(self, issuing_provider, django_user_model, settings):
        query, response = self.connect(issuing_provider, django_user_model, settings,
                                       issuer="https://issuer.example/", require_issuer=True)
        assert query["iss"] == ["https://issuer.example/"]
        assert response.status_code == 303 and Credential.objects.count() == 1

    def test_a_provider_that_sends_another_iss(self, issuing_provider, django_user_model,
                                               settings):
        _, response = self.connect(issuing_provider, django_user_model, settings,
                                   issuer="https://the-real-one.example/")
        assert response.status_code == 400 and response.context["reason"] == "issuer_mismatch"
        assert not Credential.objects.exists()

    def test_a_provider_that_does_not_send_iss(self, oauth_provider, django_user_model, settings):
        query, response = self.connect(oauth_provider, django_user_model, settings,
                                       issuer="https://issuer.example/", require_issuer=True)
        assert "iss" not in query
        assert response.status_code == 400 and response.context["reason"] == "missing_issuer"
        # An operator who knows the provider does not send it:
        _, response = self.connect(oauth_provider, django_user_model, settings,
                                   issuer="https://issuer.example/", require_issuer=False)
        assert response.status_code == 303


class TestKeepAliveAndRefreshTokenExpiry:
    ISSUED = timezone.now()

    def token(self, **fields):
        return protocol.TokenResponse(access_token="at", token_type="Bearer",
                                      issued_at=self.ISSUED, **fields)

    @pytest.mark.django_db
    def test_keepalive_for_tokens_that_never_expire(self, connector):
        connector.keepalive_interval = 7 * 24 * 3600
        values = connector.token_values(self.token(refresh_token="r"), requested_scopes=[])
        assert values["expires_at"] is None
        assert values["next_refresh_at"] == self.ISSUED + timedelta(days=7)

    @pytest.mark.django_db
    def test_keepalive_earlier_than_expiry_wins(self, connector):
        connector.keepalive_interval = 60
        values = connector.token_values(self.token(expires_in=3600), requested_scopes=[])
        assert values["next_refresh_at"] == self.ISSUED + timedelta(seconds=60)

    @pytest.mark.django_db
    def test_keepalive_refresh_is_done_by_the_sweep(self, connector, responses):
        connector.keepalive_interval = 3600
        connector.save()
        credential = Credential.objects.create(
            connector=connector, external_id="idle", access_token="a", refresh_token="r",
            expires_at=None, next_refresh_at=timezone.now() - timedelta(seconds=1))
        responses.post(TOKEN_URL, json={"access_token": "b", "refresh_token": "r2"})
        assert refresh_one(credential.pk).result is refresh.Result.REFRESHED
        credential.refresh_from_db()
        assert credential.access_token == "b" and credential.expires_at is None
        assert abs((credential.next_refresh_at - timezone.now()).total_seconds() - 3600) < 5

    @pytest.mark.parametrize("name", ["refresh_token_expires_in", "refresh_expires_in"])
    def test_refresh_token_lifetime_is_read(self, name):
        token = protocol.parse_token_response(
            200, "application/json",
            ('{"access_token": "a", "refresh_token": "r", "%s": "15897600"}' % name).encode(),
            issued_at=self.ISSUED)
        assert token.refresh_token_expires_in == 15897600

    @pytest.mark.django_db
    def test_refresh_token_expiry_is_stored_and_flagged(self, browser, connector, responses,
                                                        user, admin_client):
        responses.post(TOKEN_URL, json={"access_token": "at", "refresh_token": "rt",
                                        "expires_in": 28800, "refresh_token_expires_in": 86400})
        params = start(browser)
        callback(browser, state=params["state"], code="c")
        credential = Credential.objects.get()
        assert abs((credential.refresh_token_expires_at - timezone.now()).total_seconds()
                   - 86400) < 5
        assert list(Credential.objects.refresh_token_expiring()) == [credential]
        assert list(Credential.objects.refresh_token_expiring(timedelta(hours=1))) == []
        page = browser.get(reverse("alloy_oauth:connections")).content.decode()
        assert "Reconnect before" in page
        listing = admin_client.get(reverse("admin:alloy_oauth_credential_changelist"))
        assert "reconnect by" in listing.content.decode()

    @pytest.mark.django_db
    def test_a_refresh_without_a_new_refresh_token_keeps_its_expiry(self, connector, responses):
        expiry = timezone.now() + timedelta(days=30)
        credential = Credential.objects.create(
            connector=connector, external_id="x", access_token="a", refresh_token="r",
            refresh_token_expires_at=expiry, next_refresh_at=timezone.now())
        responses.post(TOKEN_URL, json={"access_token": "b", "expires_in": 60})
        refresh_one(credential.pk)
        credential.refresh_from_db()
        assert credential.refresh_token_expires_at == expiry


class TestScopeDrift:
    @pytest.mark.django_db
    def test_recorded_on_the_credential_event_admin_and_connections(
        self, browser, connector, responses, admin_client
    ):
        responses.post(TOKEN_URL, json={"access_token": "at", "scope": "read profile"})
        params = start(browser)  # requests "read write"
        callback(browser, state=params["state"], code="c")
        credential = Credential.objects.get()
        assert (credential.requested_scope, credential.scope) == ("read write", "read profile")
        assert credential.scopes_missing == ["write"] and credential.scopes_extra == ["profile"]
        assert "Not as requested: missing write; extra profile." in credential.events.get().detail
        detail = admin_client.get(reverse("admin:alloy_oauth_credential_change",
                                          args=[credential.pk])).content.decode()
        assert "missing: write; extra: profile" in detail
        page = browser.get(reverse("alloy_oauth:connections")).content.decode()
        assert "Not granted: write. Reconnect to grant them." in page

    @pytest.mark.django_db
    def test_no_drift_when_granted_as_requested(self, browser, connector, responses):
        responses.post(TOKEN_URL, json={"access_token": "at"})
        params = start(browser)
        callback(browser, state=params["state"], code="c")
        credential = Credential.objects.get()
        assert credential.scopes_missing == [] and credential.scopes_extra == []
        assert "Not as requested" not in credential.events.get().detail


class TestNonsensicalExpiresIn:
    """An expires_in of -5, 1e308, NaN or Infinity at a refresh replaced the known expiry with
    none: the credential left the refresh schedule and get_access_token() returned an expired
    token as valid for ever. Such a lifetime is not "unknown": it falls back to the
    connector's default_expires_in, else to a short default."""

    NONSENSE = [-5, "-5", 0, 1e308, float("nan"), float("inf"), "-Infinity", 10**10]

    @pytest.mark.parametrize("value", NONSENSE)
    def test_parsed_as_nonsense_not_as_absent(self, value):
        import json

        token = protocol.parse_token_response(
            200, "application/json",
            json.dumps({"access_token": "a", "expires_in": value}).encode(), issued_at=NOW)
        assert token.expires_in is None and token.invalid_expires_in
        assert token.expires_in_note.startswith("The provider's expires_in (")

    @pytest.mark.parametrize("value", [None, "", "never", [3600], True])
    def test_not_a_number_still_means_not_said(self, value):
        import json

        body = {"access_token": "a"} if value is None else {"access_token": "a",
                                                            "expires_in": value}
        token = protocol.parse_token_response(200, "application/json",
                                              json.dumps(body).encode(), issued_at=NOW)
        assert token.expires_in is None and token.invalid_expires_in is None
        assert token.expires_in_note == ""

    @pytest.mark.parametrize("value, shown", [(-5, "-5"), (1e308, "1e+308"), ("NaN", "nan"),
                                              ("Infinity", "inf"), (2**1100, "a huge number")])
    def test_the_note_quotes_numbers_only(self, value, shown):
        import json

        token = protocol.parse_token_response(
            200, "application/json",
            json.dumps({"access_token": "a", "expires_in": value}).encode(), issued_at=NOW)
        assert token.invalid_expires_in == shown

    @pytest.mark.django_db
    @pytest.mark.parametrize("default, lifetime", [(None, protocol.FALLBACK_EXPIRES_IN),
                                                   (600, 600)])
    def test_the_credential_stays_on_the_schedule(self, connector, default, lifetime):
        connector.default_expires_in = default
        token = protocol.TokenResponse(access_token="a", token_type="Bearer", issued_at=NOW,
                                       invalid_expires_in="-5")
        values = connector.token_values(token, requested_scopes=[])
        assert values["expires_at"] == NOW + timedelta(seconds=lifetime)
        assert NOW < values["next_refresh_at"] < values["expires_at"]

    @pytest.mark.django_db
    @pytest.mark.parametrize("value", [-5, 1e308, float("nan"), float("inf")])
    def test_at_a_refresh(self, connector, responses, value):
        credential = Credential.objects.create(
            connector=connector, external_id="x", access_token="a", refresh_token="r",
            expires_at=timezone.now() + timedelta(seconds=60),
            next_refresh_at=timezone.now() - timedelta(seconds=1))
        responses.post(TOKEN_URL, json={"access_token": "b", "expires_in": value})
        assert refresh_one(credential.pk).result is refresh.Result.REFRESHED
        credential.refresh_from_db()
        lifetime = protocol.FALLBACK_EXPIRES_IN
        assert abs((credential.expires_at - timezone.now()).total_seconds() - lifetime) < 5
        assert credential.next_refresh_at is not None
        assert credential.next_refresh_at < credential.expires_at

    @pytest.mark.django_db
    def test_an_expired_token_is_not_valid_for_ever(self, connector, responses):
        """After the nonsense, the token is valid for the assumed lifetime only: asked for a
        token valid longer than that, get_access_token() refreshes."""
        credential = Credential.objects.create(
            connector=connector, external_id="x", access_token="a", refresh_token="r",
            next_refresh_at=timezone.now() - timedelta(seconds=1))
        responses.post(TOKEN_URL, json={"access_token": "b", "expires_in": -5})
        refresh_one(credential.pk)
        responses.post(TOKEN_URL, json={"access_token": "c", "expires_in": 3600})
        assert Credential.objects.get(pk=credential.pk).get_access_token(
            min_valid=protocol.FALLBACK_EXPIRES_IN + 60) == "c"

    @pytest.mark.django_db
    def test_the_refresh_event_says_so(self, connector, responses):
        credential = Credential.objects.create(
            connector=connector, external_id="x", access_token="a", refresh_token="r",
            next_refresh_at=timezone.now() - timedelta(seconds=1))
        responses.post(TOKEN_URL, json={"access_token": "b", "expires_in": -5})
        refresh_one(credential.pk)
        assert "The provider's expires_in (-5) is not a lifetime" in (
            credential.events.get(kind="refreshed").detail)

    @pytest.mark.django_db
    def test_the_connected_event_says_so(self, browser, connector, responses):
        responses.post(TOKEN_URL, json={"access_token": "at", "expires_in": "Infinity"})
        params = start(browser)
        callback(browser, state=params["state"], code="c")
        credential = Credential.objects.get()
        assert credential.expires_at is not None
        assert "The provider's expires_in (inf) is not a lifetime" in (
            credential.events.get().detail)
