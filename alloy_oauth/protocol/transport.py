"""The HTTP exchange with a provider: which URLs may carry OAuth traffic, one pooled session
per thread and process, the body read within a size limit and a deadline, and transport
failures turned into ``transient`` :class:`~.errors.OAuthError` (in doubt when the request may
have been sent)."""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3
from django.views.decorators.debug import sensitive_variables

from .errors import ErrorKind, OAuthError

#: A token response larger than this is not a token response.
MAX_RESPONSE_BYTES = 1024 * 1024


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


@dataclass(frozen=True)
class Answer:
    """What an endpoint answered, not yet judged (``body`` is ``None`` when oversized)."""

    status: int
    content_type: str
    body: bytes | None
    retry_after: str | None


@sensitive_variables()
def post_form(
    url: str,
    data: dict[str, str],
    *,
    auth: requests.auth.AuthBase | None,
    timeout: float,
    allow_http: bool,
    what: str,
) -> Answer:
    """POST ``data`` to one of the provider's endpoints. Transport failures become
    ``transient`` :class:`OAuthError`; the answer is not judged."""
    require_secure_url(url, allow_http=allow_http, what=f"The {what} URL")
    host = urlsplit(url).hostname
    try:
        response = _http_session().post(
            url,
            data=data,
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        )
        with response:
            body = _read_body(response, deadline=time.monotonic() + 2 * timeout)
    except requests.Timeout as exc:
        raise OAuthError(
            ErrorKind.TRANSIENT,
            f"The {what} endpoint at {host} did not answer within {timeout:g} seconds.",
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
    return Answer(response.status_code, response.headers.get("Content-Type", ""), body,
                  response.headers.get("Retry-After"))


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
