"""Refresh leases: at most one process talks to the provider about a credential at a time.

A lease is two columns of the credential row: ``lease_until``, computed and compared with
the *database's* clock (app servers' clocks may disagree), and ``lease_token``, a random
value that fences the holder's writes. Leases are taken with one conditional UPDATE, which
works the same on SQLite, PostgreSQL and MySQL and holds no transaction open; on PostgreSQL
and SQLite the same UPDATE also returns the credentials and their connector
(:func:`alloy_oauth.sql.lease_and_read`). A batch takes the leases of many credentials in
that one statement, under one token.

While their holder waits for the provider, a keeper thread extends the leases every third
of ``LEASE_SECONDS``, so a slow provider cannot outlive them; a holder that dies stops
extending them, and they end at most ``LEASE_SECONDS`` later.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from django.db import DatabaseError, connections, router, transaction
from django.db.models import Q, QuerySet

from .. import sql
from ..conf import app_settings
from ..models import Credential
from ..querysets import DatabaseNow, lease_free

logger = logging.getLogger(__name__)
T = TypeVar("T")


def database() -> str:
    """The alias every lease read and write uses: the primary, never a lagging replica."""
    return router.db_for_write(Credential)


def credentials() -> QuerySet[Credential]:
    return Credential.objects.using(database())


@dataclass(frozen=True)
class Lease:
    credential_id: int
    token: str


def new_token() -> str:
    return secrets.token_hex(16)


def expiry() -> Any:
    """When a lease taken or extended now ends, by the database's clock."""
    return DatabaseNow() + timedelta(seconds=app_settings.LEASE_SECONDS)


def acquire(ids: Sequence[int], conditions: Q, token: str) -> list[Credential]:
    """Take, under ``token``, the lease of every credential of ``ids`` that meets
    ``conditions`` and whose lease is free, and return those credentials with their
    connector (their tokens decrypted): one statement where the database can return rows
    from an UPDATE, else the UPDATE and a SELECT. A failure after the UPDATE releases what
    it took: nothing was sent yet."""
    if not ids:
        return []
    candidates = credentials().filter(conditions, lease_free())
    try:
        leased = sql.lease_and_read(candidates, ids, token=token, expiry=expiry())
        if leased is None:
            if not candidates.filter(pk__in=ids).update(lease_until=expiry(), lease_token=token):
                return []
            leased = list(credentials().select_related("connector")
                          .filter(lease_token=token, pk__in=ids))
    except BaseException:
        release_all(ids, token)
        raise
    return leased


def acquire_one(credential_id: int, conditions: Q) -> tuple[Lease, Credential] | None:
    """:func:`acquire` for one credential, under a token of its own."""
    lease = Lease(credential_id, new_token())
    leased = acquire([credential_id], conditions, lease.token)
    return (lease, leased[0]) if leased else None


def release(lease: Lease) -> None:
    mine(lease).update(lease_until=None, lease_token="")


def release_all(ids: Collection[int], token: str) -> None:
    credentials().filter(pk__in=list(ids), lease_token=token).update(
        lease_until=None, lease_token="")


def detach(lease: Lease) -> None:
    """Give the lease a token nobody keeps alive: it runs out by itself (the answer to a
    request that may have reached the provider never came)."""
    mine(lease).update(lease_token=new_token())


def mine(lease: Lease) -> QuerySet[Credential]:
    """The credential, only while ``lease`` is still its lease: for the holder's writes."""
    return credentials().filter(pk=lease.credential_id, lease_token=lease.token)


# --- keeping leases alive while their holder waits -------------------------------------------


class _Keeper:
    """One daemon thread per process extends the leases its threads are waiting on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: token -> (the ids it leases now, when to extend next)
        self._held: dict[str, tuple[Callable[[], Collection[int]], float]] = {}
        self._pid = 0

    @contextmanager
    def keep(self, token: str, ids: Callable[[], Collection[int]]) -> Iterator[None]:
        period = app_settings.LEASE_SECONDS / 3
        with self._lock:
            self._held[token] = (ids, time.monotonic() + period)
            if self._pid != os.getpid():  # first use in this process (or a forked child)
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="alloy_oauth-lease-keeper",
                                 daemon=True).start()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(token, None)

    def _run(self) -> None:
        while True:
            now = time.monotonic()
            with self._lock:
                due = [(token, ids) for token, (ids, at) in self._held.items() if at <= now]
                for token, ids in due:
                    self._held[token] = (ids, now + app_settings.LEASE_SECONDS / 3)
            for token, ids in due:
                held = list(ids())
                if not held:
                    continue
                try:
                    credentials().filter(pk__in=held, lease_token=token).update(
                        lease_until=expiry())
                except DatabaseError:
                    logger.exception("Could not extend the refresh leases of credential(s) %s.",
                                     ", ".join(map(str, held[:10])))
            with self._lock:
                idle = not self._held
            if idle:  # do not hold a database connection for nothing
                connections.close_all()
            time.sleep(min(1.0, app_settings.LEASE_SECONDS / 6))


_keeper = _Keeper()


def kept_alive(token: str, ids: Callable[[], Collection[int]]) -> Any:
    """``with kept_alive(token, ids):`` the leases under ``token`` of the credentials that
    ``ids()`` names at each moment are extended for as long as the block runs."""
    return _keeper.keep(token, ids)


# --- running outside the caller's transaction -------------------------------------------------


def outside_caller_transaction(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``func`` where its writes commit at once.

    Inside a caller's ``transaction.atomic()`` (ATOMIC_REQUESTS, say) a lease would stay
    invisible to other processes, and a rollback would throw away tokens the provider has
    already rotated. There, run in a thread with its own connection. A durable block is
    allowed only outside real transactions (Django's TestCase excepted), which is the test.
    """
    alias = database()
    if transaction.get_connection(alias).in_atomic_block:
        try:
            with transaction.atomic(using=alias, durable=True):
                pass
        except RuntimeError:
            return _in_thread(func, *args, **kwargs)
    return func(*args, **kwargs)


#: How long the helper thread waits for a row the caller's own transaction has locked.
LOCK_TIMEOUT_SECONDS = 5


def _in_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            connection = connections[database()]
            # If the caller's transaction holds the credential's row, waiting for it would
            # wait for ourselves: give up instead (SQLite gives up by itself after 5 s).
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")
            elif connection.vendor == "mysql":  # InnoDB waits 50 s by default
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"SET SESSION innodb_lock_wait_timeout = {LOCK_TIMEOUT_SECONDS}")
            box["value"] = func(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="alloy_oauth-refresh")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
