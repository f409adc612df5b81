"""Hostile or broken input from browsers and providers: a clear 4xx, nothing stored, no leak."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from alloy_oauth import authorization, credential_store, protocol
from alloy_oauth.models import AuthorizationRequest, Credential

from tests.support.example_provider import TOKEN_URL
from tests.support.flow import authorize, callback, start


@pytest.mark.parametrize("stub", [
    dict(json={"access_token": "at", "scope": 5}),
    dict(json={"access_token": "at", "scope": True}),
    dict(json={"access_token": "at", "scope": ["read", 7]}),
    dict(body=b"[" * 100_000, content_type="application/json"),
    dict(body=b"{" * 100_000, content_type="application/json"),
    dict(json={}, status=503, headers={"Retry-After": "\u00b2"}),
    dict(json={}, status=503, headers={"Retry-After": "9" * 5000}),
    dict(json={"access_token": "at", "token_type": "\u0000"}),
    dict(json={"access_token": "at", "token_type": "Bearer\r\nX-Evil: 1"}),
    dict(json={"access_token": "at\r\nX-Evil: 1"}),
    dict(json={"access_token": "a t"}),
    dict(json={"access_token": "at", "expires_in": "1e400"}),
    dict(json={"access_token": "at", "expires_in": float("nan")}),
    dict(json={"error": {"nested": "object"}}, status=400),
    dict(body=b"\xff\xfe\x00garbage", content_type="application/json"),
    # A NUL cannot be stored in a PostgreSQL text column: it must not reach one.
    dict(json={"error": "invalid_request", "error_description": "no\u0000pe"}, status=400),
    dict(json={"error": "invalid\u0000grant"}, status=400),
    dict(json={"access_token": "at", "scope": "read\u0000write"}),
    dict(json={"access_token": "at", "refresh_token": "r\u0000t"}),
])
def test_any_provider_answer_gives_a_clear_page(browser, connector, responses, stub):
    responses.post(TOKEN_URL, **stub)
    params = start(browser)
    browser.raise_request_exception = False
    response = callback(browser, state=params["state"], code="the-code-value")
    assert response.status_code in (303, 400), response.status_code
    if response.status_code == 400:
        assert response.context["reason"] == "token_error"
        assert not Credential.objects.exists()
    else:  # accepted: whatever was stored is sane
        credential = Credential.objects.get()
        assert credential.token_type.isprintable() and credential.scope.isprintable()


@pytest.mark.parametrize("body", [
    b"[" * 100_000, b'{"access_token": "a", "scope": 5}', b'{"scope": {"a": 1}}',
    "{\"access_token\": \"\u00e9\u0000\"}".encode(), b"access_token=%00", b"\x00" * 1000,
    b'{"access_token": "a", "token_type": null}', b'{"access_token": "a", "expires_in": []}',
])
def test_the_parser_only_ever_raises_oauth_errors(body):
    from datetime import datetime, timezone

    for content_type in ("application/json", "application/x-www-form-urlencoded", "", "text/html"):
        for status in (200, 400, 401, 429, 503):
            try:
                protocol.parse_token_response(status, content_type, body,
                                              issued_at=datetime.now(timezone.utc),
                                              retry_after="\u0661\u0662")
            except protocol.OAuthError:
                pass


@pytest.mark.parametrize("query", [
    "state=%ff%fe&code=%00", "state=%ED%A0%80", "state&code", "state=a&state",
    "error=x&state=%00", "state=" + "a" * 5000, "%ff=%ff", "state=a;code=b", "code=x",
    "state=" + "%00" * 100, "state[]=a", "",
])
def test_odd_callback_queries(browser, connector, query, responses):
    browser.raise_request_exception = False
    response = browser.get("/oauth/callback/?" + query)
    assert response.status_code == 400
    assert len(responses.calls) == 0 and not Credential.objects.exists()


@pytest.mark.parametrize("next_url", [
    "/a\x00b", "/a\r\nSet-Cookie: x=y", "/ok\u200b", "%ff%fe", "/\t/evil.example",
    "https:evil.example", "/%09/evil.example",
])
def test_odd_next_values_are_dropped_not_stored(browser, connector, next_url):
    browser.raise_request_exception = False
    response = authorize(browser, next=next_url)
    assert response.status_code == 302
    stored = AuthorizationRequest.objects.get().next_url
    assert stored == "" or (
        stored.isprintable() and url_has_allowed_host_and_scheme(stored, {"testserver"}))


def test_next_must_be_https_behind_an_https_proxy(browser, connector, settings):
    settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": "https://app.example.com"}
    start(browser, next="http://testserver/settings/")
    assert AuthorizationRequest.objects.get().next_url == ""


def test_error_description_is_scrubbed_before_it_is_cut():
    code = "secret-code-0123456789abcdef"
    from datetime import datetime, timezone

    with pytest.raises(protocol.OAuthError) as info:
        protocol.parse_token_response(
            400, "application/json",
            ('{"error": "invalid_grant", "error_description": "%s%s"}'
             % ("x" * (protocol.MAX_DESCRIPTION_CHARS - 20), code)).encode(),
            issued_at=datetime.now(timezone.utc), secret_values=[code])
    assert code[:15] not in str(info.value)


def test_an_authorization_needs_exactly_one_owner(client, connector):
    with pytest.raises(ValueError, match="exactly one owner"):
        authorization.start(connector, session=client.session, redirect_uri="https://x/cb")


def test_405_answers_carry_the_headers_too(browser, connector):
    for method, url, policy in (
        (browser.post, reverse("alloy_oauth:callback"), "no-referrer"),
        (browser.put, reverse("alloy_oauth:authorize", args=["example"]), "same-origin"),
    ):
        response = method(url)
        assert response.status_code == 405
        assert "no-store" in response["Cache-Control"]
        assert response["Referrer-Policy"] == policy


class TestErrorReports:
    """Should the callback ever fail unexpectedly in production, Django's error report (the
    e-mail to ADMINS, with every frame's local variables) shows neither the code and state
    nor any secret. (With DEBUG on, Django's debug page deliberately shows everything.)"""

    @pytest.fixture
    def crash_after_the_exchange(self, monkeypatch, responses):
        responses.post(TOKEN_URL, json={"access_token": "access-token-SECRET",
                                        "refresh_token": "refresh-token-SECRET"})

        def crash(pending, token, metadata):
            raise RuntimeError("unexpected")

        monkeypatch.setattr(credential_store, "_store_credential", crash)

    def secrets(self, params):
        verifier = AuthorizationRequest.objects.get().code_verifier
        return ["the-code-SECRET", params["state"], verifier, "client-secret-value",
                "access-token-SECRET", "refresh-token-SECRET"]

    def test_mail_to_admins(self, browser, connector, crash_after_the_exchange, admins):
        params = start(browser)
        browser.raise_request_exception = False
        assert callback(browser, state=params["state"], code="the-code-SECRET").status_code == 500
        [report] = mail.outbox
        assert "RuntimeError" in report.body
        for secret in self.secrets(params):
            assert secret not in report.body, secret

    def test_full_report_with_local_variables(self, browser, connector,
                                              crash_after_the_exchange):
        """The HTML report (AdminEmailHandler(include_html=True), error trackers) lists every
        frame's local variables: ours are marked sensitive."""
        import sys

        from django.core.signals import got_request_exception
        from django.views.debug import ExceptionReporter

        reports = []

        def report(sender, request, **kwargs):
            reports.append(ExceptionReporter(request, *sys.exc_info(), is_email=True)
                           .get_traceback_html())

        got_request_exception.connect(report, dispatch_uid="full-report")
        try:
            params = start(browser)
            browser.raise_request_exception = False
            callback(browser, state=params["state"], code="the-code-SECRET")
        finally:
            got_request_exception.disconnect(dispatch_uid="full-report")
        [html] = reports
        assert "Local Vars" in html and "RuntimeError" in html
        for secret in self.secrets(params):
            assert secret not in html, secret


def _due_credential(connector, **fields):
    from datetime import timedelta

    from django.utils import timezone

    values = dict(connector=connector, external_id="x", access_token="old-access",
                  refresh_token="old-refresh-token", expires_at=timezone.now(),
                  next_refresh_at=timezone.now() - timedelta(seconds=1))
    values.update(fields)
    return Credential.objects.create(**values)


def _everything_said(caplog, credential) -> str:
    """Every log record (message, arguments, traceback) and what the credential shows."""
    import logging

    text = "\n".join(
        record.getMessage() + (logging.Formatter().formatException(record.exc_info)
                               if record.exc_info else "")
        for record in caplog.records)
    if credential is not None:
        credential.refresh_from_db()
        text += "\n" + credential.last_error + "\n" + "\n".join(
            credential.events.values_list("detail", flat=True))
    return text


class TestUnencodableTokens:
    """A refresh token with a lone surrogate ("RT-\\ud800-x", valid JSON) cannot be encrypted
    (UTF-8 refuses it): a 500 at the callback with the state used up; in the worker the same
    request every lease period with no backoff and the token printed in Celery's ERROR line.
    It is a malformed answer, classified before anything tries to store or print it."""

    BODY = b'{"access_token": "AT-SECRET-1", "refresh_token": "RT-SECRET-\\ud800-x"}'

    def test_the_parser_calls_it_malformed_without_quoting_it(self):
        from datetime import datetime, timezone

        with pytest.raises(protocol.OAuthError) as info:
            protocol.parse_token_response(200, "application/json", self.BODY,
                                          issued_at=datetime.now(timezone.utc))
        assert info.value.kind is protocol.ErrorKind.MALFORMED
        assert "SECRET" not in str(info.value) and "SECRET" not in repr(info.value)

    def test_at_the_callback_a_clear_page_and_nothing_stored(self, browser, connector, responses,
                                                             caplog):
        caplog.set_level("DEBUG")
        responses.post(TOKEN_URL, body=self.BODY, content_type="application/json")
        params = start(browser)
        browser.raise_request_exception = False
        response = callback(browser, state=params["state"], code="the-code-value")
        assert response.status_code == 400 and response.context["reason"] == "token_error"
        assert "refresh_token contains characters" in response.content.decode()
        assert not Credential.objects.exists()
        assert "SECRET" not in _everything_said(caplog, None)

    def test_at_a_refresh_a_failure_with_backoff(self, connector, responses, caplog):
        from django.utils import timezone

        from alloy_oauth import refresh
        from alloy_oauth.refresh.single import refresh_one

        caplog.set_level("DEBUG")
        credential = _due_credential(connector)
        responses.post(TOKEN_URL, body=self.BODY, content_type="application/json")
        outcome = refresh_one(credential.pk)
        assert outcome.result is refresh.Result.RETRY
        credential.refresh_from_db()
        assert credential.status == "active" and credential.failure_count == 1
        assert credential.next_refresh_at > timezone.now()
        assert credential.refresh_token == "old-refresh-token"
        assert "SECRET" not in _everything_said(caplog, credential)

    @pytest.mark.parametrize("refresh_token", ["RT-\u0000", "RT-\u001b[2J", "RT-\u2028"])
    def test_control_characters_too(self, refresh_token):
        import json
        from datetime import datetime, timezone

        body = json.dumps({"access_token": "at", "refresh_token": refresh_token}).encode()
        with pytest.raises(protocol.OAuthError) as info:
            protocol.parse_token_response(200, "application/json", body,
                                          issued_at=datetime.now(timezone.utc))
        assert info.value.kind is protocol.ErrorKind.MALFORMED


class TestBasicCredentialsAreScrubbed:
    """A provider or proxy that echoes the request's Authorization header put
    "Basic <base64 of client_id:secret>" into last_error, the event and the WARNING line."""

    @staticmethod
    def echo(request):
        import json

        return 400, {}, json.dumps({
            "error": "invalid_request",
            "error_description": f"bad header {request.headers['Authorization']} "
                                 f"payload {request.headers['Authorization'][6:].rstrip('=')}",
        })

    def forms(self, connector) -> list[str]:
        import base64

        header = protocol.basic_credentials(connector.client_id, connector.client_secret)
        return [header, header[6:], header[6:].rstrip("="),
                base64.b64decode(header[6:]).decode()]

    def test_in_the_error(self, connector, responses):
        responses.add_callback("POST", TOKEN_URL, callback=self.echo)
        with pytest.raises(protocol.OAuthError) as info:
            protocol.refresh_access_token(connector.oauth_client(), refresh_token="rt-value")
        assert str(info.value) == (
            "The provider answered invalid_request: bad header [redacted] payload [redacted]")

    def test_in_last_error_the_event_and_the_log(self, connector, responses, caplog):
        from alloy_oauth.refresh.single import refresh_one

        caplog.set_level("DEBUG")
        credential = _due_credential(connector)
        responses.add_callback("POST", TOKEN_URL, callback=self.echo)
        refresh_one(credential.pk)
        said = _everything_said(caplog, credential)
        assert "bad header [redacted]" in said
        for form in self.forms(connector):
            assert form not in said, form

    def test_the_form_encoded_pair_and_at_revocation(self, connector, responses):
        pair = self.forms(connector)[-1]
        responses.post("https://provider.example/revoke", status=400, json={
            "error": "invalid_request", "error_description": f"cannot parse {pair}"})
        with pytest.raises(protocol.OAuthError) as info:
            protocol.revoke_token(connector.oauth_client(), "https://provider.example/revoke",
                                  token="the-token", token_type_hint="refresh_token")
        assert pair not in str(info.value) and "[redacted]" in str(info.value)
