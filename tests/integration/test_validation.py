"""Validate credential's requests to the provider: the test request goes through the bounded
transport, and the token the round trip received is revoked when the connector can."""

from __future__ import annotations

import time
import tracemalloc
import zlib
from datetime import datetime, timezone
from urllib.parse import parse_qs

import pytest
import requests

from alloy_oauth import protocol, validation
from alloy_oauth.models import Connector, Credential

from tests.support.connector_page import press_validate
from tests.support.raw_http import raw_server, response, trickle

REVOCATION_URL = "https://provider.example/oauth/revoke"


def token(**fields: object) -> protocol.TokenResponse:
    values = dict(access_token="validation-access", token_type="Bearer",
                  issued_at=datetime.now(timezone.utc), refresh_token="validation-refresh",
                  expires_in=3600)
    values.update(fields)
    return protocol.TokenResponse(**values)  # type: ignore[arg-type]


@pytest.mark.django_db
class TestTheTestRequest:
    """It was a plain requests.get: no deadline for a trickled answer, and a compressed body
    inflated whole into memory."""

    def test_a_trickled_answer_is_cut_at_the_deadline(self, connector, settings):
        settings.ALLOY_OAUTH = {"HTTP_TIMEOUT": 1}
        with raw_server(trickle(response(b"{}")[:-2], every=0.05)) as url:
            connector.api_base_url, connector.test_request_path = url, "/me"
            connector.save()  # (the outcome of unsaved values is not stored)
            started = time.monotonic()
            report = validation.record_round_trip(connector, token(), ["read"])
            elapsed = time.monotonic() - started
        assert elapsed < 1 + 1
        connector.refresh_from_db()
        assert connector.validated_at is None
        assert connector.validation_error == (
            f"The test request GET {url}/me failed: The test request endpoint at 127.0.0.1 "
            "did not answer within 1 seconds.")
        assert report["test_request"]["error"].endswith("did not answer within 1 seconds.")

    def test_a_compressed_body_is_not_inflated(self, connector, settings):
        """1 MiB of deflate that expands to 1 GiB took the web process from 111 MB to 2.2 GB;
        the test request needs the status only."""
        settings.ALLOY_OAUTH = {"HTTP_TIMEOUT": 5}
        bomb = zlib.compress(b"\0" * (64 * 1024 * 1024), 1)
        with raw_server(lambda conn: conn.sendall(
                response(bomb, "Content-Encoding: deflate"))) as url:
            connector.api_base_url, connector.test_request_path = url, "/me"
            tracemalloc.start()
            try:
                report = validation.record_round_trip(connector, token(), ["read"])
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        assert report["test_request"]["status"] == 200
        assert peak < 4 * 1024 * 1024, peak

    def test_redirects_are_not_followed(self, connector, responses):
        connector.api_base_url, connector.test_request_path = "https://api.example", "/me"
        responses.get("https://api.example/me", status=302,
                      headers={"Location": "https://elsewhere.example/"})
        report = validation.record_round_trip(connector, token(), ["read"])
        assert report["test_request"] == {"url": "https://api.example/me", "ok": True,
                                          "status": 302}
        assert [call.request.url for call in responses.calls] == ["https://api.example/me"]


@pytest.mark.django_db
class TestTheTokenIsRevoked:
    """docs/admin.md says the round trip's token is discarded: with a revocation URL it is
    revoked at the provider too (two validations used to leave two live grants)."""

    def test_the_refresh_token_is_revoked(self, connector, responses):
        connector.revocation_url = REVOCATION_URL
        connector.save()  # (the outcome of unsaved values is not stored)
        responses.post(REVOCATION_URL)
        report = validation.record_round_trip(connector, token(), ["read"])
        [call] = responses.calls
        assert parse_qs(call.request.body) == {"token": ["validation-refresh"],
                                               "token_type_hint": ["refresh_token"]}
        assert report["revoked"] is True
        assert report["revocation"] == "The token was revoked at the provider."
        assert "warning" not in report
        connector.refresh_from_db()
        assert connector.validated_at is not None
        assert connector.validation_report["revoked"] is True

    def test_the_access_token_when_there_is_no_refresh_token(self, connector, responses):
        connector.revocation_url = REVOCATION_URL
        responses.post(REVOCATION_URL)
        validation.record_round_trip(connector, token(refresh_token=None), ["read"])
        assert parse_qs(responses.calls[0].request.body) == {
            "token": ["validation-access"], "token_type_hint": ["access_token"]}

    def test_a_failed_revocation_is_reported_not_fatal(self, connector, responses):
        connector.revocation_url = REVOCATION_URL
        responses.post(REVOCATION_URL, status=503)
        report = validation.record_round_trip(connector, token(), ["read"])
        assert report["revoked"] is False
        assert report["revocation"] == ("The token could not be revoked: The revocation "
                                        "endpoint answered HTTP 503.")
        assert report["revocation"] in report["warning"]
        connector.refresh_from_db()
        assert connector.validated_at is not None  # the configuration works

    def test_without_a_revocation_url_the_report_says_so(self, connector, responses):
        report = validation.record_round_trip(connector, token(), ["read"])
        assert len(responses.calls) == 0
        assert report["revoked"] is None
        assert "no revocation URL" in report["revocation"]


@pytest.mark.django_db(transaction=True)
def test_two_validations_leave_no_live_grant_at_a_real_provider(oauth_provider, admin_client,
                                                                settings, monkeypatch):
    settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": "http://127.0.0.1"}
    connector = Connector.objects.create(
        name="Live", slug="live", auth_url=oauth_provider.auth_url,
        token_url=oauth_provider.token_url, revocation_url=oauth_provider.revocation_url,
        client_id=oauth_provider.client_id, client_secret=oauth_provider.client_secret,
        scope="read")
    received: list[protocol.TokenResponse] = []
    record = validation.record_round_trip

    def spy(connector, token, requested, **kwargs):
        received.append(token)
        return record(connector, token, requested, **kwargs)

    monkeypatch.setattr(validation, "record_round_trip", spy)
    browser = requests.Session()
    oauth_provider.login(browser)
    for _ in range(2):
        pressed = press_validate(admin_client, connector)
        assert pressed["ok"], pressed
        back = oauth_provider.consent(browser, pressed["authorize_url"])
        answer = admin_client.get("/oauth/callback/?" + back.split("?", 1)[1])
        assert answer.context["result"]["status"] == "validated"
    assert len(received) == 2 and all(t.refresh_token for t in received)
    assert not Credential.objects.exists()
    for grant in received:
        with pytest.raises(protocol.OAuthError) as info:
            protocol.refresh_access_token(connector.oauth_client(),
                                          refresh_token=grant.refresh_token)
        assert info.value.kind is protocol.ErrorKind.REAUTHORIZE
        assert oauth_provider.call_api(grant.access_token).status_code == 401
    connector.refresh_from_db()
    assert connector.validation_report["revoked"] is True
