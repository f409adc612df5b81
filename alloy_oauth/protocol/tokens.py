"""Reading token responses: whatever a token endpoint answered becomes a
:class:`TokenResponse` or a classified :class:`~.errors.OAuthError`, never another exception."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from django.views.decorators.debug import sensitive_variables

from .errors import ErrorKind, OAuthError, error_code, http_error, provider_error
from .transport import MAX_RESPONSE_BYTES

_TOKEN_FIELDS_WITH_COLUMNS = frozenset({"access_token", "refresh_token"})
#: Printable ASCII without spaces: what may follow "Bearer " in a header (RFC 6750 §2.1 is
#: stricter; real providers are not).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
#: RFC 6749 §7.1 token types ("Bearer", "MAC", "DPoP", "N_A", …).
_TOKEN_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,40}")
#: An ``expires_in`` of this many seconds (about 317 years) or more is no lifetime.
MAX_EXPIRES_IN = 10**10
#: The lifetime assumed when a provider's ``expires_in`` is a number but no lifetime (negative,
#: zero, not finite, absurdly large) and the connector has no ``default_expires_in``:
#: short, so that the token is refreshed soon rather than taken as valid for ever.
FALLBACK_EXPIRES_IN = 15 * 60


@dataclass(frozen=True)
class TokenResponse:
    """A successful token response, normalised (RFC 6749 §5.1)."""

    access_token: str = field(repr=False)
    token_type: str
    issued_at: datetime
    refresh_token: str | None = field(default=None, repr=False)
    #: Lifetime in seconds; ``None`` when the provider did not say (or said nonsense).
    expires_in: int | None = None
    #: The number the provider sent as ``expires_in`` when it is no lifetime (``"-5"``,
    #: ``"0"``, ``"inf"``, ``"nan"``, ``"1e+308"``); ``None`` when it sent a lifetime, none, or
    #: no number. Unlike a missing one, such a lifetime is not "unknown": see
    #: :data:`FALLBACK_EXPIRES_IN`.
    invalid_expires_in: str | None = None
    #: Granted scopes; ``None`` when the provider omitted ``scope`` (= the requested scopes).
    scopes: list[str] | None = None
    #: Lifetime of the refresh token, when the provider says (GitHub Apps, Keycloak, …).
    refresh_token_expires_in: int | None = None
    #: Every other member of the response (``id_token``, provider extras…).
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def expires_in_note(self) -> str:
        """For the credential's event: that the expiry is assumed, and why ("" when not)."""
        if self.invalid_expires_in is None:
            return ""
        return (f"The provider's expires_in ({self.invalid_expires_in}) is not a lifetime: "
                "a default one was assumed.")


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
    params, looks_like_html = parse_body(content_type, body)
    if params is not None and error_code(params):
        raise provider_error(status, params, retry_after, secret_values)
    if 300 <= status < 400:
        raise OAuthError(
            ErrorKind.MALFORMED,
            f"The token endpoint redirected (HTTP {status}); enter the final token URL.",
            status=status,
        )
    if status >= 400:
        raise http_error(status, looks_like_html, retry_after)
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
    if isinstance(refresh_token, str) and not refresh_token.isprintable():
        # Control characters, or a lone surrogate ("RT-\ud800", valid JSON) that no UTF-8
        # encoder, so no encryption, takes: never let it reach one (nor a message).
        raise OAuthError(
            ErrorKind.MALFORMED,
            "The token endpoint's refresh_token contains characters no token may contain.",
            status=status,
        )
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
        invalid_expires_in=_invalid_lifetime(params.get("expires_in")),
        scopes=scopes,
        refresh_token_expires_in=_seconds(params.get("refresh_token_expires_in", params.get(
            "refresh_expires_in", params.get("x_refresh_token_expires_in")))),  # (Intuit's)
        extra={k: v for k, v in params.items() if k not in _TOKEN_FIELDS_WITH_COLUMNS},
    )


def parse_body(content_type: str, body: bytes) -> tuple[dict[str, Any] | None, bool]:
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


def _seconds(value: Any) -> int | None:
    """``expires_in`` as sent by real providers: int, float or numeric string; else unknown."""
    number = _number(value)
    if number is not None and number == number and 0 < number < MAX_EXPIRES_IN:
        return int(number)
    return None


def _invalid_lifetime(value: Any) -> str | None:
    """The number sent, when ``value`` is a number but no lifetime. Anything else that is not
    a lifetime (``"never"``, ``null``, a list) still means "not said", as it always has."""
    number = _number(value)
    if number is None or _seconds(number) is not None:
        return None
    try:
        return f"{number:g}"
    except OverflowError:  # an int beyond any float
        return "a huge number"


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return value if isinstance(value, (int, float)) else None


