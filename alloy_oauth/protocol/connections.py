"""The connections to providers: pooled per thread and per process, and every blocking
operation on them ended by the deadline of the request using them (:data:`request_deadline`,
set by :func:`~.transport.send_request`).

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

The address policy (:data:`address_policy`, for requests to URLs that a staff user or an
operator chose: webhooks, Fill from issuer) is applied here too, when connecting, to the very
addresses connected to: the host name is resolved once (:func:`approved_addresses`), and the
socket is connected to one of those addresses, not to the name, which the system resolver could
answer differently a moment later (DNS rebinding). TLS still verifies the certificate against
the host name: only ``_dns_host``, urllib3's name for "where the socket goes", is replaced while
connecting.
"""

from __future__ import annotations

import functools
import io
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError, NewConnectionError

#: When the current thread's request must be over (``time.monotonic()``), if one is running.
request_deadline: ContextVar[float | None] = ContextVar("alloy_oauth_deadline", default=None)

#: Why a connection may not go to an IP address, or ``None`` when it may.
AddressPolicy = Callable[[str], str | None]
#: The policy of the current thread's request, if it has one (set by
#: :func:`~.transport.send_request`).
address_policy: ContextVar[AddressPolicy | None] = ContextVar("alloy_oauth_address_policy",
                                                              default=None)


class AddressRefused(Exception):
    """The request's address policy refuses an address its host resolves to; ``str()`` says
    why (the policy's words). Not an ``OSError``: urllib3 must not retry or wrap it."""


def approved_addresses(host: str, port: int, policy: AddressPolicy) -> list[str]:
    """The addresses ``host`` resolves to, resolved once, after ``policy`` approved every one
    of them (one refused address refuses the host: which one a connection would take is not
    ours to choose). Raises :class:`AddressRefused`, or ``socket.gaierror``."""
    addresses = list(dict.fromkeys(
        info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))
    for address in addresses:
        problem = policy(address)
        if problem:
            raise AddressRefused(problem)
    return addresses


def _time_left(cap: float | None) -> float | None:
    """The timeout for the next socket operation: what is left of the request's deadline, at
    most ``cap``; raises ``TimeoutError`` once nothing is left."""
    deadline = request_deadline.get()
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
    """Mixed into urllib3's connection classes: connecting takes at most the time left, the
    connected socket is a :class:`_DeadlineSocket`, and with an :data:`address_policy` the
    socket goes only to addresses it approves."""

    timeout: Any
    sock: Any
    _dns_host: str
    host: str
    port: int

    def connect(self) -> None:
        self._shorten_timeout()
        super().connect()  # type: ignore[misc]
        self.sock = _DeadlineSocket(self.sock)

    def _shorten_timeout(self) -> None:
        if request_deadline.get() is not None:
            cap = self.timeout if isinstance(self.timeout, (int, float)) else None
            self.timeout = _time_left(cap)

    def _new_conn(self) -> Any:
        policy = address_policy.get()
        if policy is None:
            return super()._new_conn()  # type: ignore[misc]
        name = self._dns_host
        try:
            addresses = approved_addresses(name, self.port, policy)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        failure: NewConnectionError | None = None
        try:
            for address in addresses:  # the next one when an address refuses the connection
                self._dns_host = address
                self._shorten_timeout()  # the next address only gets what is left
                try:
                    return super()._new_conn()  # type: ignore[misc]
                except NewConnectionError as exc:
                    failure = exc
            raise failure  # type: ignore[misc]  # getaddrinfo answers at least one address
        finally:
            self._dns_host = name  # TLS verifies the certificate against self.host, the name

    def request(self, *args: Any, **kwargs: Any) -> None:
        # A kept-alive connection may have been opened for a request without the policy (a
        # provider call to the same host): the address it is connected to is checked again,
        # and a refused one is dropped, so that this request connects anew, checked.
        policy = address_policy.get()
        if policy is not None and self.sock is not None:
            try:
                refused = policy(self.sock.getpeername()[0]) is not None
            except OSError:
                refused = True
            if refused:
                self.close()  # type: ignore[attr-defined]
        super().request(*args, **kwargs)  # type: ignore[misc]


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


def http_adapter() -> HTTPAdapter:
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
class Environment:
    #: requests' default headers (User-Agent, Accept, Connection, …), as a session sends them.
    headers: Mapping[str, str]
    #: requests' CA bundle, or the one ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` names.
    verify: str | bool
    #: Whether any proxy is configured (``HTTPS_PROXY`` and the like).
    proxied: bool


@functools.cache
def environment() -> Environment:
    """What a ``requests.Session`` takes from the environment, read once per process."""
    return Environment(
        headers=dict(requests.utils.default_headers()),
        verify=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True,
        proxied=bool(urllib.request.getproxies()),
    )


def proxies(url: str) -> dict[str, str]:
    """The proxy for ``url``, as requests picks it from the environment (``NO_PROXY``
    included); nothing to look up when no proxy is configured, the usual case."""
    return requests.utils.get_environ_proxies(url) if environment().proxied else {}
