"""The providers' error vocabulary: what a failed request means and who has to act.

RFC 6749 §5.2's error codes, the words real providers use instead, and the HTTP statuses that
decide before any body does; :class:`OAuthError` carries the verdict (its ``kind``) with a
sentence that never contains a secret.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from django.views.decorators.debug import sensitive_variables

from ..redaction import scrub

#: Longest provider error description kept (they end up in pages and ``last_error``).
MAX_DESCRIPTION_CHARS = 300
#: Longest Retry-After honoured, in seconds.
MAX_RETRY_AFTER = 24 * 3600


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


#: 4xx statuses that say "not now" rather than "no": request timeout (RFC 9110 §15.5.9), too
#: early (RFC 8470), and the client-closed-request of nginx-fronted providers.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 499})
#: A gateway's bad or late answer, or a proxy that gave up waiting (499): the provider behind
#: it may have taken the request.
IN_DOUBT_STATUSES = frozenset({499, 502, 504})


def _retry_later(status: int) -> bool:
    """Whether an HTTP status alone says "try again later", whatever the body says."""
    return status == 429 or status >= 500 or status in RETRYABLE_CLIENT_STATUSES


def error_code(params: Mapping[str, Any]) -> str:
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
def provider_error(
    status: int,
    params: Mapping[str, Any],
    retry_after: str | None,
    secret_values: Iterable[str | None],
) -> OAuthError:
    code = error_code(params)
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


def http_error(
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


