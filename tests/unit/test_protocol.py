"""The protocol layer on its own: URLs, PKCE, client authentication, token responses."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, parse_qsl, unquote_plus, urlsplit

import pytest
import requests

from alloy_oauth import protocol
from alloy_oauth.protocol import ErrorKind, OAuthError

from tests.support.example_provider import TOKEN_URL
from tests.support.raw_http import read_http_request

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
CLIENT = protocol.ClientConfig(token_url=TOKEN_URL, client_id="client-id",
                               client_secret="client-secret-value")


def parse(body: object, status: int = 200, content_type: str = "application/json",
          **kwargs: object) -> protocol.TokenResponse:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return protocol.parse_token_response(status, content_type, body, issued_at=NOW, **kwargs)


def parse_error(*args: object, **kwargs: object) -> OAuthError:
    with pytest.raises(OAuthError) as info:
        parse(*args, **kwargs)
    return info.value


class TestScopes:
    @pytest.mark.parametrize("text, expected", [
        ("read write", ["read", "write"]),
        ("read,write", ["read", "write"]),
        ("read, write  admin", ["read", "write", "admin"]),
        (" ,read,,write, ", ["read", "write"]),
        ("read read write", ["read", "write"]),
        ("https://www.googleapis.com/auth/drive openid", ["https://www.googleapis.com/auth/drive", "openid"]),
        ("", []),
        (", ,", []),
        (None, []),
        (["a", "b", "a"], ["a", "b"]),
    ])
    def test_parse_scopes(self, text, expected):
        assert protocol.parse_scopes(text) == expected


class TestStateAndPkce:
    def test_state_has_at_least_128_bits_and_is_random(self):
        states = {protocol.new_state() for _ in range(100)}
        assert len(states) == 100
        assert all(len(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))) >= 16 for s in states)

    def test_pkce_pair_follows_rfc7636(self):
        verifier, challenge = protocol.new_pkce_pair()
        assert 43 <= len(verifier) <= 128
        assert set(verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        assert challenge == expected.decode()

    def test_rfc7636_appendix_b_example(self):
        verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        assert protocol.pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

    def test_state_hash_is_not_the_state(self):
        state = protocol.new_state()
        assert protocol.hash_state(state) != state
        assert len(protocol.hash_state(state)) == 64


class TestAuthorizationUrl:
    def build(self, **kwargs):
        values = dict(client_id="cid", redirect_uri="https://app.example/oauth/callback/",
                      state="the-state", scopes=["read", "write"], code_challenge="chal")
        values.update(kwargs)
        url = protocol.authorization_url(values.pop("auth_url", "https://p.example/auth"), **values)
        return url, dict(parse_qsl(urlsplit(url).query))

    def test_all_parameters(self):
        url, params = self.build()
        assert url.startswith("https://p.example/auth?")
        assert params == {
            "response_type": "code", "client_id": "cid",
            "redirect_uri": "https://app.example/oauth/callback/", "scope": "read write",
            "state": "the-state", "code_challenge": "chal", "code_challenge_method": "S256",
        }
        assert "scope=read%20write" in url

    def test_comma_separator(self):
        _, params = self.build(scope_separator=",")
        assert params["scope"] == "read,write"

    def test_no_scope_no_pkce(self):
        _, params = self.build(scopes=[], code_challenge=None)
        assert "scope" not in params and "code_challenge" not in params

    def test_extra_params_and_existing_query_kept_but_never_override(self):
        url, _ = self.build(
            auth_url="https://p.example/auth?tenant=abc&state=evil",
            extra_params={"access_type": "offline", "prompt": "consent", "state": "evil2",
                          "redirect_uri": "https://evil.example/", "include_granted_scopes": True},
        )
        params = parse_qs(urlsplit(url).query)
        assert params["tenant"] == ["abc"]
        assert params["state"] == ["the-state"]
        assert params["redirect_uri"] == ["https://app.example/oauth/callback/"]
        assert params["access_type"] == ["offline"] and params["prompt"] == ["consent"]
        assert params["include_granted_scopes"] == ["true"]


class TestTransportPolicy:
    @pytest.mark.parametrize("url", [
        "https://provider.example/token",
        "http://127.0.0.1:8000/token",
        "http://localhost/token",
        "http://[::1]:9000/token",
        "http://127.5.5.5/token",
    ])
    def test_allowed(self, url):
        assert protocol.insecure_url_problem(url, allow_http=False) is None

    @pytest.mark.parametrize("url, fragment", [
        ("http://provider.example/token", "must use https"),
        ("ftp://provider.example/token", "absolute http(s) URL"),
        ("/relative/token", "absolute http(s) URL"),
        ("https://user:pass@provider.example/token", "user name or password"),
        ("http://10.0.0.1/token", "must use https"),
    ])
    def test_refused(self, url, fragment):
        assert fragment in protocol.insecure_url_problem(url, allow_http=False)

    def test_debug_allows_http(self):
        assert protocol.insecure_url_problem("http://provider.example/t", allow_http=True) is None

    def test_token_request_refuses_http_before_sending(self, responses):
        client = protocol.ClientConfig(token_url="http://provider.example/token", client_id="a",
                                       client_secret="b")
        with pytest.raises(OAuthError) as info:
            protocol.exchange_code(client, code="c", redirect_uri="https://x/cb")
        assert info.value.kind is ErrorKind.CONFIGURATION
        assert "https" in str(info.value)
        assert len(responses.calls) == 0


class TestClientAuthentication:
    SECRET = "s3cr+t/with%2F:colon"

    def test_basic_auth_form_encodes_before_base64(self):
        request = requests.Request("POST", TOKEN_URL).prepare()
        protocol.ClientSecretBasic("client id:1", self.SECRET)(request)
        scheme, value = request.headers["Authorization"].split(" ")
        decoded = base64.b64decode(value).decode()
        assert scheme == "Basic"
        assert decoded == "client+id%3A1:s3cr%2Bt%2Fwith%252F%3Acolon"
        # What a strict provider does (RFC 6749 §2.3.1): split on the first colon, then decode.
        client_id, secret = map(unquote_plus, decoded.split(":", 1))
        assert (client_id, secret) == ("client id:1", self.SECRET)

    def test_plain_http_basic_auth_would_be_misread(self):
        # The reason for ClientSecretBasic: requests' HTTPBasicAuth sends the secret raw.
        request = requests.Request("POST", TOKEN_URL, auth=("client-id", self.SECRET)).prepare()
        decoded = base64.b64decode(request.headers["Authorization"].split(" ")[1]).decode()
        assert unquote_plus(decoded.split(":", 1)[1]) != self.SECRET

    def test_repr_hides_secret(self):
        auth = protocol.ClientSecretBasic("cid", self.SECRET)
        assert self.SECRET not in repr(auth)
        assert self.SECRET not in repr(protocol.ClientConfig(TOKEN_URL, "cid", self.SECRET))

    def test_basic_is_default(self, responses):
        responses.post(TOKEN_URL, json={"access_token": "at", "token_type": "bearer"})
        protocol.exchange_code(CLIENT, code="the-code", redirect_uri="https://app/cb",
                               code_verifier="v" * 43, extra_params={"audience": "api"})
        sent = responses.calls[0].request
        body = dict(parse_qsl(sent.body))
        assert sent.headers["Authorization"].startswith("Basic ")
        assert sent.headers["Accept"] == "application/json"
        assert body == {"grant_type": "authorization_code", "code": "the-code",
                        "redirect_uri": "https://app/cb", "code_verifier": "v" * 43,
                        "audience": "api"}

    def test_client_secret_post(self, responses):
        responses.post(TOKEN_URL, json={"access_token": "at", "token_type": "bearer"})
        client = protocol.ClientConfig(TOKEN_URL, "cid", self.SECRET,
                                       auth_method=protocol.CLIENT_SECRET_POST)
        protocol.exchange_code(client, code="the-code", redirect_uri="https://app/cb",
                               extra_params={"client_secret": "overridden?", "code": "x"})
        sent = responses.calls[0].request
        body = dict(parse_qsl(sent.body))
        assert "Authorization" not in sent.headers
        assert body["client_id"] == "cid" and body["client_secret"] == self.SECRET
        assert body["code"] == "the-code"


class TestTokenResponses:
    def test_full_json_response(self):
        token = parse({"access_token": "at", "token_type": "bearer", "expires_in": 3600,
                       "refresh_token": "rt", "scope": "read write", "id_token": "idt"})
        assert token.access_token == "at" and token.refresh_token == "rt"
        assert token.token_type == "Bearer"
        assert token.expires_in == 3600
        assert token.scopes == ["read", "write"]
        assert token.issued_at == NOW
        assert token.extra == {"token_type": "bearer", "expires_in": 3600,
                               "scope": "read write", "id_token": "idt"}

    def test_secrets_not_in_repr(self):
        token = parse({"access_token": "at-secret", "refresh_token": "rt-secret",
                       "id_token": "id-secret"})
        assert "secret" not in repr(token)

    @pytest.mark.parametrize("token_type", ["bearer", "Bearer", "BEARER", "BeArEr"])
    def test_token_type_any_case(self, token_type):
        assert parse({"access_token": "at", "token_type": token_type}).token_type == "Bearer"

    def test_missing_token_type_means_bearer(self):
        assert parse({"access_token": "at"}).token_type == "Bearer"

    def test_other_token_type_kept(self):
        assert parse({"access_token": "at", "token_type": "MAC"}).token_type == "MAC"

    @pytest.mark.parametrize("value, expected", [
        (3600, 3600), ("3600", 3600), (" 3600 ", 3600), (3599.9, 3599), ("3600.0", 3600),
        (None, None), ("soon", None), (True, None), (-5, None), (0, None), ([1], None),
    ])
    def test_expires_in(self, value, expected):
        body = {"access_token": "at", "token_type": "bearer"}
        if value is not None:
            body["expires_in"] = value
        assert parse(body).expires_in == expected

    def test_expires_in_missing(self):
        assert parse({"access_token": "at"}).expires_in is None

    @pytest.mark.parametrize("scope, expected", [
        ("read write", ["read", "write"]),
        ("read,write", ["read", "write"]),
        ("read, write", ["read", "write"]),
        (["read", "write"], ["read", "write"]),
        ("", []),
    ])
    def test_scope_forms(self, scope, expected):
        assert parse({"access_token": "at", "scope": scope}).scopes == expected

    def test_scope_missing_means_not_said(self):
        assert parse({"access_token": "at"}).scopes is None

    def test_form_encoded_body(self):
        token = parse("access_token=at&token_type=bearer&scope=repo%2Cuser&expires_in=28800",
                      content_type="application/x-www-form-urlencoded; charset=utf-8")
        assert (token.access_token, token.token_type, token.scopes, token.expires_in) == (
            "at", "Bearer", ["repo", "user"], 28800)

    def test_form_encoded_body_labelled_text_plain(self):
        token = parse("access_token=at&token_type=bearer", content_type="text/plain")
        assert token.access_token == "at"

    def test_json_body_without_content_type(self):
        assert parse({"access_token": "at"}, content_type="").access_token == "at"

    def test_json_body_labelled_as_html_is_still_refused_when_it_looks_like_html(self):
        error = parse_error("<html><body>Sign in</body></html>", content_type="text/html")
        assert error.kind is ErrorKind.MALFORMED
        assert "HTML page" in str(error)

    def test_200_with_error_body_is_an_error(self):
        error = parse_error({"error": "bad_verification_code",
                             "error_description": "The code passed is incorrect or expired."})
        assert error.kind is ErrorKind.REJECTED
        assert error.error == "bad_verification_code"
        assert "incorrect or expired" in str(error)

    def test_200_form_encoded_error(self):
        error = parse_error("error=invalid_grant&error_description=expired",
                            content_type="application/x-www-form-urlencoded")
        assert error.kind is ErrorKind.REAUTHORIZE

    @pytest.mark.parametrize("status, body, kind", [
        (400, {"error": "invalid_grant"}, ErrorKind.REAUTHORIZE),
        (400, {"error": "invalid_client"}, ErrorKind.CLIENT),
        (401, {"error": "invalid_client"}, ErrorKind.CLIENT),
        (400, {"error": "unauthorized_client"}, ErrorKind.CLIENT),
        (400, {"error": "invalid_scope"}, ErrorKind.REJECTED),
        (400, {"error": "invalid_request"}, ErrorKind.REJECTED),
        (503, {"error": "temporarily_unavailable"}, ErrorKind.TRANSIENT),
        (500, {"error": "server_error"}, ErrorKind.TRANSIENT),
        (429, {"error": "rate_limited"}, ErrorKind.TRANSIENT),
        (502, {"error": "weird"}, ErrorKind.TRANSIENT),
        (401, "", ErrorKind.CLIENT),
        (404, "Not Found", ErrorKind.REJECTED),
        (500, "", ErrorKind.TRANSIENT),
        (429, "", ErrorKind.TRANSIENT),
        (408, "", ErrorKind.TRANSIENT),
        (425, "", ErrorKind.TRANSIENT),
        (499, "", ErrorKind.TRANSIENT),
        # A server error or a rate limit cannot declare the grant dead, whatever its body says.
        (503, {"error": "invalid_grant"}, ErrorKind.TRANSIENT),
        (429, {"error": "invalid_client"}, ErrorKind.TRANSIENT),
        # Providers' own words (GitHub, Slack, HubSpot, OpenID Connect).
        (200, {"error": "bad_refresh_token"}, ErrorKind.REAUTHORIZE),
        (200, {"error": "incorrect_client_credentials"}, ErrorKind.CLIENT),
        (200, {"ok": False, "error": "invalid_refresh_token"}, ErrorKind.REAUTHORIZE),
        (200, {"ok": False, "error": "token_revoked"}, ErrorKind.REAUTHORIZE),
        (200, {"ok": False, "error": "bad_client_secret"}, ErrorKind.CLIENT),
        (200, {"ok": False, "error": "internal_error"}, ErrorKind.TRANSIENT),
        (200, {"ok": False}, ErrorKind.REJECTED),
        (400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"},
         ErrorKind.REAUTHORIZE),
        (400, {"status": "BAD_CLIENT_ID"}, ErrorKind.CLIENT),
        (400, {"error": "interaction_required"}, ErrorKind.REAUTHORIZE),
        # Web frameworks' own JSON errors: the status decides.
        (401, {"status": 401, "error": "Unauthorized"}, ErrorKind.CLIENT),
        (404, {"error": "Not Found"}, ErrorKind.REJECTED),
        (408, {"error": "Request Timeout"}, ErrorKind.TRANSIENT),
        # A 401 is the client failing to authenticate: no end user has to reconnect for it.
        (401, {"error": "invalid_grant"}, ErrorKind.CLIENT),
    ])
    def test_error_classification(self, status, body, kind):
        error = parse_error(body, status=status)
        assert error.kind is kind
        assert error.status == status

    def test_a_nested_error_object(self):
        # Meta's Graph API: {"error": {"message", "type", "code"}}.
        error = parse_error({"error": {"message": "Error validating client secret.",
                                       "type": "OAuthException", "code": 1}}, status=400)
        assert (error.kind, error.error) == (ErrorKind.REJECTED, "OAuthException")
        assert str(error) == ("The provider answered OAuthException: "
                              "Error validating client secret.")

    def test_a_providers_message_is_the_description(self):
        error = parse_error({"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid"},
                            status=400)
        assert str(error) == "The provider answered BAD_REFRESH_TOKEN: missing or invalid"

    @pytest.mark.parametrize("error", [None, "", False, {}])
    def test_an_empty_error_is_no_error(self, error):
        # The tokens are in the answer, a rotated refresh token among them: keep them.
        token = parse({"access_token": "at", "refresh_token": "rotated", "error": error})
        assert (token.access_token, token.refresh_token) == ("at", "rotated")

    @pytest.mark.parametrize("status, in_doubt", [(502, True), (504, True), (499, True),
                                                  (503, False), (500, False), (429, False)])
    @pytest.mark.parametrize("body", ["", {"error": "server_error"}])
    def test_a_gateways_error_leaves_the_request_in_doubt(self, status, in_doubt, body):
        assert parse_error(body, status=status).in_doubt is in_doubt

    def test_html_502_page(self):
        error = parse_error("<html><head><title>502 Bad Gateway</title></head></html>",
                            status=502, content_type="text/html")
        assert error.kind is ErrorKind.TRANSIENT and error.retryable
        assert str(error) == "The token endpoint answered HTTP 502 with an HTML page."

    def test_retry_after_seconds_and_date(self):
        assert parse_error("", status=429, retry_after="120").retry_after == 120
        when = datetime.now(timezone.utc) + timedelta(seconds=300)
        http_date = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
        assert 290 <= parse_error("", status=503, retry_after=http_date).retry_after <= 300
        assert parse_error("", status=503, retry_after="garbage").retry_after is None
        assert parse_error("", status=429, retry_after="99999999").retry_after == 24 * 3600

    @pytest.mark.parametrize("body", [
        "", "null", "[]", '"a string"', "{not json", "Bad Gateway", "access_token",
        {"token_type": "bearer"}, {"access_token": ""}, {"access_token": 12345},
    ])
    def test_malformed_200(self, body):
        error = parse_error(body)
        assert error.kind is ErrorKind.MALFORMED and error.retryable

    def test_redirect_is_not_followed(self):
        error = parse_error("", status=302)
        assert error.kind is ErrorKind.MALFORMED and "redirected" in str(error)

    def test_provider_text_is_scrubbed_of_secrets(self):
        error = parse_error(
            {"error": "invalid_grant", "error_description": "code abc-secret-code is expired"},
            status=400, secret_values=["abc-secret-code"],
        )
        assert "abc-secret-code" not in str(error)
        assert "[redacted]" in str(error)

    def test_a_secret_echoed_percent_encoded_is_scrubbed(self):
        secret = "1//0g-refresh token+x"
        for echoed in ("refresh_token=1%2F%2F0g-refresh%20token%2Bx",
                       "refresh_token=1%2F%2F0g-refresh+token%2Bx"):
            error = parse_error({"error": "invalid_grant", "error_description": echoed},
                                status=400, secret_values=[secret])
            assert str(error) == "The provider answered invalid_grant: refresh_token=[redacted]"

    def test_extra_parameters_are_scrubbed_too(self, responses):
        # A connector's token_params may hold a secret (a client assertion).
        responses.post(TOKEN_URL, status=400, json={
            "error": "consent_required", "error_description":
                "bad assertion eyJ-assertion-123 for https://graph.example/ (openid)"})
        with pytest.raises(OAuthError) as info:
            protocol.exchange_code(CLIENT, code="the-code", redirect_uri="https://app/cb",
                                   extra_params={"client_assertion": "eyJ-assertion-123",
                                                 "resource": "https://graph.example/",
                                                 "scope": "openid", "prompt": "consent"})
        # The secret goes; what the message is about stays.
        assert str(info.value) == ("The provider answered consent_required: bad assertion "
                                   "[redacted] for https://graph.example/ (openid)")

    def test_the_error_is_classified_before_it_is_scrubbed(self, responses):
        responses.post(TOKEN_URL, status=400, json={"error": "consent_required"})
        with pytest.raises(OAuthError) as info:
            protocol.exchange_code(CLIENT, code="the-code", redirect_uri="https://app/cb",
                                   extra_params={"subject_token": "consent"})
        assert info.value.kind is ErrorKind.REAUTHORIZE
        assert info.value.error == "[redacted]_required"

    def test_long_description_truncated(self):
        error = parse_error({"error": "invalid_request", "error_description": "x" * 5000},
                            status=400)
        assert len(error.description) == protocol.MAX_DESCRIPTION_CHARS


class TestTransportFailures:
    def test_timeout(self, responses):
        responses.post(TOKEN_URL, body=requests.ReadTimeout("read timed out"))
        with pytest.raises(OAuthError) as info:
            protocol.exchange_code(CLIENT, code="the-code", redirect_uri="https://app/cb")
        assert info.value.kind is ErrorKind.TRANSIENT
        assert str(info.value) == (
            "The token endpoint at provider.example did not answer within 10 seconds."
        )

    def test_connection_refused(self):
        """Nothing listens: the request was certainly not sent."""
        import socket
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        client = protocol.ClientConfig(f"http://127.0.0.1:{port}/token", "cid", "secret")
        with pytest.raises(OAuthError) as info:
            protocol.exchange_code(client, code="the-code", redirect_uri="https://app/cb")
        assert info.value.kind is ErrorKind.TRANSIENT and not info.value.in_doubt
        assert str(info.value) == "Could not connect to the token endpoint at 127.0.0.1."

    def test_connection_reset_after_sending(self):
        """The provider took the request and the connection broke: it may have acted on it."""
        import socket
        import struct
        import threading
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()

        def reset():
            conn, _ = server.accept()
            read_http_request(conn)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # linger 0: RST instead of FIN

        thread = threading.Thread(target=reset, daemon=True)
        thread.start()
        client = protocol.ClientConfig(f"http://127.0.0.1:{server.getsockname()[1]}/token",
                                       "cid", "secret")
        with pytest.raises(OAuthError) as info:
            protocol.exchange_code(client, code="the-code", redirect_uri="https://app/cb")
        thread.join()
        server.close()
        assert info.value.kind is ErrorKind.TRANSIENT and info.value.in_doubt
        assert str(info.value) == (
            "The connection to the token endpoint at 127.0.0.1 broke before an answer came.")

    def test_real_connection_refused_and_timeout(self):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        client = protocol.ClientConfig(f"http://127.0.0.1:{port}/token", "cid", "secret",
                                       timeout=2)
        with pytest.raises(OAuthError) as info:
            protocol.exchange_code(client, code="c", redirect_uri="https://app/cb")
        assert info.value.kind is ErrorKind.TRANSIENT

        with socket.socket() as silent:  # accepts connections, never answers
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            client = protocol.ClientConfig(
                f"http://127.0.0.1:{silent.getsockname()[1]}/token", "cid", "secret", timeout=0.3)
            with pytest.raises(OAuthError) as info:
                protocol.exchange_code(client, code="c", redirect_uri="https://app/cb")
        assert info.value.kind is ErrorKind.TRANSIENT
        assert "did not answer within 0.3 seconds" in str(info.value)

    def test_trickling_body_is_cut_at_the_deadline(self):
        """A provider sending one byte at a time keeps every socket read alive; the request
        must still end, or the refresh lease could expire under it."""
        import socket
        import threading
        import time

        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()

        def trickle():
            conn, _ = server.accept()
            read_http_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{")
            try:
                while not done.wait(0.05):
                    conn.sendall(b" ")
            except OSError:
                pass
            finally:
                conn.close()

        done = threading.Event()
        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        client = protocol.ClientConfig(f"http://127.0.0.1:{server.getsockname()[1]}/token",
                                       "cid", "secret", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(OAuthError) as info:
            protocol.exchange_code(client, code="c", redirect_uri="https://app/cb")
        elapsed = time.monotonic() - started
        done.set()
        sender.join()
        server.close()
        assert info.value.kind is ErrorKind.TRANSIENT
        # One deadline for the whole request, the body included.
        assert elapsed < 0.3 + 0.45  # it was 2 x 0.3 for the body alone

    def test_oversized_response(self, responses):
        responses.post(TOKEN_URL, body=b"{" + b" " * (protocol.MAX_RESPONSE_BYTES + 10) + b"}")
        with pytest.raises(OAuthError) as info:
            protocol.exchange_code(CLIENT, code="c", redirect_uri="https://app/cb")
        assert info.value.kind is ErrorKind.MALFORMED
