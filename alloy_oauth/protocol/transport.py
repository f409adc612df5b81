"""The HTTP exchange with a provider: every request to a provider goes through
:func:`send_request` (token, refresh and revocation requests, the pre-flight's probe,
Validate's test request).

What it guarantees:

- https only, except to loopback hosts or with DEBUG on (:func:`insecure_url_problem`);
  redirects are never followed;
- one total deadline per request (``timeout``, ``HTTP_TIMEOUT``): connecting, sending, the
  status line, the headers and the body all end by it, however slowly a server trickles them;
- at most :data:`MAX_RESPONSE_BYTES` of body, counted on the wire *and* after decompression
  (a deflate bomb allocates about that much, not what it expands to);
- a pooled session per thread and per process (Celery's prefork children must not share their
  parent's sockets), and no state shared between threads: many requests may run at once;
- transport failures become ``transient`` :class:`~.errors.OAuthError`, ``in_doubt`` unless
  the request certainly never left (:func:`_maybe_sent`).

How the deadline is kept: requests' and urllib3's timeouts apply to each socket operation, so a
server sending one header byte a second never trips them. Each connection's socket is wrapped
(:class:`_DeadlineSocket`, installed by the connection classes of our own pools) so that every
blocking operation on it is given the time left until the request's deadline, which the
request's thread holds in a context variable. The alternative, a process-wide watchdog thread
that shuts down the sockets of late requests, was not chosen: it needs a registry shared by
every thread (a lock on each request of the refresh engine's thread pool), a thread to restart
in each forked Celery child, and it would shut down sockets from another thread while their
owner may be closing them, and their descriptors already reused by a new connection. Here the
deadline is only ever read by the thread that owns the connection, and a late request ends
with an ordinary socket timeout.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import os
import socket
import threading
import time
import urllib.request
import zlib
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter

from .errors import ErrorKind, OAuthError

#: The largest body read from a provider, on the wire and after decompression: a token
#: response or a revocation answer larger than this is not one.
MAX_RESPONSE_BYTES = 1024 * 1024
#: What the provider may compress its answer with: what :class:`_Decoder` decodes.
ACCEPT_ENCODING = "gzip, deflate"
_READ_SIZE = 64 * 1024


# --- which URLs may carry OAuth traffic ---------------------------------------------------


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
) -> Answer:
    """Send one request to a provider and return its answer, all within ``timeout`` seconds.

    ``what`` names the endpoint in messages ("token": "the token endpoint at <host>";
    without it, the host alone).
    Without ``read_body`` only the status and headers are awaited. Transport failures become
    ``transient`` :class:`OAuthError` (``in_doubt`` when the request may have been sent); the
    answer itself is not judged.
    """
    require_secure_url(url, allow_http=allow_http, what=f"The {what} URL" if what else "The URL")
    deadline = time.monotonic() + timeout
    context = _deadline.set(deadline)
    try:
        request = _prepared(method, url, data, headers, auth)
        response = _http_adapter().send(request, stream=True, timeout=timeout,
                                        verify=_environment().verify, proxies=_proxies(url))
        with response:
            body = _read_body(response, deadline) if read_body else b""
    except requests.RequestException as exc:
        raise _transport_failure(exc, _subject(what, url), timeout,
                                 late=time.monotonic() >= deadline) from None
    finally:
        _deadline.reset(context)
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
    request.prepare_headers({**_environment().headers, **(headers or {}),
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
    return OAuthError(ErrorKind.TRANSIENT, message[:1].upper() + message[1:], in_doubt=sent)


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


# --- the deadline on every socket operation -----------------------------------------------

#: When the current thread's request must be over (``time.monotonic()``), if one is running.
_deadline: ContextVar[float | None] = ContextVar("alloy_oauth_deadline", default=None)


def _time_left(cap: float | None) -> float | None:
    """The timeout for the next socket operation: what is left of the request's deadline, at
    most ``cap``; raises ``TimeoutError`` once nothing is left."""
    deadline = _deadline.get()
    if deadline is None:
        return cap
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left if cap is None else min(left, cap)


class _DeadlineSocket:
    """A connected socket (plain or TLS) whose every blocking operation ends by the deadline
    of the request using it. http.client reads the status line, the headers and the body
    through :meth:`makefile`, whose reads come back here."""

    __slots__ = ("_sock", "_timeout")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        #: What urllib3 asked for (per operation); the deadline may cut it shorter.
        self._timeout = sock.gettimeout()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def settimeout(self, value: float | None) -> None:
        self._timeout = value
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._timeout

    def _arm(self) -> None:
        self._sock.settimeout(_time_left(self._timeout))

    def recv_into(self, *args: Any) -> int:
        self._arm()
        return self._sock.recv_into(*args)

    def recv(self, *args: Any) -> bytes:
        self._arm()
        return self._sock.recv(*args)

    def send(self, data: Any, *args: Any) -> int:
        self._arm()
        return self._sock.send(data, *args)

    def sendall(self, data: Any) -> None:
        # One send per wait, each given the time left (ssl.SSLSocket.sendall would give each
        # of its sends the whole timeout again).
        with memoryview(data) as view, view.cast("B") as octets:
            sent = 0
            while sent < len(octets):
                sent += self.send(octets[sent:])

    def makefile(self, mode: str = "r", buffering: int | None = None, **kwargs: Any) -> Any:
        if mode != "rb":
            return self._sock.makefile(mode, buffering, **kwargs)
        if hasattr(self._sock, "_io_refs"):  # as socket.makefile does: closed with the last file
            self._sock._io_refs += 1
        return io.BufferedReader(socket.SocketIO(self, "rb"),  # type: ignore[arg-type]
                                 buffering or io.DEFAULT_BUFFER_SIZE)


class _DeadlineConnection:
    """Mixed into urllib3's connection classes: connecting takes at most the time left, and
    the connected socket is a :class:`_DeadlineSocket`."""

    timeout: Any
    sock: Any

    def connect(self) -> None:
        if _deadline.get() is not None:
            cap = self.timeout if isinstance(self.timeout, (int, float)) else None
            self.timeout = _time_left(cap)
        super().connect()  # type: ignore[misc]
        self.sock = _DeadlineSocket(self.sock)


@functools.cache
def _bounded_pool(pool_class: type) -> type:
    """``pool_class`` whose connections keep the deadline (works for every scheme and for
    urllib3's proxy and SOCKS pools alike)."""
    if issubclass(pool_class.ConnectionCls, _DeadlineConnection):
        return pool_class
    connection_class = type(pool_class.ConnectionCls.__name__,
                            (_DeadlineConnection, pool_class.ConnectionCls), {})
    return type(pool_class.__name__, (pool_class,), {"ConnectionCls": connection_class})


def _bound(manager: Any) -> Any:
    manager.pool_classes_by_scheme = {
        scheme: _bounded_pool(pool_class)
        for scheme, pool_class in manager.pool_classes_by_scheme.items()
    }
    return manager


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter with pools of :class:`_DeadlineConnection` (directly and through
    proxies taken from the environment)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _bound(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        return _bound(super().proxy_manager_for(proxy, **kwargs))


_local = threading.local()


def _http_adapter() -> HTTPAdapter:
    """The connection pools of this thread and process (Celery's prefork children must not
    share their parent's sockets). An adapter rather than a ``requests.Session``: a session
    costs about as much again as the request itself (a token request takes 0.6 ms of CPU here
    instead of 1.35 ms), most of it reading the environment for proxies on every request."""
    pid = os.getpid()
    if getattr(_local, "pid", None) != pid:
        _local.adapter = _DeadlineAdapter()
        _local.pid = pid
    return _local.adapter


@dataclass(frozen=True)
class _Environment:
    #: requests' default headers (User-Agent, Accept, Connection, …), as a session sends them.
    headers: Mapping[str, str]
    #: requests' CA bundle, or the one ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` names.
    verify: str | bool
    #: Whether any proxy is configured (``HTTPS_PROXY`` and the like).
    proxied: bool


@functools.cache
def _environment() -> _Environment:
    """What a ``requests.Session`` takes from the environment, read once per process."""
    return _Environment(
        headers=dict(requests.utils.default_headers()),
        verify=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True,
        proxied=bool(urllib.request.getproxies()),
    )


def _proxies(url: str) -> dict[str, str]:
    """The proxy for ``url``, as requests picks it from the environment (``NO_PROXY``
    included); nothing to look up when no proxy is configured, the usual case."""
    return requests.utils.get_environ_proxies(url) if _environment().proxied else {}
