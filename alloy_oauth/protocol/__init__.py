"""OAuth 2.0 client mechanics (RFC 6749, RFC 7636): authorization URLs, PKCE, token requests.

Plain values in, plain values out: this package knows nothing of models, views or Celery, so
the callback view, the refresh engine and the admin's "Validate credential" all speak to
providers through the same few functions. One module per job:

- :mod:`.client`: what is sent (the authorization URL, state and PKCE, the token, refresh and
  revocation requests, client authentication);
- :mod:`.client_credentials`: the client credentials grant (RFC 6749 §4.4);
- :mod:`.transport`: the HTTP exchange, through which every request to a provider goes
  (one total deadline per request, the body's limits, transport failures);
- :mod:`.url_rules`: which URLs may carry OAuth traffic;
- :mod:`.connections`: the connections, pooled per thread and process, each socket operation
  ended by its request's deadline;
- :mod:`.tokens`: reading token responses into a :class:`TokenResponse`;
- :mod:`.errors`: the providers' error vocabulary and :class:`OAuthError`.

Everything public is importable from here (``from alloy_oauth import protocol``).

Why the HTTP exchange is written here and not delegated to ``requests_oauthlib.OAuth2Session``
is in ``docs/architecture.md`` (in short: its plain-http switch is a process-wide environment
variable, its default Basic auth skips the RFC 6749 §2.3.1 form-encoding, it logs request and
response bodies at DEBUG, and it cannot read the error pages real providers send).
"""

from __future__ import annotations

from .client import (
    CLIENT_SECRET_BASIC,
    CLIENT_SECRET_POST,
    PUBLIC_TOKEN_PARAMS,
    RESERVED_AUTHORIZATION_PARAMS,
    RESERVED_TOKEN_PARAMS,
    ClientConfig,
    ClientSecretBasic,
    authorization_url,
    basic_credentials,
    exchange_code,
    hash_state,
    new_pkce_pair,
    new_state,
    pkce_challenge,
    refresh_access_token,
    revoke_token,
    token_request,
)
from .client_credentials import client_credentials_token
from .errors import (
    CLIENT_ERRORS,
    IN_DOUBT_STATUSES,
    MAX_DESCRIPTION_CHARS,
    MAX_RETRY_AFTER,
    REAUTHORIZE_ERRORS,
    RETRYABLE_CLIENT_STATUSES,
    TRANSIENT_ERRORS,
    ErrorKind,
    OAuthError,
)
from .tokens import (
    FALLBACK_EXPIRES_IN,
    MAX_EXPIRES_IN,
    TokenResponse,
    parse_scopes,
    parse_token_response,
)
from .transport import MAX_RESPONSE_BYTES, Answer, probe_url, send_request
from .url_rules import insecure_url_problem, is_loopback_host, require_secure_url

__all__ = [
    "CLIENT_ERRORS", "CLIENT_SECRET_BASIC", "CLIENT_SECRET_POST", "FALLBACK_EXPIRES_IN",
    "IN_DOUBT_STATUSES", "MAX_DESCRIPTION_CHARS", "MAX_EXPIRES_IN", "MAX_RESPONSE_BYTES",
    "MAX_RETRY_AFTER", "PUBLIC_TOKEN_PARAMS", "REAUTHORIZE_ERRORS",
    "RESERVED_AUTHORIZATION_PARAMS", "RESERVED_TOKEN_PARAMS", "RETRYABLE_CLIENT_STATUSES",
    "TRANSIENT_ERRORS", "Answer", "ClientConfig", "ClientSecretBasic", "ErrorKind", "OAuthError",
    "TokenResponse", "authorization_url", "basic_credentials", "client_credentials_token",
    "exchange_code", "hash_state",
    "insecure_url_problem", "is_loopback_host", "new_pkce_pair", "new_state", "parse_scopes",
    "parse_token_response", "pkce_challenge", "probe_url", "refresh_access_token",
    "require_secure_url", "revoke_token", "send_request", "token_request",
]
