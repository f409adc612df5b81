"""OAuth 2.0 client mechanics (RFC 6749, RFC 7636): authorization URLs, PKCE, token requests.

Plain values in, plain values out: this module knows nothing of models, views or Celery, so
the callback view, the refresh engine and the admin's "Validate credential" all speak to
providers through the same few functions.

Why the HTTP exchange is written here and not delegated to ``requests_oauthlib.OAuth2Session``
is in ``docs/architecture.md`` (in short: its plain-http switch is a process-wide environment
variable, its default Basic auth skips the RFC 6749 §2.3.1 form-encoding, it logs request and
response bodies at DEBUG, and it cannot read the error pages real providers send).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import ipaddress
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import requests
import urllib3
from django.views.decorators.debug import sensitive_variables

from .redaction import scrub

logger = logging.getLogger(__name__)

#: Parameters of the authorization request that the connector's extra parameters may not replace.
RESERVED_AUTHORIZATION_PARAMS = frozenset(
    {"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
     "code_challenge_method"}
)
#: Parameters of a token request that the connector's extra parameters may not replace.
RESERVED_TOKEN_PARAMS = frozenset(
    {"grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "client_id",
     "client_secret"}
)
CLIENT_SECRET_BASIC = "client_secret_basic"
CLIENT_SECRET_POST = "client_secret_post"

#: A token response larger than this is not a token response.
MAX_RESPONSE_BYTES = 1024 * 1024
#: Longest provider error description kept (they end up in pages and ``last_error``).
MAX_DESCRIPTION_CHARS = 300
#: Longest Retry-After honoured, in seconds.
MAX_RETRY_AFTER = 24 * 3600

_TOKEN_FIELDS_WITH_COLUMNS = frozenset({"access_token", "refresh_token"})
#: Printable ASCII without spaces: what may follow "Bearer " in a header (RFC 6750 §2.1 is
#: stricter; real providers are not).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
#: RFC 6749 §7.1 token types ("Bearer", "MAC", "DPoP", "N_A", …).
_TOKEN_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,40}")


class ErrorKind(StrEnum):
    """What a failed token request means for the credential and who has to act."""

    #: ``invalid_grant`` (or a provider's own word for it, :data:`REAUTHORIZE_ERRORS`): the
    #: grant is dead (revoked, expired, reused); the end user must reconnect.
    REAUTHORIZE = "reauthorize"
    #: ``invalid_client`` / ``unauthorized_client`` (:data:`CLIENT_ERRORS`) / HTTP 401: the
    #: operator's client credentials were rejected.
    CLIENT = "client"
    #: Any other OAuth error or 4xx: the request itself was refused (bad scope, wrong URL…).
    REJECTED = "rejected"
    #: 429, 5xx, 408, timeouts, refused connections, ``temporarily_unavailable``: try again later.
    TRANSIENT = "transient"
    #: A 2xx that is not a usable token response (HTML, garbage, no access token).
    MALFORMED = "malformed"
    #: Our own configuration refuses the request (e.g. plain http to a public host).
    CONFIGURATION = "configuration"


class OAuthError(Exception):
    """A token request that did not produce a token.

    ``str(error)`` is a sentence for an operator or end user and never contains a secret:
    descriptions sent back by the provider are scrubbed of every secret the request carried.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        error: str | None = None,
        description: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        in_doubt: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.error = error
        self.description = description
        self.status = status
        self.retry_after = retry_after
        #: The request may have reached the provider, but no answer came back (a read
        #: timeout, a connection cut after sending): it may still be processed.
        self.in_doubt = in_doubt

    @property
    def retryable(self) -> bool:
        return self.kind in (ErrorKind.TRANSIENT, ErrorKind.MALFORMED)


@dataclass(frozen=True)
class ClientConfig:
    """How to reach and authenticate at one provider's token endpoint."""

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    auth_method: str = CLIENT_SECRET_BASIC
    timeout: float = 10.0
    #: Allow plain http to any host (the host project runs with DEBUG on).
    allow_http: bool = False


@dataclass(frozen=True)
class TokenResponse:
    """A successful token response, normalised (RFC 6749 §5.1)."""

    access_token: str = field(repr=False)
    token_type: str
    issued_at: datetime
    refresh_token: str | None = field(default=None, repr=False)
    #: Lifetime in seconds; ``None`` when the provider did not say (or said nonsense).
    expires_in: int | None = None
    #: Granted scopes; ``None`` when the provider omitted ``scope`` (= the requested scopes).
    scopes: list[str] | None = None
    #: Lifetime of the refresh token, when the provider says (GitHub Apps, Keycloak, …).
    refresh_token_expires_in: int | None = None
    #: Every other member of the response (``id_token``, provider extras…).
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


class ClientSecretBasic(requests.auth.AuthBase):
    """HTTP Basic client authentication as RFC 6749 §2.3.1 defines it.

    The client id and secret are form-urlencoded *before* base64, so a secret such as
    ``s3cr+t/with%2F:colon`` reaches a strict provider intact; ``requests.auth.HTTPBasicAuth``
    sends them raw and such a provider answers ``invalid_client``.
    """

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self._client_secret = client_secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        pair = f"{quote_plus(self.client_id)}:{quote_plus(self._client_secret)}"
        request.headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return request

    def __repr__(self) -> str:
        return f"ClientSecretBasic(client_id={self.client_id!r})"


# --- scopes, state and PKCE -------------------------------------------------------------


def parse_scopes(value: str | Iterable[str] | None) -> list[str]:
    """Scopes from an operator's text or a provider's answer: spaces and/or commas, in order,
    without duplicates or empty items."""
    if value is None:
        return []
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    seen: dict[str, None] = {}
    for item in items:
        item = str(item).strip()
        if item and item.isprintable():
            seen.setdefault(item, None)
    return list(seen)


def new_state() -> str:
    """An unguessable ``state`` value (256 bits)."""
    return secrets.token_urlsafe(32)


def hash_state(state: str) -> str:
    """What is stored instead of the state: the state has 256 bits, so a plain hash suffices."""
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()


def new_pkce_pair() -> tuple[str, str]:
    """A PKCE ``(code_verifier, code_challenge)`` pair for the S256 method (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(64)  # 86 characters of [A-Za-z0-9_-], within 43..128
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# --- transport policy ---------------------------------------------------------------------


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why ``url`` may not carry OAuth traffic, or ``None`` when it may.

    ``https`` always; plain ``http`` only to a loopback host (tests, the demo) or when the
    host project runs with DEBUG on. The rule is applied per request, never by flipping
    oauthlib's process-wide ``OAUTHLIB_INSECURE_TRANSPORT``.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an absolute http(s) URL"
    if parts.username or parts.password:
        return "must not contain a user name or password"
    if parts.scheme == "http" and not (allow_http or is_loopback_host(host)):
        return "must use https (plain http is only allowed for loopback hosts or with DEBUG on)"
    return None


def require_secure_url(url: str, *, allow_http: bool, what: str = "The URL") -> None:
    problem = insecure_url_problem(url, allow_http=allow_http)
    if problem:
        raise OAuthError(ErrorKind.CONFIGURATION, f"{what} {problem}.")


# --- the authorization request ------------------------------------------------------------


def authorization_url(
    auth_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    scopes: list[str],
    scope_separator: str = " ",
    code_challenge: str | None = None,
    extra_params: Mapping[str, Any] | None = None,
) -> str:
    """The provider URL to send the end user to (RFC 6749 §4.1.1, RFC 7636 §4.3).

    Parameters already in ``auth_url`` (some providers put a tenant there) are kept; the
    connector's extra parameters are added but can never replace a protocol parameter.
    """
    parts = urlsplit(auth_url)
    params: list[tuple[str, str]] = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key not in RESERVED_AUTHORIZATION_PARAMS
    ]
    params += [
        (str(key), _param_value(value))
        for key, value in (extra_params or {}).items()
        if key not in RESERVED_AUTHORIZATION_PARAMS
    ]
    params += [("response_type", "code"), ("client_id", client_id), ("redirect_uri", redirect_uri)]
    if scopes:
        params.append(("scope", scope_separator.join(scopes)))
    params.append(("state", state))
    if code_challenge:
        params += [("code_challenge", code_challenge), ("code_challenge_method", "S256")]
    return urlunsplit(parts._replace(query=urlencode(params, quote_via=quote)))


def _param_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


# --- token requests -----------------------------------------------------------------------


@sensitive_variables()
def exchange_code(
    client: ClientConfig,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str | None = None,
    extra_params: Mapping[str, Any] | None = None,
) -> TokenResponse:
    """Redeem an authorization code (RFC 6749 §4.1.3) with the same ``redirect_uri``."""
    params = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier:
        params["code_verifier"] = code_verifier
    return token_request(client, params, extra_params, secret_values=(code, code_verifier))


@sensitive_variables()
def refresh_access_token(
    client: ClientConfig,
    *,
    refresh_token: str,
    extra_params: Mapping[str, Any] | None = None,
) -> TokenResponse:
    """Trade a refresh token for new tokens (RFC 6749 §6). A response without
    ``refresh_token`` means the old one stays valid; the caller keeps it."""
    params = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return token_request(client, params, extra_params, secret_values=(refresh_token,))


@sensitive_variables()
def token_request(
    client: ClientConfig,
    params: dict[str, str],
    extra_params: Mapping[str, Any] | None = None,
    *,
    secret_values: Iterable[str | None] = (),
) -> TokenResponse:
    """POST to the token endpoint with the client's authentication and normalise the answer.

    ``secret_values`` are the secrets in ``params``; they are scrubbed from any text the
    provider sends back before it reaches an exception message.
    """
    data = {str(k): _param_value(v) for k, v in (extra_params or {}).items()
            if k not in RESERVED_TOKEN_PARAMS}
    data.update(params)
    issued_at = datetime.now(timezone.utc)
    answer = _post_form(client, client.token_url, data, what="token")
    try:
        return parse_token_response(
            answer.status,
            answer.content_type,
            answer.body,
            retry_after=answer.retry_after,
            issued_at=issued_at,
            secret_values=[client.client_secret, *secret_values,
                           *(data[k] for k in data
                             if k not in params and k.lower() not in PUBLIC_TOKEN_PARAMS)],
        )
    except OAuthError:
        raise
    except Exception as exc:
        # The answer comes from outside: whatever in it the parser did not foresee is a
        # malformed answer (retried later), never an exception for the callback or the worker.
        # Only the exception's type is logged: its message could quote the answer.
        logger.error("Unreadable answer from the token endpoint (HTTP %s): %s.",
                     answer.status, type(exc).__name__)
        raise OAuthError(ErrorKind.MALFORMED, "The token endpoint's answer could not be read.",
                         status=answer.status) from None


@sensitive_variables()
def revoke_token(client: ClientConfig, url: str, *, token: str, token_type_hint: str) -> None:
    """Ask the provider to revoke a token (RFC 7009 §2.1). A 200 is success, also for a token
    the provider does not know (§2.2), unless its body reports an error (Slack answers 200
    with ``"ok": false``) or is an HTML page (a web page, not a revocation endpoint); anything
    else raises :class:`OAuthError` (a 503 is ``transient``: the token may still be valid)."""
    answer = _post_form(
        client, url, {"token": token, "token_type_hint": token_type_hint}, what="revocation"
    )
    if answer.body is None:
        raise OAuthError(ErrorKind.MALFORMED, "The revocation endpoint sent an oversized answer.",
                         status=answer.status)
    params, looks_like_html = _parse_body(answer.content_type, answer.body)
    if params is not None and _error_code(params):
        raise _provider_error(answer.status, params, answer.retry_after,
                              [client.client_secret, token])
    # Only an actual page: Django (django-oauth-toolkit too) labels an empty body text/html.
    if 200 <= answer.status < 300 and answer.body.decode("utf-8", "replace").lstrip(
            "\ufeff \t\r\n").startswith("<"):
        raise OAuthError(ErrorKind.MALFORMED, f"The revocation endpoint answered HTTP "
                         f"{answer.status} with an HTML page; check the revocation URL.",
                         status=answer.status)
    if 200 <= answer.status < 300:
        return
    raise _http_error(answer.status, looks_like_html, answer.retry_after, what="revocation")


def probe_url(url: str, *, timeout: float, allow_http: bool) -> int:
    """GET ``url`` without following redirects and return the HTTP status: does it answer?"""
    require_secure_url(url, allow_http=allow_http)
    host = urlsplit(url).hostname
    try:
        response = _http_session().get(url, timeout=timeout, allow_redirects=False, stream=True)
        response.close()
    except requests.Timeout:
        raise OAuthError(ErrorKind.TRANSIENT,
                         f"{host} did not answer within {timeout:g} seconds.") from None
    except requests.RequestException:
        raise OAuthError(ErrorKind.TRANSIENT, f"Could not connect to {host}.") from None
    return response.status_code


def _maybe_sent(exc: requests.RequestException) -> bool:
    """False only when the connection was never made (so the request was never sent)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return not isinstance(reason, urllib3.exceptions.NewConnectionError)


@dataclass(frozen=True)
class _Answer:
    status: int
    content_type: str
    body: bytes | None
    retry_after: str | None


@sensitive_variables()
def _post_form(client: ClientConfig, url: str, data: dict[str, str], *, what: str) -> _Answer:
    """POST ``data`` to one of the provider's endpoints with the client's authentication.
    Transport failures become ``transient`` :class:`OAuthError`; the answer is not judged."""
    require_secure_url(url, allow_http=client.allow_http, what=f"The {what} URL")
    auth: requests.auth.AuthBase | None = None
    if client.auth_method == CLIENT_SECRET_POST:
        data = {**data, "client_id": client.client_id, "client_secret": client.client_secret}
    else:
        auth = ClientSecretBasic(client.client_id, client.client_secret)
    host = urlsplit(url).hostname
    try:
        response = _http_session().post(
            url,
            data=data,
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=client.timeout,
            allow_redirects=False,
            stream=True,
        )
        with response:
            body = _read_body(response, deadline=time.monotonic() + 2 * client.timeout)
    except requests.Timeout as exc:
        raise OAuthError(
            ErrorKind.TRANSIENT,
            f"The {what} endpoint at {host} did not answer within {client.timeout:g} seconds.",
            in_doubt=_maybe_sent(exc),
        ) from None
    except requests.ConnectionError as exc:
        sent = _maybe_sent(exc)
        raise OAuthError(
            ErrorKind.TRANSIENT,
            f"The connection to the {what} endpoint at {host} broke before an answer came."
            if sent else f"Could not connect to the {what} endpoint at {host}.",
            in_doubt=sent,
        ) from None
    except requests.RequestException as exc:
        raise OAuthError(
            ErrorKind.TRANSIENT,
            f"The request to the {what} endpoint at {host} failed ({type(exc).__name__}).",
            in_doubt=True,
        ) from None
    return _Answer(response.status_code, response.headers.get("Content-Type", ""), body,
                   response.headers.get("Retry-After"))


@sensitive_variables()
def parse_token_response(
    status: int,
    content_type: str,
    body: bytes | None,
    *,
    issued_at: datetime,
    retry_after: str | None = None,
    secret_values: Iterable[str | None] = (),
) -> TokenResponse:
    """Turn whatever the token endpoint answered into a :class:`TokenResponse` or raise
    :class:`OAuthError`. The HTTP status is looked at first; a 200 whose body carries
    ``error`` is an error; JSON and form-encoded bodies are both understood."""
    if body is None:
        raise OAuthError(
            ErrorKind.MALFORMED,
            f"The token endpoint sent more than {MAX_RESPONSE_BYTES // 1024} KiB.",
            status=status,
        )
    params, looks_like_html = _parse_body(content_type, body)
    if params is not None and _error_code(params):
        raise _provider_error(status, params, retry_after, secret_values)
    if 300 <= status < 400:
        raise OAuthError(
            ErrorKind.MALFORMED,
            f"The token endpoint redirected (HTTP {status}); enter the final token URL.",
            status=status,
        )
    if status >= 400:
        raise _http_error(status, looks_like_html, retry_after)
    if params is None:
        what = "an HTML page" if looks_like_html else "a body that is neither JSON nor form data"
        raise OAuthError(
            ErrorKind.MALFORMED,
            f"The token endpoint answered HTTP {status} with {what} instead of a token.",
            status=status,
        )
    access_token = params.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise OAuthError(
            ErrorKind.MALFORMED,
            "The token endpoint's answer has no access_token.",
            status=status,
        )
    if not _HEADER_SAFE.fullmatch(access_token):
        # It goes into an Authorization header: no spaces or control characters.
        raise OAuthError(
            ErrorKind.MALFORMED,
            "The token endpoint's access_token contains characters no token may contain.",
            status=status,
        )
    token_type = params.get("token_type") or "Bearer"
    if not isinstance(token_type, str) or not _TOKEN_TYPE.fullmatch(token_type.strip()):
        raise OAuthError(
            ErrorKind.MALFORMED, "The token endpoint's token_type is not valid.", status=status
        )
    token_type = token_type.strip()
    if token_type.lower() == "bearer":
        token_type = "Bearer"
    refresh_token = params.get("refresh_token")
    scope = params.get("scope")
    if isinstance(scope, list) and all(isinstance(item, str) for item in scope):
        scopes: list[str] | None = parse_scopes(scope)
    else:
        scopes = parse_scopes(scope) if isinstance(scope, str) else None
    return TokenResponse(
        access_token=access_token,
        token_type=token_type,
        issued_at=issued_at,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        expires_in=_seconds(params.get("expires_in")),
        scopes=scopes,
        refresh_token_expires_in=_seconds(
            params.get("refresh_token_expires_in", params.get("refresh_expires_in"))),
        extra={k: v for k, v in params.items() if k not in _TOKEN_FIELDS_WITH_COLUMNS},
    )


def _parse_body(content_type: str, body: bytes) -> tuple[dict[str, Any] | None, bool]:
    """(parameters or None, whether the body looks like an HTML page)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    text = body.decode("utf-8", "replace").strip()
    looks_like_html = media_type in ("text/html", "application/xhtml+xml") or text.startswith("<")
    if looks_like_html or not text:
        return None, looks_like_html
    if media_type == "application/json" or media_type.endswith("+json") or text[0] in "{[":
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            return None, False
        return (value if isinstance(value, dict) else None), False
    if media_type in ("", "application/x-www-form-urlencoded", "text/plain"):
        pairs = parse_qsl(text, keep_blank_values=True)
        if pairs and all(key and not any(c.isspace() for c in key) for key, _ in pairs):
            return dict(pairs), False
    return None, False


#: Error codes by what they mean. RFC 6749 §5.2's, and what real providers send instead:
#: GitHub (``bad_refresh_token``, ``incorrect_client_credentials``, both with HTTP 200),
#: Slack (HTTP 200 with ``"ok": false``), HubSpot (``status`` instead of ``error``), and
#: OpenID Connect's ``*_required`` from providers with conditional access (Microsoft).
REAUTHORIZE_ERRORS = frozenset({
    "invalid_grant", "bad_refresh_token", "invalid_refresh_token", "token_revoked",
    "token_expired", "interaction_required", "login_required", "consent_required",
    "BAD_REFRESH_TOKEN",
})
CLIENT_ERRORS = frozenset({
    "invalid_client", "unauthorized_client", "incorrect_client_credentials",
    "invalid_client_id", "bad_client_secret", "BAD_CLIENT_ID", "BAD_CLIENT_SECRET",
})
TRANSIENT_ERRORS = frozenset({
    "temporarily_unavailable", "server_error", "slow_down", "internal_error", "fatal_error",
    "service_unavailable", "request_timeout", "ratelimited",
})
#: HubSpot's ``status`` values, read only when a body has no ``error``.
_STATUS_CODES = frozenset({"BAD_REFRESH_TOKEN", "BAD_AUTH_CODE", "BAD_CLIENT_ID",
                           "BAD_CLIENT_SECRET", "BAD_REDIRECT_URI", "BAD_GRANT_TYPE"})


#: Extra token parameters known to hold no secret: what an error message is usually about,
#: so their values stay readable. Every other one (a client_assertion, a subject_token, an
#: API key) is scrubbed from what the provider says.
PUBLIC_TOKEN_PARAMS = frozenset({
    "audience", "resource", "scope", "prompt", "access_type", "tenant", "response_type",
    "response_mode", "include_granted_scopes", "duration", "user_scope", "approval_prompt",
    "client_assertion_type", "requested_token_type", "subject_token_type", "format",
})

#: 4xx statuses that say "not now" rather than "no": request timeout (RFC 9110 §15.5.9), too
#: early (RFC 8470), and the client-closed-request of nginx-fronted providers.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 499})
#: A gateway's bad or late answer, or a proxy that gave up waiting (499): the provider behind
#: it may have taken the request.
IN_DOUBT_STATUSES = frozenset({499, 502, 504})


def _retry_later(status: int) -> bool:
    """Whether an HTTP status alone says "try again later", whatever the body says."""
    return status == 429 or status >= 500 or status in RETRYABLE_CLIENT_STATUSES


def _error_code(params: Mapping[str, Any]) -> str:
    """The error a body reports, or "" for none. ``"error": null`` (or "") is no error: a
    token response that says so still carries the tokens, a rotated refresh token among them."""
    error = params.get("error")
    if isinstance(error, Mapping):  # {"error": {"type": "OAuthException", "message": …}}
        return str(error.get("type") or error.get("code") or "unknown_error") if error else ""
    if error:
        return str(error)
    if params.get("ok") is False:  # Slack
        return "unknown_error"
    status = params.get("status")
    return status if isinstance(status, str) and status in _STATUS_CODES else ""


def _error_description(params: Mapping[str, Any]) -> str | None:
    error = params.get("error")
    nested = error if isinstance(error, Mapping) else {}
    return next((value for value in (params.get("error_description"), params.get("message"),
                                     params.get("reason"), nested.get("message"))
                 if isinstance(value, str) and value), None)


@sensitive_variables()
def _provider_error(
    status: int,
    params: Mapping[str, Any],
    retry_after: str | None,
    secret_values: Iterable[str | None],
) -> OAuthError:
    code = _error_code(params)
    # The status first: a server error or a rate limit cannot declare a grant dead, whatever
    # its body says, and a 401 is the client's authentication failing (RFC 6749 §5.2, RFC
    # 7009 §2.2.1): a wrong secret must not send every end user to reconnect.
    if _retry_later(status) or code in TRANSIENT_ERRORS:
        kind = ErrorKind.TRANSIENT
    elif status == 401 or code in CLIENT_ERRORS:
        kind = ErrorKind.CLIENT
    elif code in REAUTHORIZE_ERRORS:
        kind = ErrorKind.REAUTHORIZE
    else:
        kind = ErrorKind.REJECTED
    # Scrub before truncating: a secret cut in two would no longer be recognised.
    error = scrub(code, secret_values)[:100]
    description = _error_description(params)
    description = (
        scrub(description, secret_values)[:MAX_DESCRIPTION_CHARS] if description else None
    )
    message = f"The provider answered {error}" + (f": {description}" if description else ".")
    return OAuthError(
        kind,
        message,
        error=error,
        description=description,
        status=status,
        retry_after=_retry_after(retry_after) if kind is ErrorKind.TRANSIENT else None,
        in_doubt=status in IN_DOUBT_STATUSES,
    )


def _http_error(
    status: int, looks_like_html: bool, retry_after: str | None, *, what: str = "token"
) -> OAuthError:
    page = " with an HTML page" if looks_like_html else ""
    if status == 429:
        return OAuthError(
            ErrorKind.TRANSIENT,
            f"The {what} endpoint is rate limiting requests (HTTP 429).",
            status=status,
            retry_after=_retry_after(retry_after),
        )
    if _retry_later(status):
        return OAuthError(
            ErrorKind.TRANSIENT,
            f"The {what} endpoint answered HTTP {status}{page}.",
            status=status,
            retry_after=_retry_after(retry_after),
            in_doubt=status in IN_DOUBT_STATUSES,
        )
    if status == 401:
        return OAuthError(
            ErrorKind.CLIENT,
            f"The {what} endpoint rejected the client credentials (HTTP 401).",
            status=status,
        )
    return OAuthError(
        ErrorKind.REJECTED,
        f"The {what} endpoint answered HTTP {status}{page}; check the {what} URL.",
        status=status,
    )


def _seconds(value: Any) -> int | None:
    """``expires_in`` as sent by real providers: int, float or numeric string; else unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and value == value and 0 < value < 10**10:
        return int(value)
    return None


def _retry_after(value: str | None) -> int | None:
    """Retry-After as delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return MAX_RETRY_AFTER if len(value) > 9 else min(int(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    delay = (when - datetime.now(timezone.utc)).total_seconds()
    return min(max(int(delay), 0), MAX_RETRY_AFTER)


def _read_body(response: requests.Response, *, deadline: float) -> bytes | None:
    """The body, or ``None`` when it exceeds :data:`MAX_RESPONSE_BYTES`.

    Read with ``read1`` (at most one receive per call) so that a provider trickling bytes
    cannot hold the request much past ``deadline`` (the refresh lease is kept alive anyway,
    but a worker should not wait for ever).
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise requests.Timeout("the token response took too long")
        try:
            chunk = response.raw.read1(64 * 1024, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError:
            raise requests.Timeout("the token response stopped") from None
        except (urllib3.exceptions.ProtocolError, OSError):
            raise requests.ConnectionError("the token response was cut off") from None
        except urllib3.exceptions.HTTPError:
            raise requests.RequestException("the token response could not be read") from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return None
        chunks.append(chunk)


_local = threading.local()


def _http_session() -> requests.Session:
    """A pooled session per thread and per process (Celery's prefork children must not share
    their parent's sockets)."""
    pid = os.getpid()
    if getattr(_local, "pid", None) != pid:
        _local.session = requests.Session()
        _local.pid = pid
    return _local.session
