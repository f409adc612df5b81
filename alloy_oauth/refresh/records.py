"""What each outcome of a refresh writes, and writing it.

Every change the engine makes to a credential is a :class:`Write`: new values for its row,
fenced by what must still hold (the lease token, the version that was read), and the event
to record with it. :func:`write_with_events` applies any number of them, each with its
event, in one transaction (on PostgreSQL one statement per kind of write, however many
credentials). One refresh and a batch of hundreds go through the same code.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.db.models import Expression
from django.dispatch import Signal

from .. import connection_params, metrics, protocol, sql
from ..conf import app_settings
from ..models import Credential, CredentialEvent
from ..outcomes import Outcome, Result
from ..signals import (
    credential_reauth_required, credential_recovered, credential_refresh_failed,
    credential_refreshed, send,
)
from . import leases
from .leases import Lease

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Write:
    credential_id: int
    #: Columns whose stored value must still be the given one (``lease_token``, ``version``).
    fence: dict[str, Any]
    values: dict[str, Any]
    #: The event recorded with the write (``CredentialEvent.Kind``), if any.
    event: str | None
    detail: str
    now: datetime


def write_with_events(writes: Sequence[Write]) -> set[int]:
    """Apply each write where its fence still holds and record the event of each one that
    was applied, atomically per credential. Returns the ids written."""
    alias = leases.database()
    if connections[alias].vendor == "postgresql":
        fast = [write for write in writes if _one_statement_can_take(write)]
        written = set()
        for (fence, columns), group in groupby(sorted(fast, key=_shape), key=_shape):
            group = list(group)
            written |= sql.update_with_events(alias, fence=fence, columns=columns, updates=[
                sql.FencedUpdate(write.credential_id, tuple(write.fence.values()),
                                 tuple(write.values.values()), write.event, write.now,
                                 write.detail)
                for write in group])
        rest = [write for write in writes if not _one_statement_can_take(write)]
        return written | (_write_with_orm(alias, rest) if rest else set())
    return _write_with_orm(alias, writes)


def _shape(write: Write) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(write.fence), tuple(write.values)


def _one_statement_can_take(write: Write) -> bool:
    """Plain values on plain columns, with an event (what a ``VALUES`` list can carry)."""
    return write.event is not None and not any(
        "__" in name or isinstance(value, Expression)
        for name, value in (*write.fence.items(), *write.values.items()))


def _write_with_orm(alias: str, writes: Sequence[Write]) -> set[int]:
    with transaction.atomic(using=alias):
        written = {
            write.credential_id for write in writes
            if leases.credentials().filter(pk=write.credential_id, **write.fence)
            .update(**write.values)
        }
        CredentialEvent.objects.using(alias).bulk_create([
            CredentialEvent(credential_id=write.credential_id, kind=write.event,
                            created_at=write.now, detail=write.detail)
            for write in writes if write.event and write.credential_id in written])
    return written


# --- what each outcome writes ---------------------------------------------------------------


@dataclass
class Record:
    """One outcome, ready to be written: the write, what the caller is told once it is
    written, and the signal sent then."""

    credential: Credential
    lease: Lease
    write: Write
    outcome: Outcome
    signal: Signal | None = None
    signal_kwargs: dict[str, Any] = field(default_factory=dict)
    #: Sent after ``signal``: ``(signal, kwargs)`` pairs.
    more_signals: list[tuple[Signal, dict[str, Any]]] = field(default_factory=list)
    #: The request may have reached the provider without an answer: if the write does not
    #: land, the lease must run out instead of being released.
    in_doubt: bool = False
    #: New tokens from the provider (perhaps a rotated refresh token): losing this write
    #: would lose the grant, so it is retried.
    stores_tokens: bool = False


def success(credential: Credential, lease: Lease, token: protocol.TokenResponse,
            now: datetime) -> Record:
    connector = credential.connector
    values = connector.token_values(token, requested_scopes=(
        credential.scope or credential.requested_scope).split())
    # Merged, the refresh's values winning: fields sent only at the code exchange (Slack's
    # authed_user, an id_token) stay, and metadata the refresh does not repeat is kept.
    values["token_response"] = {**_dict(credential.token_response), **token.extra}
    values["metadata"] = {**_dict(credential.metadata), **connection_params.token_metadata(
        connector.metadata_fields, token.extra, secrets=(token.access_token, token.refresh_token))}
    # A response without refresh_token leaves the stored one (RFC 6749 §6): written back as
    # it is, so that every success writes the same columns (one statement for a batch).
    values.setdefault("refresh_token", credential.refresh_token)
    values.setdefault("refresh_token_expires_at", credential.refresh_token_expires_at)
    values.update(
        status=Credential.Status.ACTIVE,
        last_refreshed_at=now,
        failure_count=0,
        failing_since=None,
        last_error="",
        lease_until=None,
        lease_token="",
        version=credential.version + 1,
        updated_at=now,
    )
    rotated = bool(token.refresh_token) and token.refresh_token != credential.refresh_token
    # It had failed (as read before this refresh): it recovers, after failing since
    # failing_since (unknown for failures that began before that column existed).
    recovered = credential.failure_count > 0 or credential.status == Credential.Status.ERROR
    failing_for = now - credential.failing_since if recovered and credential.failing_since else None
    summary = "Refreshed" if not recovered else (
        f"Refreshed again after {credential.failure_count} consecutive failure(s)"
        + (f" over {int(failing_for.total_seconds())} s" if failing_for else ""))
    detail = " ".join(filter(None, [
        summary + ("; the refresh token was rotated" if rotated else "") + (
            f"; expires at {values['expires_at']:%Y-%m-%d %H:%M} UTC." if values["expires_at"]
            else "; no expiry given."),
        token.expires_in_note]))
    kind = CredentialEvent.Kind.RECOVERED if recovered else CredentialEvent.Kind.REFRESHED
    return Record(
        credential, lease,
        Write(credential.pk, {"lease_token": lease.token, "version": credential.version},
              values, kind, detail, now),
        Outcome(Result.REFRESHED, credential.pk, detail),
        credential_refreshed, stores_tokens=True,
        more_signals=[(credential_recovered, {"failing_for": failing_for,
                                              "failures": credential.failure_count})]
        if recovered else [],
    )


def _dict(value: Any) -> dict[str, Any]:
    """A stored JSON object, or ``{}`` for anything else (a token response that cannot be
    decrypted is no object to merge into)."""
    return value if isinstance(value, dict) else {}


def failure(credential: Credential, lease: Lease, error: protocol.OAuthError,
            now: datetime) -> Record:
    failures = credential.failure_count + 1
    message = error.message
    values: dict[str, Any] = {"failure_count": failures, "updated_at": now,
                              # the first failure of a run starts it
                              "failing_since": credential.failing_since
                              if credential.failure_count else now}
    if error.in_doubt:
        # The provider may still be processing the request: the lease runs out by itself.
        values["lease_token"] = leases.new_token()
    else:
        values.update(lease_until=None, lease_token="")
    retry_in = None
    if error.kind is protocol.ErrorKind.REAUTHORIZE:
        result, kind = Result.REAUTH_REQUIRED, CredentialEvent.Kind.REAUTH_REQUIRED
        values.update(status=Credential.Status.REAUTH_REQUIRED, next_refresh_at=None)
    elif (error.retryable and failures < app_settings.MAX_REFRESH_FAILURES
          and credential.status == Credential.Status.ACTIVE):  # (a forced try of an error)
        result, kind = Result.RETRY, CredentialEvent.Kind.REFRESH_FAILED
        retry_in = retry_delay(failures, error.retry_after)
        if error.in_doubt:
            retry_in = max(retry_in, app_settings.LEASE_SECONDS)
        values["next_refresh_at"] = now + timedelta(seconds=retry_in)
        message = f"{message} Retrying in {retry_in} s (attempt {failures})."
    else:
        result, kind = Result.FAILED, CredentialEvent.Kind.REFRESH_FAILED
        values.update(status=Credential.Status.ERROR, next_refresh_at=None)
        if error.retryable:
            message = f"{message} Gave up after {failures} consecutive failures."
    values["last_error"] = message
    # The message is secret-free by construction (OAuthError messages are scrubbed).
    logger.warning("Credential %s: refresh failed (%s, HTTP %s): %s",
                   credential.pk, error.kind, error.status or "-", message)
    if result is Result.REAUTH_REQUIRED:
        signal, signal_kwargs = credential_reauth_required, {"reason": message}
    else:
        signal, signal_kwargs = credential_refresh_failed, {
            "error": str(error.kind), "message": message,
            "will_retry": result is Result.RETRY}
    return Record(
        credential, lease,
        Write(credential.pk, {"lease_token": lease.token, "version": credential.version},
              values, kind, message, now),
        Outcome(result, credential.pk, message, retry_in),
        signal, signal_kwargs, in_doubt=error.in_doubt,
    )


def without_refresh_token(credential: Credential, lease: Lease, now: datetime) -> Record:
    """No refresh token was ever issued: nothing to refresh. Once the access token has
    expired, the end user has to reconnect; until then, look again at expiry."""
    fence = {"lease_token": lease.token}
    if credential.expires_at is None or credential.expires_at > now:
        return Record(
            credential, lease,
            Write(credential.pk, fence, {"lease_until": None, "lease_token": "",
                                         "next_refresh_at": credential.expires_at},
                  None, "", now),
            Outcome(Result.NOT_REFRESHABLE, credential.pk,
                    "The provider issued no refresh token."))
    message = "The access token expired and the provider issued no refresh token."
    return Record(
        credential, lease,
        Write(credential.pk, fence,
              {"lease_until": None, "lease_token": "", "status": Credential.Status.REAUTH_REQUIRED,
               "next_refresh_at": None, "last_error": message, "updated_at": now},
              CredentialEvent.Kind.REAUTH_REQUIRED, message, now),
        Outcome(Result.REAUTH_REQUIRED, credential.pk, message),
        credential_reauth_required, {"reason": message})


def not_refreshable(credential: Credential, lease: Lease, now: datetime) -> Record:
    """A secret entered by a person (an API key, a password, a bearer token): there is
    nothing to refresh, and nothing is scheduled."""
    return Record(
        credential, lease,
        Write(credential.pk, {"lease_token": lease.token},
              {"lease_until": None, "lease_token": "", "next_refresh_at": None}, None, "", now),
        Outcome(Result.NOT_REFRESHABLE, credential.pk,
                "Its secret was entered by a person: there is nothing to refresh."))


def retry_delay(failures: int, retry_after: int | None = None) -> int:
    """Exponential backoff with jitter after ``failures`` consecutive failures, never sooner
    than the provider's Retry-After."""
    ceiling = min(app_settings.RETRY_BACKOFF_MAX, app_settings.RETRY_BACKOFF * 2 ** (failures - 1))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    return max(1, int(max(delay, retry_after or 0)))


# --- settling: write, then tell -------------------------------------------------------------


def settle(records: Sequence[Record]) -> list[Outcome]:
    """Write ``records`` and, for each, update the in-memory credential, log and send its
    signal; a record whose fence no longer holds (reconnected, marked meanwhile) is
    ``SUPERSEDED`` and its lease released (or left to run out, when in doubt)."""
    written = _write_retrying(records)
    outcomes = []
    for record in records:
        credential = record.credential
        if credential.pk not in written:
            if record.stores_tokens:
                logger.warning("Credential %s changed while it was refreshed (reconnected or "
                               "marked); the new tokens were discarded.", credential.pk)
            (leases.detach if record.in_doubt else leases.release)(record.lease)
            outcomes.append(Outcome(Result.SUPERSEDED, credential.pk,
                                    "The credential changed meanwhile."))
            continue
        for name, value in record.write.values.items():
            setattr(credential, name, value)
        if record.outcome.result is Result.REFRESHED:
            logger.info("Credential %s refreshed (version %s).", credential.pk, credential.version)
        if record.signal is not None:
            send(record.signal, credential, **record.signal_kwargs)
        for signal, kwargs in record.more_signals:
            send(signal, credential, **kwargs)
        outcomes.append(record.outcome)
    metrics.count_refreshes((record.credential.connector.slug, outcome.result)
                            for record, outcome in zip(records, outcomes, strict=True))
    return outcomes


def _write_retrying(records: Sequence[Record]) -> set[int]:
    """The writes of ``records``. When they carry tokens the provider has just issued (and
    perhaps rotated), a database hiccup must not lose them: retried for up to one lease
    period, while the lease is kept alive."""
    give_up_at = time.monotonic() + app_settings.LEASE_SECONDS
    pause = 0.25
    while True:
        try:
            return write_with_events([record.write for record in records])
        except DatabaseError:
            stored_tokens = [record.credential.pk for record in records if record.stores_tokens]
            if not stored_tokens or time.monotonic() + pause > give_up_at:
                if stored_tokens:
                    logger.critical("Could not store the refreshed tokens of credential(s) %s; "
                                    "the grant may be lost.", _ids(stored_tokens))
                raise
            logger.error("Storing the refreshed tokens of credential(s) %s failed; retrying.",
                         _ids(stored_tokens))
            connection = connections[leases.database()]
            if not connection.in_atomic_block:  # a broken connection is replaced next time
                connection.close_if_unusable_or_obsolete()
            time.sleep(pause)
            pause = min(pause * 2, 5)


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
