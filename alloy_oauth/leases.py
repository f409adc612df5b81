"""Refresh leases: at most one process talks to the provider about a credential at a time.

A lease is two columns of the credential row: ``lease_until``, computed and compared with
the *database's* clock (app servers' clocks may disagree), and ``lease_token``, a random
value that fences the holder's writes. It is taken with one conditional UPDATE, which works
the same on SQLite, PostgreSQL and MySQL and holds no transaction open; on PostgreSQL and
SQLite the same UPDATE also returns the credential and its connector
(:func:`acquire_and_read`).

While its holder waits for the provider, a keeper thread extends the lease every third of
``LEASE_SECONDS``, so a slow provider (DNS, trickling answers) cannot outlive it; a holder
that dies stops extending it, and the lease ends at most ``LEASE_SECONDS`` later.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from django.core.exceptions import EmptyResultSet
from django.db import DatabaseError, connections, router, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.db.models.functions import Now

from .conf import app_settings
from .models import Connector, Credential

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


class DatabaseNow(Now):
    """``Now()`` in UTC on every database. Django's ``Now()`` is MySQL's CURRENT_TIMESTAMP,
    the *session* time zone's wall clock (Django sets none: the server's, maybe local with
    DST), while Django stores UTC: a lease could look an hour longer after a DST change."""

    def as_mysql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(compiler, connection, template="UTC_TIMESTAMP(6)", **extra_context)


def free() -> Q:
    """No lease, or an expired one, by the database's clock."""
    return Q(lease_until__isnull=True) | Q(lease_until__lte=DatabaseNow())


def held() -> ExpressionWrapper:
    """Annotation: is the lease live right now, by the database's clock?"""
    return ExpressionWrapper(Q(lease_until__gt=DatabaseNow()), output_field=BooleanField())


def _expiry() -> Any:
    return DatabaseNow() + timedelta(seconds=app_settings.LEASE_SECONDS)


def try_acquire(credential_id: int, candidates: QuerySet[Credential]) -> Lease | None:
    """Take the lease of credential ``credential_id`` if it is free and among ``candidates``
    (the caller's conditions: refreshable, due, …)."""
    token = secrets.token_hex(16)
    taken = candidates.filter(free(), pk=credential_id).update(
        lease_until=_expiry(), lease_token=token
    )
    return Lease(credential_id, token) if taken else None


def acquire_and_read(
    credential_id: int, candidates: QuerySet[Credential]
) -> tuple[Lease, Credential] | None:
    """:func:`try_acquire`, then the credential with its connector (its tokens decrypted).
    On PostgreSQL and SQLite one statement, ``UPDATE … RETURNING`` the credential's and its
    connector's columns: a round trip fewer on every refresh. (MySQL and MariaDB have no
    ``UPDATE … RETURNING``.)"""
    alias = database()
    query = candidates.filter(free(), pk=credential_id).query
    if _update_can_return(connections[alias]) and _one_table_filter(query):
        lease = Lease(credential_id, secrets.token_hex(16))
        row = _take_returning_row(query, alias, lease.token)
        if row is None:
            return None
        read = lambda: _credential_from_row(query, alias, row)  # noqa: E731
    else:
        lease = try_acquire(credential_id, candidates)
        if lease is None:
            return None
        read = lambda: credentials().select_related("connector").get(pk=credential_id)  # noqa: E731
    try:
        return lease, read()
    except BaseException:
        release(lease)  # nothing was sent yet
        raise


def _update_can_return(connection: Any) -> bool:
    """Whether an UPDATE can return rows: on PostgreSQL, and on SQLite from 3.35.5 (3.35
    brought RETURNING; its first patch releases fixed defects in it; Django itself accepts
    3.31). MariaDB's INSERT can return rows but not its UPDATE; MySQL's neither."""
    return connection.vendor == "postgresql" or (
        connection.vendor == "sqlite"
        and connection.Database.sqlite_version_info >= (3, 35, 5))


def _one_table_filter(query: Any) -> bool:
    """Whether ``query`` is a plain filter of the credential table, which the statement's
    WHERE can take as it is (no join, slice, union or empty set)."""
    return (len(query.alias_map) == 1 and not query.is_sliced and not query.combinator
            and not query.is_empty())


@functools.cache
def _lease_and_read_sql(alias: str) -> tuple[str, tuple[Any, ...]]:
    """The lease-and-read statement with two holes (the lease's expiry, the WHERE), and the
    columns it returns: the credential's, then its connector's. They depend on the models
    only, so the SQL is made once per process and database.

    PostgreSQL joins the connector with ``UPDATE … FROM``; SQLite's RETURNING cannot name
    a FROM table, so there each connector column is a subquery by primary key."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    credential, connector = (quote(model._meta.db_table) for model in (Credential, Connector))
    columns = tuple(field.get_col(model._meta.db_table) for model in (Credential, Connector)
                    for field in model._meta.concrete_fields)
    compiler = credentials().query.get_compiler(using=alias)
    returning = [compiler.compile(column)[0] for column in columns]
    joined = f"{connector}.{quote('id')} = {credential}.{quote('connector_id')}"
    split = len(Credential._meta.concrete_fields)
    if connection.vendor == "postgresql":
        join = f"FROM {connector} WHERE {joined} AND"
    else:
        join = "WHERE"
        returning[split:] = [f"(SELECT {column} FROM {connector} WHERE {joined})"
                             for column in returning[split:]]
    sql = (f"UPDATE {credential} SET {quote('lease_until')} = {{expiry}}, "
           f"{quote('lease_token')} = %s {join} {{where}} RETURNING {', '.join(returning)}")
    return sql, columns


def _take_returning_row(query: Any, alias: str, token: str) -> tuple[Any, ...] | None:
    """Run the lease-and-read statement: the credential's and connector's columns, or None
    when the lease was not taken."""
    compiler = query.get_compiler(using=alias)
    try:
        where, where_params = compiler.compile(query.where)
    except EmptyResultSet:  # pk__in=[] and the like: nothing to take
        return None
    expiry, expiry_params = compiler.compile(_expiry().resolve_expression(query))
    sql = _lease_and_read_sql(alias)[0].format(expiry=expiry, where=where)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, [*expiry_params, token, *where_params])
        return cursor.fetchone()


def _credential_from_row(query: Any, alias: str, row: tuple[Any, ...]) -> Credential:
    """Models from the returned row, as the ORM makes them: each value through its field's
    and the database's converters (decrypting the tokens; for a foreign key, the converters
    of the key it points to). The converters are looked up on every call because some are
    methods of this thread's connection."""
    compiler = query.get_compiler(using=alias)
    columns = _lease_and_read_sql(alias)[1]
    values = next(iter(compiler.apply_converters([row], compiler.get_converters(columns))))
    split = len(Credential._meta.concrete_fields)
    credential, connector = (
        model.from_db(alias, [field.attname for field in model._meta.concrete_fields], part)
        for model, part in ((Credential, values[:split]), (Connector, values[split:]))
    )
    credential.connector = connector
    return credential


def release(lease: Lease) -> None:
    credentials().filter(pk=lease.credential_id, lease_token=lease.token).update(
        lease_until=None, lease_token=""
    )


def mine(lease: Lease) -> QuerySet[Credential]:
    """The credential, only while ``lease`` is still its lease: for the holder's writes."""
    return credentials().filter(pk=lease.credential_id, lease_token=lease.token)


# --- keeping a lease alive while its holder waits -------------------------------------------


class _Keeper:
    """One daemon thread per process extends the leases its threads are waiting on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[int, float]] = {}
        self._pid = 0

    @contextmanager
    def keep(self, lease: Lease) -> Iterator[None]:
        period = app_settings.LEASE_SECONDS / 3
        with self._lock:
            self._leases[lease.token] = (lease.credential_id, time.monotonic() + period)
            if self._pid != os.getpid():  # first use in this process (or a forked child)
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="alloy_oauth-lease-keeper",
                                 daemon=True).start()
        try:
            yield
        finally:
            with self._lock:
                self._leases.pop(lease.token, None)

    def _run(self) -> None:
        while True:
            now = time.monotonic()
            with self._lock:
                due = [(token, pk) for token, (pk, at) in self._leases.items() if at <= now]
                for token, pk in due:
                    self._leases[token] = (pk, now + app_settings.LEASE_SECONDS / 3)
            for token, pk in due:
                try:
                    credentials().filter(pk=pk, lease_token=token).update(lease_until=_expiry())
                except DatabaseError:
                    logger.exception("Could not extend the refresh lease of credential %s.", pk)
            with self._lock:
                idle = not self._leases
            if idle:  # do not hold a database connection for nothing
                connections.close_all()
            time.sleep(min(1.0, app_settings.LEASE_SECONDS / 6))


_keeper = _Keeper()


def kept_alive(lease: Lease) -> Any:
    """``with kept_alive(lease):`` the lease is extended for as long as the block runs."""
    return _keeper.keep(lease)


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
