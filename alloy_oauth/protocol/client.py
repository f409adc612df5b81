"""What the client sends: the authorization URL with state and PKCE, and the token, refresh
and revocation requests with the client's authentication (RFC 6749, RFC 7636, RFC 7009)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import requests
from django.views.decorators.debug import sensitive_variables

from .errors import ErrorKind, OAuthError, error_code, http_error, provider_error
from .tokens import TokenResponse, parse_body, parse_token_response
from .transport import Answer, send_request

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
#: Extra token parameters known to hold no secret: what an error message is usually about,
#: so their values stay readable. Every other one (a client_assertion, a subject_token, an
#: API key) is scrubbed from what the provider says.
PUBLIC_TOKEN_PARAMS = frozenset({
    "audience", "resource", "scope", "prompt", "access_type", "tenant", "response_type",
    "response_mode", "include_granted_scopes", "duration", "user_scope", "approval_prompt",
    "client_assertion_type", "requested_token_type", "subject_token_type", "format",
})
CLIENT_SECRET_BASIC = "client_secret_basic"
CLIENT_SECRET_POST = "client_secret_post"


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
        request.headers["Authorization"] = basic_credentials(self.client_id, self._client_secret)
        return request

    def __repr__(self) -> str:
        return f"ClientSecretBasic(client_id={self.client_id!r})"


@sensitive_variables()
def basic_credentials(client_id: str, client_secret: str) -> str:
    """The ``Authorization`` header value of ``client_secret_basic``: id and secret
    form-urlencoded, then joined by a colon and base64-encoded (RFC 6749 §2.3.1)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


@sensitive_variables()
def client_secret_forms(client: ClientConfig) -> list[str]:
    """The client secret in every form a provider (or a proxy in front of it) may echo back
    in an error description: itself, the Basic header value as sent, its base64 payload
    (padded or not) and the form-encoded ``id:secret`` pair inside it. All are scrubbed."""
    header = basic_credentials(client.client_id, client.client_secret)
    payload = header.removeprefix("Basic ")
    pair = base64.b64decode(payload).decode()
    return [client.client_secret, header, payload, payload.rstrip("="), pair]


# --- state and PKCE ---------------------------------------------------------------


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
            secret_values=[*client_secret_forms(client), *secret_values,
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
    params, looks_like_html = parse_body(answer.content_type, answer.body)
    if params is not None and error_code(params):
        raise provider_error(answer.status, params, answer.retry_after,
                             [*client_secret_forms(client), token])
    # Only an actual page: Django (django-oauth-toolkit too) labels an empty body text/html.
    if 200 <= answer.status < 300 and answer.body.decode("utf-8", "replace").lstrip(
            "\ufeff \t\r\n").startswith("<"):
        raise OAuthError(ErrorKind.MALFORMED, f"The revocation endpoint answered HTTP "
                         f"{answer.status} with an HTML page; check the revocation URL.",
                         status=answer.status)
    if 200 <= answer.status < 300:
        return
    raise http_error(answer.status, looks_like_html, answer.retry_after, what="revocation")


@sensitive_variables()
def _post_form(client: ClientConfig, url: str, data: dict[str, str], *, what: str) -> Answer:
    """POST ``data`` to one of the provider's endpoints with the client's authentication."""
    auth: requests.auth.AuthBase | None = None
    if client.auth_method == CLIENT_SECRET_POST:
        data = {**data, "client_id": client.client_id, "client_secret": client.client_secret}
    else:
        auth = ClientSecretBasic(client.client_id, client.client_secret)
    return send_request("POST", url, data=data, auth=auth,
                        headers={"Accept": "application/json"}, timeout=client.timeout,
                        allow_http=client.allow_http, what=what)
