"""The refresh engine: keeps credentials fresh under any number of workers.

Providers that rotate refresh tokens with reuse detection revoke the whole grant when one
refresh token is presented twice, so two token requests for one credential must never be in
flight at once. For each credential (see ``docs/refresh.md``):

1. take the *lease* (:mod:`alloy_oauth.leases`) with one conditional UPDATE: lease free,
   credential refreshable and due. Losing it means someone else is refreshing;
2. read the credential from the primary database (its tokens decrypt here); on PostgreSQL
   and SQLite the UPDATE returns it;
3. POST the refresh request outside any transaction, the lease kept alive meanwhile;
4. write the outcome with one UPDATE fenced by the lease token and ``version``: success
   stores the tokens, bumps ``version`` and frees the lease; failures are classified.

Once a request may have reached the provider without an answer coming back (timeout, a
crash, a database that will not take the new tokens), the lease is *not* released: it runs
out by itself, so no second request can overlap one the provider may still be processing.

Celery tasks, ``Credential.get_access_token()``, the admin and ``manage.py
alloy_oauth_refresh`` all call :func:`refresh_credential`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.db import DatabaseError, OperationalError, connections, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import leases, protocol
from .conf import app_settings
from .exceptions import ReauthorizationRequired, TokenRefreshFailed
from .fields import is_undecryptable
from .leases import Lease
from .models import Credential, CredentialEvent
from .signals import (
    credential_reauth_required,
    credential_refresh_failed,
    credential_refreshed,
    credential_revoked,
    send,
)

logger = logging.getLogger(__name__)

UNDECRYPTABLE_MESSAGE = (
    "The stored tokens or client secret cannot be decrypted with the configured FERNET_KEYS: "
    "restore the key they were encrypted with (see manage.py alloy_oauth_rotate_keys --check)."
)


class Result(StrEnum):
    REFRESHED = "refreshed"
    #: Not due (or already refreshed by someone else, or backing off after a failure).
    NOT_DUE = "not_due"
    #: Another process holds the lease.
    BUSY = "busy"
    #: The credential changed while we refreshed (reconnected); our tokens were discarded.
    SUPERSEDED = "superseded"
    REAUTH_REQUIRED = "reauth_required"
    #: Refused for good (client rejected, bad request, too many failures): status ``error``.
    FAILED = "failed"
    #: A transient failure; tried again after ``retry_in`` seconds.
    RETRY = "retry"
    #: Not refreshable: revoked, reconnection required, no refresh token, …
    NOT_REFRESHABLE = "not_refreshable"
    #: Revoked (at the provider when it has a revocation URL) and its tokens deleted.
    REVOKED = "revoked"


@dataclass(frozen=True)
class Outcome:
    result: Result
    credential_id: int
    message: str = ""
    retry_in: int | None = None


# --- one credential -----------------------------------------------------------------------


def refresh_credential(
    credential_id: int,
    *,
    force: bool = False,
    min_valid: int | None = None,
    if_version: int | None = None,
    wait: bool = False,
) -> Outcome:
    """Refresh one credential if it is due, safely against every other process.

    - by default (the sweep's tasks): when ``next_refresh_at`` has come;
    - ``min_valid=N`` (on demand): when the access token expires within N seconds, unless the
      credential is backing off after a failure;
    - ``force=True`` (admin, command): now, also for a credential in ``error``;
    - ``if_version=v``: only if nobody has refreshed since version ``v`` was read;
    - ``wait=True``: while another process holds the lease, wait for it (at most
      ``LEASE_SECONDS + HTTP_TIMEOUT``) instead of returning ``BUSY``.

    Raises ``Credential.DoesNotExist`` for an unknown id. Never raises for a provider failure:
    that is recorded on the credential and returned as the outcome.
    """
    return leases.outside_caller_transaction(
        _refresh, credential_id, force=force, min_valid=min_valid, if_version=if_version,
        wait=wait,
    )


def _refresh(
    credential_id: int, *, force: bool, min_valid: int | None, if_version: int | None, wait: bool
) -> Outcome:
    leased = _acquire(
        credential_id,
        lambda: _refreshable(force=force, min_valid=min_valid, if_version=if_version),
        lambda: _why_not(credential_id, force=force, min_valid=min_valid, if_version=if_version),
        wait=wait,
    )
    if isinstance(leased, Outcome):
        return leased
    lease, credential = leased
    if credential.undecryptable or is_undecryptable(credential.connector.client_secret):
        return _record_failure(credential, lease, protocol.OAuthError(
            protocol.ErrorKind.CONFIGURATION, UNDECRYPTABLE_MESSAGE))
    if not credential.refresh_token:
        return _without_refresh_token(credential, lease)
    return _refresh_leased(credential, lease)


def _acquire(
    credential_id: int,
    candidates: Callable[[], QuerySet[Credential]],
    explain: Callable[[], Outcome],
    *,
    wait: bool,
) -> tuple[Lease, Credential] | Outcome:
    """Take the lease and read the credential, or say why not; a ``BUSY`` answer is waited
    out (polling, at most ``LEASE_SECONDS + HTTP_TIMEOUT``) when ``wait``."""
    give_up_at = time.monotonic() + app_settings.LEASE_SECONDS + app_settings.HTTP_TIMEOUT
    pause = 0.05
    while True:
        leased = leases.acquire_and_read(credential_id, candidates())
        if leased is not None:
            return leased
        outcome = explain()
        if outcome.result is not Result.BUSY or not wait or time.monotonic() > give_up_at:
            return outcome
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _refreshable(
    *, force: bool, min_valid: int | None, if_version: int | None
) -> QuerySet[Credential]:
    now = timezone.now()
    statuses = [Credential.Status.ACTIVE]
    if force:
        statuses.append(Credential.Status.ERROR)
    candidates = leases.credentials().filter(status__in=statuses)
    if if_version is not None:
        candidates = candidates.filter(version=if_version)
    if force:
        return candidates
    if min_valid is not None:
        return candidates.filter(_not_backing_off(now),
                                 expires_at__lte=now + timedelta(seconds=min_valid))
    return candidates.filter(next_refresh_at__lte=now)


def _not_backing_off(now: datetime) -> Q:
    return Q(failure_count=0) | Q(next_refresh_at__isnull=True) | Q(next_refresh_at__lte=now)


def _why_not(
    credential_id: int, *, force: bool, min_valid: int | None, if_version: int | None
) -> Outcome:
    """Why the lease was not taken (one read of non-secret columns)."""
    now = timezone.now()
    row = (
        leases.credentials().filter(pk=credential_id)
        .annotate(leased=leases.held(), backing_off=~_not_backing_off(now))
        .values("status", "leased", "version", "backing_off", "next_refresh_at")
        .first()
    )
    if row is None:
        raise Credential.DoesNotExist(f"No credential with id {credential_id}.")
    refreshable = [Credential.Status.ACTIVE] + ([Credential.Status.ERROR] if force else [])
    if row["status"] not in refreshable:
        return Outcome(Result.NOT_REFRESHABLE, credential_id, f"Status is {row['status']}.")
    if if_version is not None and row["version"] != if_version:
        return Outcome(Result.NOT_DUE, credential_id, "Already refreshed by someone else.")
    if row["backing_off"] and not force:
        return Outcome(Result.NOT_DUE, credential_id,
                       f"Backing off until {row['next_refresh_at']:%Y-%m-%d %H:%M:%S} UTC.")
    if row["leased"]:
        return Outcome(Result.BUSY, credential_id, "Another process is refreshing it.")
    return Outcome(Result.NOT_DUE, credential_id, "Not due.")


@sensitive_variables()
def _refresh_leased(credential: Credential, lease: Lease) -> Outcome:
    connector = credential.connector
    with leases.kept_alive(lease):
        try:
            token = protocol.refresh_access_token(
                connector.oauth_client(connector.refresh_url or None),
                refresh_token=credential.refresh_token,
                extra_params=connector.refresh_params,
            )
        except protocol.OAuthError as error:
            return _record_failure(credential, lease, error)
        # Any other exception from here on (a worker's time limit, a database that will not
        # take the tokens) leaves the lease to run out: the provider may have rotated.
        return _record_success(credential, lease, token)


@sensitive_variables()
def _record_success(credential: Credential, lease: Lease, token: protocol.TokenResponse) -> Outcome:
    now = timezone.now()
    values = credential.connector.token_values(token, requested_scopes=credential.scope.split())
    values.update(
        status=Credential.Status.ACTIVE,
        last_refreshed_at=now,
        failure_count=0,
        last_error="",
        lease_until=None,
        lease_token="",
        version=credential.version + 1,
        updated_at=now,
    )
    rotated = bool(token.refresh_token) and token.refresh_token != credential.refresh_token
    detail = "Refreshed" + ("; the refresh token was rotated" if rotated else "") + (
        f"; expires at {values['expires_at']:%Y-%m-%d %H:%M:%S} UTC." if values["expires_at"]
        else "; no expiry given."
    )
    if not _store_tokens_retrying(credential, lease, values, detail, now):
        logger.warning(
            "Credential %s changed while it was refreshed (reconnected or marked); the new "
            "tokens were discarded.", credential.pk,
        )
        leases.release(lease)
        return Outcome(Result.SUPERSEDED, credential.pk, "The credential changed meanwhile.")
    for name, value in values.items():
        setattr(credential, name, value)
    logger.info("Credential %s refreshed (version %s).", credential.pk, credential.version)
    send(credential_refreshed, credential)
    return Outcome(Result.REFRESHED, credential.pk, detail)


def _store_tokens_retrying(
    credential: Credential, lease: Lease, values: dict[str, Any], detail: str, now: datetime
) -> bool:
    """The provider has rotated the refresh token: this write must not be lost to a database
    hiccup. Retry for up to one lease period (the lease is kept alive meanwhile)."""
    give_up_at = time.monotonic() + app_settings.LEASE_SECONDS
    pause = 0.25
    while True:
        try:
            return _store_tokens(credential, lease, values, detail, now)
        except DatabaseError:
            if time.monotonic() + pause > give_up_at:
                logger.critical("Could not store the refreshed tokens of credential %s; the "
                                "grant may be lost.", credential.pk)
                raise
            logger.error("Storing the refreshed tokens of credential %s failed; retrying.",
                         credential.pk)
            connection = connections[leases.database()]
            if not connection.in_atomic_block:  # a broken connection is replaced next time
                connection.close_if_unusable_or_obsolete()
            time.sleep(pause)
            pause = min(pause * 2, 5)


@sensitive_variables()
def _store_tokens(
    credential: Credential, lease: Lease, values: dict[str, Any], detail: str, now: datetime
) -> bool:
    """Write fresh tokens and their event, if we still hold the lease and nobody changed
    the credential (``version``). One statement on PostgreSQL, one transaction elsewhere."""
    alias = leases.database()
    connection = connections[alias]
    if connection.vendor == "postgresql":
        return _store_tokens_postgresql(connection, credential, lease, values, detail, now)
    with transaction.atomic(using=alias):
        written = leases.mine(lease).filter(version=credential.version).update(**values)
        if written:
            CredentialEvent.objects.using(alias).create(
                credential_id=credential.pk, kind=CredentialEvent.Kind.REFRESHED,
                created_at=now, detail=detail,
            )
    return bool(written)


@sensitive_variables()
def _store_tokens_postgresql(
    connection: Any, credential: Credential, lease: Lease, values: dict[str, Any],
    detail: str, now: datetime,
) -> bool:
    """The same as the generic path, as a single data-modifying CTE: on the hot path of
    every refresh, one round trip instead of four (BEGIN, UPDATE, INSERT, COMMIT)."""
    quote = connection.ops.quote_name
    fields = [Credential._meta.get_field(name) for name in values]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    params = [field.get_db_prep_save(values[field.name], connection) for field in fields]
    event = CredentialEvent._meta
    sql = (
        f"WITH updated AS (UPDATE {quote(Credential._meta.db_table)} SET {assignments} "
        f"WHERE id = %s AND version = %s AND lease_token = %s RETURNING id) "
        f"INSERT INTO {quote(event.db_table)} "
        f"({quote(event.get_field('credential').column)}, {quote('kind')}, "
        f"{quote('created_at')}, {quote('detail')}) "
        f"SELECT id, %s, %s, %s FROM updated"
    )
    params += [credential.pk, credential.version, lease.token,
               CredentialEvent.Kind.REFRESHED.value, now, detail]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


@sensitive_variables()
def _record_failure(credential: Credential, lease: Lease, error: protocol.OAuthError) -> Outcome:
    now = timezone.now()
    failures = credential.failure_count + 1
    message = error.message
    values: dict[str, Any] = {"failure_count": failures, "updated_at": now}
    if not error.in_doubt:
        values.update(lease_until=None, lease_token="")
    # else: the provider may still be processing the request; the lease runs out by itself.
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
    written = _write_with_event(leases.mine(lease).filter(version=credential.version), values,
                                credential.pk, kind, message, now)
    # The message is secret-free by construction (OAuthError messages are scrubbed).
    logger.warning("Credential %s: refresh failed (%s, HTTP %s): %s",
                   credential.pk, error.kind, error.status or "-", message)
    if not written:
        if not error.in_doubt:
            leases.release(lease)
        return Outcome(Result.SUPERSEDED, credential.pk, "The credential changed meanwhile.")
    for name, value in values.items():
        setattr(credential, name, value)
    if result is Result.REAUTH_REQUIRED:
        send(credential_reauth_required, credential, reason=message)
    else:
        send(credential_refresh_failed, credential, error=str(error.kind), message=message,
             will_retry=result is Result.RETRY)
    return Outcome(result, credential.pk, message, retry_in)


def _without_refresh_token(credential: Credential, lease: Lease) -> Outcome:
    """No refresh token was ever issued: nothing to refresh. Once the access token has
    expired, the end user has to reconnect; until then, look again at expiry."""
    now = timezone.now()
    if credential.expires_at is None or credential.expires_at > now:
        leases.mine(lease).update(lease_until=None, lease_token="",
                                  next_refresh_at=credential.expires_at)
        return Outcome(Result.NOT_REFRESHABLE, credential.pk, "The provider issued no refresh token.")
    message = "The access token expired and the provider issued no refresh token."
    written = _write_with_event(
        leases.mine(lease),
        dict(lease_until=None, lease_token="", status=Credential.Status.REAUTH_REQUIRED,
             next_refresh_at=None, last_error=message, updated_at=now),
        credential.pk, CredentialEvent.Kind.REAUTH_REQUIRED, message, now)
    if written:
        credential.status = Credential.Status.REAUTH_REQUIRED
        credential.last_error = message
        send(credential_reauth_required, credential, reason=message)
    return Outcome(Result.REAUTH_REQUIRED, credential.pk, message)


def _write_with_event(rows: QuerySet[Credential], values: dict[str, Any], credential_id: int,
                      kind: str, detail: str, now: datetime) -> int:
    """Update ``rows`` (the credential, fenced by lease and/or version) and, if it matched,
    record the event, in one transaction."""
    with transaction.atomic(using=leases.database()):
        written = rows.update(**values)
        if written:
            CredentialEvent.objects.using(leases.database()).create(
                credential_id=credential_id, kind=kind, created_at=now, detail=detail)
    return written


def retry_delay(failures: int, retry_after: int | None = None) -> int:
    """Exponential backoff with jitter after ``failures`` consecutive failures, never sooner
    than the provider's Retry-After."""
    ceiling = min(app_settings.RETRY_BACKOFF_MAX, app_settings.RETRY_BACKOFF * 2 ** (failures - 1))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    return max(1, int(max(delay, retry_after or 0)))


# --- revocation and reconnection ----------------------------------------------------------


def revoke_credential(credential_id: int) -> Outcome:
    """Revoke the grant at the provider (RFC 7009, when the connector has a revocation URL),
    then delete the tokens and mark the credential ``revoked``.

    Takes the lease first (waiting for a refresh in flight), so a refresh cannot write new
    tokens over a revocation. If the provider does not confirm (a 503, say), nothing changes
    and the outcome says why: the tokens are kept.
    """
    return leases.outside_caller_transaction(_revoke, credential_id)


@sensitive_variables()
def _revoke(credential_id: int) -> Outcome:
    def explain() -> Outcome:
        row = (leases.credentials().filter(pk=credential_id).annotate(leased=leases.held())
               .values("status", "leased").first())
        if row is None:
            raise Credential.DoesNotExist(f"No credential with id {credential_id}.")
        if row["status"] == Credential.Status.REVOKED:
            return Outcome(Result.NOT_REFRESHABLE, credential_id, "Already revoked.")
        return Outcome(Result.BUSY, credential_id, "Another process is refreshing it.")

    leased = _acquire(
        credential_id,
        lambda: leases.credentials().exclude(status=Credential.Status.REVOKED),
        explain,
        wait=True,
    )
    if isinstance(leased, Outcome):
        return leased
    lease, credential = leased
    connector = credential.connector
    token = credential.refresh_token or credential.access_token
    if connector.revocation_url and token:
        try:
            with leases.kept_alive(lease):
                protocol.revoke_token(
                    connector.oauth_client(), connector.revocation_url, token=token,
                    token_type_hint="refresh_token" if credential.refresh_token else "access_token",
                )
        except protocol.OAuthError as error:
            logger.warning("Credential %s: revocation failed (%s, HTTP %s).",
                           credential.pk, error.kind, error.status)
            if not _token_already_dead(error):
                # Down, rate limiting, our client refused, a wrong URL (404), a request it
                # does not take: the grant may still be alive, so the tokens stay for a retry.
                # (The lease goes even when the answer is in doubt: a revocation rotates
                # nothing, and the end user may click Disconnect again at once.)
                leases.release(lease)
                return Outcome(Result.FAILED, credential.pk,
                               f"The provider did not confirm the revocation, so the tokens "
                               f"are kept. {error.message}", error.retry_after)
            detail = f"The provider no longer knows the token ({error.message}); tokens deleted."
        else:
            detail = "Revoked at the provider; tokens deleted."
    else:
        detail = ("Tokens deleted. The connector has no revocation URL, so the grant may still "
                  "be valid at the provider." if token else "Tokens deleted.")
    now = timezone.now()
    values = dict(
        status=Credential.Status.REVOKED, access_token="", refresh_token="", token_response={},
        expires_at=None, next_refresh_at=None, lease_until=None, lease_token="",
        failure_count=0, last_error="", version=credential.version + 1, updated_at=now,
    )
    _write_with_event(leases.mine(lease), values, credential.pk, CredentialEvent.Kind.REVOKED,
                      detail, now)
    for name, value in values.items():
        setattr(credential, name, value)
    logger.info("Credential %s revoked.", credential.pk)
    send(credential_revoked, credential)
    return Outcome(Result.REVOKED, credential.pk, detail)


def _token_already_dead(error: protocol.OAuthError) -> bool:
    """Whether a revocation was refused because the token itself is dead already. RFC 7009
    asks for a 200 even then, but some providers (Google) answer 400 ``invalid_token``. A
    server error or rate limit never means that, whatever its body says."""
    return error.kind is protocol.ErrorKind.REAUTHORIZE or (
        error.kind is protocol.ErrorKind.REJECTED and error.error == "invalid_token")


def mark_reauth_required(credential_id: int, *, reason: str) -> bool:
    """Ask the end user to reconnect (an operator's decision): status ``reauth_required``,
    no more refreshes. ``version`` moves on, so a refresh in flight cannot undo it."""
    return leases.outside_caller_transaction(_mark_reauth_required, credential_id, reason)


def _mark_reauth_required(credential_id: int, reason: str) -> bool:
    now = timezone.now()
    changed = _write_with_event(
        leases.credentials().filter(
            pk=credential_id, status__in=[Credential.Status.ACTIVE, Credential.Status.ERROR]),
        dict(status=Credential.Status.REAUTH_REQUIRED, next_refresh_at=None, last_error=reason,
             version=F("version") + 1, updated_at=now),
        credential_id, CredentialEvent.Kind.REAUTH_REQUIRED, reason, now)
    if changed:
        credential = leases.credentials().select_related("connector").get(pk=credential_id)
        send(credential_reauth_required, credential, reason=reason)
    return bool(changed)


# --- on demand ----------------------------------------------------------------------------


@sensitive_variables()
def access_token(credential: Credential, *, min_valid: int) -> str:
    """``credential.get_access_token()``: a token valid for at least ``min_valid`` seconds,
    refreshed synchronously when needed; when another process is refreshing, its result."""
    _raise_if_reauthorization_required(credential)
    if credential.undecryptable:
        raise TokenRefreshFailed(credential, f"{credential.connector}: {UNDECRYPTABLE_MESSAGE}")
    if _valid_for(credential, min_valid):
        return credential.access_token
    outcome = refresh_for_caller(credential, min_valid=min_valid, wait=True)
    credential.refresh_from_db(using=leases.database())
    _raise_if_reauthorization_required(credential)
    if _valid_for(credential, min_valid) or _valid_for(credential, 0):
        # Still valid, if for less than asked: better than failing while the provider is down.
        return credential.access_token
    raise TokenRefreshFailed(
        credential,
        f"The {credential.connector} access token has expired and could not be refreshed: "
        f"{credential.last_error or outcome.message}",
    )


def refresh_for_caller(credential: Credential, **options: Any) -> Outcome:
    """:func:`refresh_credential` on behalf of host code (``get_access_token``, the API
    session, ``credential.refresh()``): a database that refuses becomes TokenRefreshFailed."""
    try:
        return refresh_credential(credential.pk, **options)
    except OperationalError as exc:
        raise TokenRefreshFailed(
            credential,
            f"The {credential.connector} access token could not be refreshed: the database "
            f"refused ({type(exc).__name__}). If this runs inside a transaction that has "
            f"locked or changed this credential, ask for the token before that.",
        ) from None


def may_force_refresh(credential: Credential) -> bool:
    """Whether a forced refresh is reasonable now (not for a credential in ``error`` or
    backing off after a failure): for the session's 401 retry."""
    return credential.status == Credential.Status.ACTIVE and not (
        credential.failure_count and credential.next_refresh_at
        and credential.next_refresh_at > timezone.now()
    )


def _valid_for(credential: Credential, seconds: int) -> bool:
    if credential.expires_at is None:
        return True
    return credential.expires_at - timezone.now() > timedelta(seconds=seconds)


def _raise_if_reauthorization_required(credential: Credential) -> None:
    if credential.status in (Credential.Status.REAUTH_REQUIRED, Credential.Status.REVOKED):
        raise ReauthorizationRequired(
            credential,
            f"The end user must reconnect their {credential.connector} account "
            f"(credential {credential.pk} is {credential.status}).",
        )


# --- the sweep ----------------------------------------------------------------------------


def due_credential_ids(
    now: datetime | None = None, batch_size: int | None = None
) -> Iterator[list[int]]:
    """The ids of the due credentials (``Credential.objects.due()``, read from the primary
    database), in batches."""
    batch_size = batch_size or app_settings.SWEEP_BATCH_SIZE
    batch: list[int] = []
    due = leases.credentials().due(now)
    for pk in due.values_list("pk", flat=True).iterator(chunk_size=batch_size):
        batch.append(pk)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
