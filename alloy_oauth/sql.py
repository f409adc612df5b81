"""The statements the ORM cannot write, all in one place.

The refresh engine's hot path is SQL the ORM has no words for: an ``UPDATE … RETURNING``
that takes leases and reads the credentials with their connector in one round trip, and a
data-modifying CTE that writes many outcomes and their events in one. Key rotation reads
and rewrites ciphertext as stored. They are built from the models' own metadata and the
ORM's own compiler and converters (``Query.alias_map``, ``is_sliced``, ``combinator``,
``Field.get_col``, ``cast_db_type``, ``SQLCompiler.compile``, ``get_converters`` and
``apply_converters``: what ``RawQuerySet`` uses, not documented API), so
``tests/unit/test_sql.py`` checks each statement against the ORM, and each internal it relies
on, on every Django version of the tox matrix: a change of those internals fails there,
loudly, not in production.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import Expression, QuerySet

from .models import Connector, Credential, CredentialEvent


def update_can_return(connection: Any) -> bool:
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


# --- take leases and read, in one statement -------------------------------------------------


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
    compiler = Credential.objects.using(alias).query.get_compiler(using=alias)
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


def lease_and_read(
    candidates: QuerySet[Credential], ids: Sequence[int], *, token: str, expiry: Expression
) -> list[Credential] | None:
    """Set the lease (``token``, until ``expiry``) of those of ``ids`` that ``candidates``
    holds, and return them with their connector, as the ORM would load them, in one
    statement. ``None`` when this database has no ``UPDATE … RETURNING`` or ``candidates`` is
    not a plain filter of the credential table: then the caller takes the two-statement way.

    On PostgreSQL the ids go as one array (``= ANY(%s)``): the statement's text is then the
    same for any number of them, and the driver parses it once per process."""
    alias = candidates.db
    connection = connections[alias]
    postgresql = connection.vendor == "postgresql"
    if not postgresql:
        candidates = candidates.filter(pk__in=ids)
    query = candidates.query
    if not (update_can_return(connection) and _one_table_filter(query)):
        return None
    compiler = query.get_compiler(using=alias)
    try:
        where, where_params = compiler.compile(query.where)
    except EmptyResultSet:  # pk__in=[] and the like: nothing to take
        return []
    if postgresql:
        key = f"{connection.ops.quote_name(Credential._meta.db_table)}." \
              f"{connection.ops.quote_name(Credential._meta.pk.column)}"
        where, where_params = f"{where} AND {key} = ANY(%s)", [*where_params, list(ids)]
    expiry_sql, expiry_params = compiler.compile(expiry.resolve_expression(query))
    sql = _lease_and_read_sql(alias)[0].format(expiry=expiry_sql, where=where)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*expiry_params, token, *where_params])
        rows = cursor.fetchall()
    return _credentials_from_rows(query, alias, rows) if rows else []


def _credentials_from_rows(query: Any, alias: str, rows: list[tuple[Any, ...]]) -> list[Credential]:
    """Models from the returned rows, as the ORM makes them: each value through its field's
    and the database's converters (decrypting the tokens; for a foreign key, the converters
    of the key it points to). The converters are looked up on every call because some are
    methods of this thread's connection."""
    compiler = query.get_compiler(using=alias)
    columns = _lease_and_read_sql(alias)[1]
    split = len(Credential._meta.concrete_fields)
    credential_names = [field.attname for field in Credential._meta.concrete_fields]
    connector_names = [field.attname for field in Connector._meta.concrete_fields]
    credentials = []
    for values in compiler.apply_converters(rows, compiler.get_converters(columns)):
        credential = Credential.from_db(alias, credential_names, values[:split])
        credential.connector = Connector.from_db(alias, connector_names, values[split:])
        credentials.append(credential)
    return credentials


# --- write outcomes and their events, in one statement --------------------------------------


@dataclass(frozen=True)
class FencedUpdate:
    """One credential's new ``values``, to be written only where the ``fence`` columns still
    hold the given values (the lease token, the version read), with the event to record if
    it was written."""

    credential_id: int
    fence: tuple[Any, ...]
    values: tuple[Any, ...]
    event_kind: str
    event_time: Any
    event_detail: str


def update_with_events(
    alias: str, *, fence: Sequence[str], columns: Sequence[str],
    updates: Sequence[FencedUpdate],
) -> set[int]:
    """PostgreSQL: apply ``updates`` (each sets ``columns`` where ``fence`` holds) and insert
    the event of each row written, as one data-modifying CTE over the rows: one round trip
    and one commit for any number of credentials. Returns the ids written."""
    if not updates:
        return set()
    connection = connections[alias]
    many = len(updates) > 1
    sql, fields = _update_with_events_sql(alias, tuple(fence), tuple(columns), many)
    rows = [(update.credential_id, *update.fence, *update.values, update.event_kind,
             update.event_time, update.event_detail) for update in updates]
    if many:  # one array per column
        params: list[Any] = [[field.get_db_prep_save(value, connection) for value in column]
                             for field, column in zip(fields, zip(*rows), strict=True)]
    else:
        params = [field.get_db_prep_save(value, connection)
                  for field, value in zip(fields, rows[0], strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


@functools.cache
def _update_with_events_sql(alias: str, fence: tuple[str, ...], columns: tuple[str, ...],
                            many: bool) -> tuple[str, list[Any]]:
    """The statement of :func:`update_with_events` and the fields of its parameters, made
    once per process and shape. One row comes as a ``VALUES`` row; many as one array per
    column, unnested into rows, so that the statement's text is the same for any number of
    them (the driver parses it once) without making the common single refresh pay for
    arrays."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    event = CredentialEvent._meta
    fields = [Credential._meta.pk, *(Credential._meta.get_field(name) for name in fence),
              *(Credential._meta.get_field(name) for name in columns),
              *(event.get_field(name) for name in ("kind", "created_at", "detail"))]
    names = [f"c{index}" for index in range(len(fields))]
    casts = [field.cast_db_type(connection) for field in fields]
    if many:
        rows = "SELECT * FROM unnest(" + ", ".join(f"%s::{cast}[]" for cast in casts) + ")"
    else:
        rows = "VALUES (" + ", ".join(f"%s::{cast}" for cast in casts) + ")"
    key = names[0]
    fenced = names[1:1 + len(fence)]
    assigned = names[1 + len(fence):1 + len(fence) + len(columns)]
    kind, created, detail = names[-3:]
    credential_key = quote(Credential._meta.pk.column)
    sets = ", ".join(f"{quote(Credential._meta.get_field(name).column)} = v.{value}"
                     for name, value in zip(columns, assigned, strict=True))
    conditions = " AND ".join(
        [f"c.{credential_key} = v.{key}"]
        + [f"c.{quote(Credential._meta.get_field(name).column)} = v.{value}"
           for name, value in zip(fence, fenced, strict=True)])
    event_credential = quote(event.get_field("credential").column)
    sql = (
        f"WITH v ({', '.join(names)}) AS ({rows}), "
        f"updated AS (UPDATE {quote(Credential._meta.db_table)} AS c SET {sets} FROM v "
        f"WHERE {conditions} RETURNING c.{credential_key}) "
        f"INSERT INTO {quote(event.db_table)} ({event_credential}, {quote('kind')}, "
        f"{quote('created_at')}, {quote('detail')}) "
        f"SELECT v.{key}, v.{kind}, v.{created}, v.{detail} FROM v "
        f"JOIN updated ON updated.{credential_key} = v.{key} RETURNING {event_credential}"
    )
    return sql, fields


# --- key rotation: encrypted values as they are stored ---------------------------------------


def encrypted_values(alias: str, model: Any, field: Any, size: int) -> Iterator[list[tuple]]:
    """``(pk, ciphertext)`` of every stored value of ``field``, ``size`` rows at a time in
    primary key order (keyset pagination: each batch starts after the last one's key, so a
    rotation never holds more than one batch, and rows written meanwhile are not skipped).
    The ciphertext as stored: the field's own reading would decrypt it."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    table, column, key = (quote(model._meta.db_table), quote(field.column),
                          quote(model._meta.pk.column))
    last = None
    while True:
        where = f"{column} IS NOT NULL" + (f" AND {key} > %s" if last is not None else "")
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {key}, {column} FROM {table} WHERE {where} ORDER BY {key} LIMIT %s",
                ([last] if last is not None else []) + [size],
            )
            rows = cursor.fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def rewrite_encrypted_values(alias: str, model: Any, field: Any,
                             updates: Sequence[tuple[bytes, Any, bytes]]) -> int:
    """Write re-encrypted values ``(new, pk, old)`` (``new`` None for NULL), each only where
    the row still holds the ciphertext that was read (a refresh may have written new tokens
    meanwhile). Returns how many were written."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    table, column, key = (quote(model._meta.db_table), quote(field.column),
                          quote(model._meta.pk.column))
    statement = f"UPDATE {table} SET {column} = %s WHERE {key} = %s AND {column} = %s"
    binary = connection.Database.Binary
    with connection.cursor() as cursor:
        cursor.executemany(statement, [[None if new is None else binary(new), pk, binary(old)]
                                       for new, pk, old in updates])
        return max(cursor.rowcount, 0)
