"""The HTTP exchange with a provider: every request to a provider goes through
:func:`send_request` (token, refresh and revocation requests, the pre-flight's probe,
Validate's test request).

What it guarantees:

- https only, except to loopback hosts or with DEBUG on (:func:`.url_rules.insecure_url_problem`);
  redirects are never followed;
- one total deadline per request (``timeout``, ``HTTP_TIMEOUT``): connecting, sending, the
  status line, the headers and the body all end by it, however slowly a server trickles them;
- at most :data:`MAX_RESPONSE_BYTES` of body, counted on the wire *and* after decompression
  (a deflate bomb allocates about that much, not what it expands to);
- a pooled session per thread and per process (Celery's prefork children must not share their
  parent's sockets), and no state shared between threads: many requests may run at once;
- transport failures become ``transient`` :class:`~.errors.OAuthError`, ``in_doubt`` unless
  the request certainly never left (:func:`_maybe_sent`);
- with an ``address_policy`` (the webhook URL policy's address rule, for URLs that staff
  chose), the host is resolved once, when connecting, and the connection goes only to an
  address the policy approves: no second, unchecked resolution (DNS rebinding). Such a request
  is never sent through a proxy, which would resolve the host itself: it is refused.

The connections it uses, and how they keep the deadline: :mod:`.connections`.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from django.views.decorators.debug import sensitive_variables

from .connections import (
    AddressPolicy,
    AddressRefused,
    address_policy as request_address_policy,
    environment,
    http_adapter,
    proxies,
    request_deadline,
)
from .errors import ErrorKind, OAuthError
from .url_rules import require_secure_url

#: The largest body read from a provider, on the wire and after decompression: a token
#: response or a revocation answer larger than this is not one.
MAX_RESPONSE_BYTES = 1024 * 1024
#: What the provider may compress its answer with: what :class:`_Decoder` decodes.
ACCEPT_ENCODING = "gzip, deflate"
_READ_SIZE = 64 * 1024


# --- one request --------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What an endpoint answered, not yet judged (``body`` is ``None`` when it was larger
    than :data:`MAX_RESPONSE_BYTES`, and empty when it was not read)."""

    status: int
    content_type: str
    body: bytes | None
    retry_after: str | None


@sensitive_variables()
def send_request(
    method: str,
    url: str,
    *,
    timeout: float,
    allow_http: bool,
    what: str | None = None,
    data: Mapping[str, str] | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    auth: requests.auth.AuthBase | None = None,
    read_body: bool = True,
    address_policy: AddressPolicy | None = None,
) -> Answer:
    """Send one request to a provider and return its answer, all within ``timeout`` seconds.

    ``what`` names the endpoint in messages ("token": "the token endpoint at <host>";
    without it, the host alone).
    Without ``read_body`` only the status and headers are awaited. Transport failures become
    ``transient`` :class:`OAuthError` (``in_doubt`` when the request may have been sent); the
    answer itself is not judged.
    With ``address_policy`` (an IP address → why no connection may go there, or ``None``) the
    connection goes only to addresses it approves, checked when connecting: a refusal is a
    ``configuration`` :class:`OAuthError`, and nothing is sent.
    """
    require_secure_url(url, allow_http=allow_http, what=f"The {what} URL" if what else "The URL")
    proxy = proxies(url)
    if address_policy is not None and proxy:
        raise OAuthError(ErrorKind.CONFIGURATION, (
            f"{_capitalized(_subject(what, url))} would be reached through a proxy, which "
            f"resolves its host unchecked: list the host in NO_PROXY."))
    deadline = time.monotonic() + timeout
    context = request_deadline.set(deadline)
    policy_context = request_address_policy.set(address_policy)
    try:
        request = _prepared(method, url, data, headers, auth)
        response = http_adapter().send(request, stream=True, timeout=timeout,
                                        verify=environment().verify, proxies=proxy)
        with response:
            body = _read_body(response, deadline) if read_body else b""
    except requests.RequestException as exc:
        raise _transport_failure(exc, _subject(what, url), timeout,
                                 late=time.monotonic() >= deadline) from None
    except AddressRefused as exc:
        raise OAuthError(ErrorKind.CONFIGURATION, (
            f"{_capitalized(_subject(what, url))} was not connected to: its host {exc}.")) from None
    finally:
        request_address_policy.reset(policy_context)
        request_deadline.reset(context)
    return Answer(response.status_code, response.headers.get("Content-Type", ""), body,
                  response.headers.get("Retry-After"))


@sensitive_variables()
def _prepared(method: str, url: str, data: Mapping[str, str] | bytes | None,
              headers: Mapping[str, str] | None,
              auth: requests.auth.AuthBase | None) -> requests.PreparedRequest:
    """The request as ``requests.Session`` would prepare it (its default headers, the body
    form-encoded), without what a session adds that a provider call never needs: cookies,
    hooks, redirects, netrc, and reading the environment again on every request."""
    request = requests.PreparedRequest()
    request.prepare_method(method)
    request.prepare_url(url, None)
    request.prepare_headers({**environment().headers, **(headers or {}),
                             "Accept-Encoding": ACCEPT_ENCODING})
    # A mapping is form-encoded (a token request), bytes go as they are (a webhook's body).
    request.prepare_body(dict(data) if isinstance(data, Mapping) else data, None)
    request.prepare_hooks({})
    if auth is not None:
        request.prepare_auth(auth, url)
    return request


def probe_url(url: str, *, timeout: float, allow_http: bool) -> int:
    """GET ``url`` without following redirects and return the HTTP status: does it answer?"""
    return send_request("GET", url, timeout=timeout, allow_http=allow_http,
                        read_body=False).status


def _subject(what: str | None, url: str) -> str:
    host = urlsplit(url).hostname
    return f"the {what} endpoint at {host}" if what else str(host)


def _transport_failure(
    exc: requests.RequestException, subject: str, timeout: float, *, late: bool
) -> OAuthError:
    sent = _maybe_sent(exc)
    if late or isinstance(exc, requests.Timeout):
        message = f"{subject} did not answer within {timeout:g} seconds."
    elif isinstance(exc, requests.ConnectionError):
        message = (f"The connection to {subject} broke before an answer came." if sent
                   else f"Could not connect to {subject}.")
    else:
        message, sent = f"The request to {subject} failed ({type(exc).__name__}).", True
    return OAuthError(ErrorKind.TRANSIENT, _capitalized(message), in_doubt=sent)


def _capitalized(message: str) -> str:
    return message[:1].upper() + message[1:]


def _maybe_sent(exc: requests.RequestException) -> bool:
    """False only when the connection was never made (so the request was never sent)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return not isinstance(reason, urllib3.exceptions.NewConnectionError)


# --- the body -----------------------------------------------------------------------------


def _read_body(response: requests.Response, deadline: float) -> bytes | None:
    """The body, decoded, or ``None`` when it exceeds :data:`MAX_RESPONSE_BYTES` on the wire
    or decoded. Read undecoded, one receive at a time (``read1``), and decoded here with a
    bound on each step's output: urllib3 before 2.6 inflates a whole chunk at once."""
    decoder = _Decoder(response.headers.get("Content-Encoding", ""))
    chunks: list[bytes] = []
    received = size = 0
    while True:
        if time.monotonic() >= deadline:  # also checked by the socket; this is cheaper
            raise requests.Timeout("the answer took too long")
        try:
            raw = response.raw.read1(_READ_SIZE, decode_content=False)
        except urllib3.exceptions.ReadTimeoutError:
            raise requests.Timeout("the answer stopped") from None
        except (urllib3.exceptions.ProtocolError, OSError):
            raise requests.ConnectionError("the answer was cut off") from None
        except urllib3.exceptions.HTTPError:
            raise requests.RequestException("the answer could not be read") from None
        received += len(raw)
        if received > MAX_RESPONSE_BYTES:
            return None
        chunk = decoder.decode(raw, limit=MAX_RESPONSE_BYTES - size + 1)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return None
        chunks.append(chunk)
        if not raw:
            return b"".join(chunks)


class _Decoder:
    """``Content-Encoding`` undone incrementally, never producing more than asked for per
    call: identity, ``gzip`` (several members too) and ``deflate`` (zlib-wrapped, or raw as
    some servers send it). Anything else raises ``ContentDecodingError``: it was not asked
    for (:data:`ACCEPT_ENCODING`)."""

    def __init__(self, content_encoding: str) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c not in ("", "identity")]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise requests.exceptions.ContentDecodingError("unrequested content encoding")
        self._coding = codings[0] if codings else None
        self._inflater = self._new_inflater()
        #: The deflate input seen before any output (bounded by the wire limit).
        self._first: bytes | None = b""

    def _new_inflater(self) -> Any:
        if self._coding == "deflate":
            return zlib.decompressobj(zlib.MAX_WBITS)
        return zlib.decompressobj(16 + zlib.MAX_WBITS)

    def decode(self, data: bytes, *, limit: int) -> bytes:
        """Up to ``limit`` bytes of output for ``data`` (``b""`` at the end of the body); the
        caller stops once it has ``limit`` bytes, so no input is ever left over unread."""
        if self._coding is None:
            return data
        try:
            if not data:
                return self._inflater.flush() if not self._inflater.eof else b""
            output = self._inflate(data, limit)
        except zlib.error:
            raise requests.exceptions.ContentDecodingError("undecodable body") from None
        return output

    def _inflate(self, data: bytes, limit: int) -> bytes:
        if self._coding == "deflate" and self._first is not None:
            # Until the first output, the body may still turn out to be raw deflate.
            self._first += data
            try:
                output = self._inflater.decompress(data, limit)
            except zlib.error:  # no zlib header: raw deflate, as some servers send it
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                data, self._first = self._first, None
            else:
                if output:
                    self._first = None
                return output
        output = self._inflater.decompress(data, limit)
        # A gzip body may hold several members, one after another.
        while (self._coding != "deflate" and self._inflater.eof and self._inflater.unused_data
               and len(output) < limit):
            rest = self._inflater.unused_data
            self._inflater = self._new_inflater()
            output += self._inflater.decompress(rest, limit - len(output))
        return output
