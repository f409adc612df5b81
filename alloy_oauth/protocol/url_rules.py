"""Which URLs may carry OAuth traffic: https, or plain http to a loopback host or with DEBUG
on. :func:`~.transport.send_request` applies the rule to every request; the connector form,
the system checks and the connection parameters apply it before."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .errors import ErrorKind, OAuthError

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
