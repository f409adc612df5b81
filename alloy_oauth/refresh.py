"""The refresh engine: keeps credentials fresh under any number of workers.

Providers that rotate refresh tokens with reuse detection revoke the whole grant when one
refresh token is presented twice, so two token requests for one credential must never be in
flight at once. For each credential (see ``docs/refresh.md``):

1. take the *lease* with one conditional UPDATE: lease free or expired, credential
   refreshable and due. Losing it means someone else is refreshing;
2. read the credential (its tokens decrypt here);
3. POST the refresh request outside any transaction; the request cannot outlast the lease
   (a token request is bounded by 3 x HTTP_TIMEOUT, the lease is at least 4 x);
4. write the outcome with one UPDATE guarded by the lease and ``version``: success stores the
   tokens, bumps ``version`` and frees the lease; failures are classified (``_record_failure``).

Celery tasks, ``Credential.get_access_token()``, the admin and ``manage.py
alloy_oauth_refresh`` all call :func:`refresh_credential`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from django.db import DatabaseError, connections, router, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from . import protocol
from .conf import app_settings
from .exceptions import ReauthorizationRequired, TokenRefreshFailed
from .models import Credential, CredentialEvent
from .signals import credential_reauth_required, credential_refresh_failed, credential_refreshed

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: How often a database write of fresh tokens is retried: the provider has already rotated
#: the refresh token, so losing this write would lose the grant.
SUCCESS_WRITE_ATTEMPTS = 4


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
    - ``force=True`` (admin, the 401 retry): now, also for a credential in ``error``;
    - ``if_version=v``: only if nobody has refreshed since version ``v`` was read;
    - ``wait=True``: while another process holds the lease, wait for it (at most one lease
      period) instead of returning ``BUSY``.

    Raises ``Credential.DoesNotExist`` for an unknown id. Never raises for a provider failure:
    that is recorded on the credential and returned as the outcome.
    """
    return _outside_caller_transaction(
        _refresh, credential_id, force=force, min_valid=min_valid, if_version=if_version,
        wait=wait,
    )


def _refresh(
    credential_id: int, *, force: bool, min_valid: int | None, if_version: int | None, wait: bool
) -> Outcome:
    give_up_at = time.monotonic() + app_settings.LEASE_SECONDS + app_settings.HTTP_TIMEOUT
    pause = 0.05
    while True:
        now = timezone.now()
        lease = now + timedelta(seconds=app_settings.LEASE_SECONDS)
        candidates = _refreshable(credential_id, now, force=force, min_valid=min_valid,
                                  if_version=if_version)
        if candidates.update(lease_until=lease):
            break
        outcome = _why_not(credential_id, now, force=force, if_version=if_version)
        if outcome.result is not Result.BUSY or not wait or time.monotonic() > give_up_at:
            return outcome
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
    credential = Credential.objects.select_related("connector").get(pk=credential_id)
    try:
        return _refresh_leased(credential, lease)
    except BaseException:
        Credential.objects.filter(pk=credential_id, lease_until=lease).update(lease_until=None)
        raise


def _refreshable(
    credential_id: int, now: datetime, *, force: bool, min_valid: int | None,
    if_version: int | None,
) -> QuerySet[Credential]:
    statuses = [Credential.Status.ACTIVE]
    if force:
        statuses.append(Credential.Status.ERROR)
    candidates = Credential.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lte=now),
        pk=credential_id, status__in=statuses,
    )
    if if_version is not None:
        candidates = candidates.filter(version=if_version)
    if force:
        return candidates
    if min_valid is not None:
        return candidates.filter(
            Q(failure_count=0) | Q(next_refresh_at__isnull=True) | Q(next_refresh_at__lte=now),
            expires_at__lte=now + timedelta(seconds=min_valid),
        )
    return candidates.filter(next_refresh_at__lte=now)


def _why_not(credential_id: int, now: datetime, *, force: bool, if_version: int | None) -> Outcome:
    """Why the lease was not taken (one read of non-secret columns)."""
    row = Credential.objects.filter(pk=credential_id).values(
        "status", "lease_until", "version", "failure_count", "next_refresh_at"
    ).first()
    if row is None:
        raise Credential.DoesNotExist(f"No credential with id {credential_id}.")
    refreshable = [Credential.Status.ACTIVE] + ([Credential.Status.ERROR] if force else [])
    if row["status"] not in refreshable:
        return Outcome(Result.NOT_REFRESHABLE, credential_id, f"Status is {row['status']}.")
    if if_version is not None and row["version"] != if_version:
        return Outcome(Result.NOT_DUE, credential_id, "Already refreshed by someone else.")
    if row["lease_until"] is not None and row["lease_until"] > now:
        return Outcome(Result.BUSY, credential_id, "Another process is refreshing it.")
    if row["failure_count"] and row["next_refresh_at"] and row["next_refresh_at"] > now:
        return Outcome(Result.NOT_DUE, credential_id,
                       f"Backing off until {row['next_refresh_at']:%Y-%m-%d %H:%M:%S} UTC.")
    return Outcome(Result.NOT_DUE, credential_id, "Not due.")


def _refresh_leased(credential: Credential, lease: datetime) -> Outcome:
    connector = credential.connector
    if not credential.refresh_token:
        return _without_refresh_token(credential, lease)
    try:
        token = protocol.refresh_access_token(
            connector.oauth_client(connector.refresh_url or None),
            refresh_token=credential.refresh_token,
            extra_params=connector.refresh_params,
        )
    except protocol.OAuthError as error:
        return _record_failure(credential, lease, error)
    return _record_success(credential, lease, token)


def _record_success(
    credential: Credential, lease: datetime, token: protocol.TokenResponse
) -> Outcome:
    now = timezone.now()
    values = credential.connector.token_values(token, requested_scopes=credential.scope.split())
    values.update(
        status=Credential.Status.ACTIVE,
        last_refreshed_at=now,
        failure_count=0,
        last_error="",
        lease_until=None,
        version=credential.version + 1,
        updated_at=now,
    )
    rotated = bool(token.refresh_token) and token.refresh_token != credential.refresh_token
    detail = "Refreshed" + ("; the refresh token was rotated" if rotated else "") + (
        f"; expires at {values['expires_at']:%Y-%m-%d %H:%M:%S} UTC." if values["expires_at"]
        else "; no expiry given."
    )

    def write() -> bool:
        return _store_tokens(credential, lease, values, detail, now)

    if not _retry_database_errors(write):
        logger.warning(
            "Credential %s changed while it was refreshed (reconnected, or the lease was lost); "
            "the new tokens were discarded.", credential.pk,
        )
        return Outcome(Result.SUPERSEDED, credential.pk, "The credential changed meanwhile.")
    for name, value in values.items():
        setattr(credential, name, value)
    logger.info("Credential %s refreshed (version %s).", credential.pk, credential.version)
    credential_refreshed.send(sender=Credential, credential=credential)
    return Outcome(Result.REFRESHED, credential.pk, detail)


def _store_tokens(
    credential: Credential, lease: datetime, values: dict[str, Any], detail: str, now: datetime
) -> bool:
    """Write fresh tokens and their event, if we still hold the lease and nobody changed
    the credential (``version``). One statement on PostgreSQL, one transaction elsewhere."""
    alias = router.db_for_write(Credential)
    connection = connections[alias]
    if connection.vendor == "postgresql":
        return _store_tokens_postgresql(connection, credential, lease, values, detail, now)
    with transaction.atomic(using=alias):
        written = Credential.objects.using(alias).filter(
            pk=credential.pk, version=credential.version, lease_until=lease
        ).update(**values)
        if written:
            CredentialEvent.objects.using(alias).create(
                credential_id=credential.pk, kind=CredentialEvent.Kind.REFRESHED,
                created_at=now, detail=detail,
            )
    return bool(written)


def _store_tokens_postgresql(
    connection: Any, credential: Credential, lease: datetime, values: dict[str, Any],
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
        f"WHERE id = %s AND version = %s AND lease_until = %s RETURNING id) "
        f"INSERT INTO {quote(event.db_table)} "
        f"({quote(event.get_field('credential').column)}, {quote('kind')}, "
        f"{quote('created_at')}, {quote('detail')}) "
        f"SELECT id, %s, %s, %s FROM updated"
    )
    params += [credential.pk, credential.version, lease,
               CredentialEvent.Kind.REFRESHED.value, now, detail]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


def _record_failure(credential: Credential, lease: datetime, error: protocol.OAuthError) -> Outcome:
    now = timezone.now()
    failures = credential.failure_count + 1
    message = error.message
    values: dict[str, Any] = {
        "lease_until": None, "failure_count": failures, "updated_at": now,
    }
    retry_in = None
    if error.kind is protocol.ErrorKind.REAUTHORIZE:
        result, kind = Result.REAUTH_REQUIRED, CredentialEvent.Kind.REAUTH_REQUIRED
        values.update(status=Credential.Status.REAUTH_REQUIRED, next_refresh_at=None)
    elif error.retryable and failures < app_settings.MAX_REFRESH_FAILURES:
        result, kind = Result.RETRY, CredentialEvent.Kind.REFRESH_FAILED
        retry_in = retry_delay(failures, error.retry_after)
        values["next_refresh_at"] = now + timedelta(seconds=retry_in)
        message = f"{message} Retrying in {retry_in} s (attempt {failures})."
    else:
        result, kind = Result.FAILED, CredentialEvent.Kind.REFRESH_FAILED
        values.update(status=Credential.Status.ERROR, next_refresh_at=None)
        if error.retryable:
            message = f"{message} Gave up after {failures} consecutive failures."
    values["last_error"] = message
    with transaction.atomic(using=router.db_for_write(Credential)):
        written = Credential.objects.filter(pk=credential.pk, lease_until=lease).update(**values)
        if written:
            CredentialEvent.objects.create(
                credential_id=credential.pk, kind=kind, created_at=now, detail=message
            )
    logger.warning("Credential %s: refresh failed (%s, HTTP %s): %s",
                   credential.pk, error.kind, error.status, result)
    if not written:
        return Outcome(Result.SUPERSEDED, credential.pk, "The credential changed meanwhile.")
    for name, value in values.items():
        setattr(credential, name, value)
    if result is Result.REAUTH_REQUIRED:
        credential_reauth_required.send(sender=Credential, credential=credential, reason=message)
    else:
        credential_refresh_failed.send(
            sender=Credential, credential=credential, error=str(error.kind), message=message,
            will_retry=result is Result.RETRY,
        )
    return Outcome(result, credential.pk, message, retry_in)


def _without_refresh_token(credential: Credential, lease: datetime) -> Outcome:
    """No refresh token was ever issued: nothing to refresh. Once the access token has
    expired, the end user has to reconnect; until then, look again at expiry."""
    now = timezone.now()
    if credential.expires_at is None or credential.expires_at > now:
        Credential.objects.filter(pk=credential.pk, lease_until=lease).update(
            lease_until=None, next_refresh_at=credential.expires_at
        )
        return Outcome(Result.NOT_REFRESHABLE, credential.pk, "The provider issued no refresh token.")
    message = "The access token expired and the provider issued no refresh token."
    with transaction.atomic(using=router.db_for_write(Credential)):
        written = Credential.objects.filter(pk=credential.pk, lease_until=lease).update(
            lease_until=None, status=Credential.Status.REAUTH_REQUIRED, next_refresh_at=None,
            last_error=message, updated_at=now,
        )
        if written:
            CredentialEvent.objects.create(
                credential_id=credential.pk, kind=CredentialEvent.Kind.REAUTH_REQUIRED,
                created_at=now, detail=message,
            )
    if written:
        credential.status = Credential.Status.REAUTH_REQUIRED
        credential.last_error = message
        credential_reauth_required.send(sender=Credential, credential=credential, reason=message)
    return Outcome(Result.REAUTH_REQUIRED, credential.pk, message)


def retry_delay(failures: int, retry_after: int | None = None) -> int:
    """Exponential backoff with jitter after ``failures`` consecutive failures, never sooner
    than the provider's Retry-After."""
    ceiling = min(app_settings.RETRY_BACKOFF_MAX, app_settings.RETRY_BACKOFF * 2 ** (failures - 1))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    return max(1, int(max(delay, retry_after or 0)))


# --- on demand ----------------------------------------------------------------------------


def access_token(credential: Credential, *, min_valid: int) -> str:
    """``credential.get_access_token()``: a token valid for at least ``min_valid`` seconds,
    refreshed synchronously when needed; when another process is refreshing, its result."""
    _raise_if_reauthorization_required(credential)
    if _valid_for(credential, min_valid):
        return credential.access_token
    outcome = refresh_credential(credential.pk, min_valid=min_valid, wait=True)
    credential.refresh_from_db()
    _raise_if_reauthorization_required(credential)
    if _valid_for(credential, min_valid) or _valid_for(credential, 0):
        # Still valid, if for less than asked: better than failing while the provider is down.
        return credential.access_token
    raise TokenRefreshFailed(
        credential,
        f"The {credential.connector} access token has expired and could not be refreshed: "
        f"{credential.last_error or outcome.message}",
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


def due_credentials(now: datetime | None = None) -> QuerySet[Credential]:
    """Active credentials whose ``next_refresh_at`` has come and that nobody is refreshing.
    Served by the (status, next_refresh_at) index: its cost follows the due count, not the
    table size."""
    now = now or timezone.now()
    return Credential.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lte=now),
        status=Credential.Status.ACTIVE, next_refresh_at__lte=now,
    ).order_by("next_refresh_at")


def due_credential_ids(now: datetime | None = None, batch_size: int | None = None) -> Iterator[list[int]]:
    """The ids of :func:`due_credentials`, in batches."""
    batch_size = batch_size or app_settings.SWEEP_BATCH_SIZE
    batch: list[int] = []
    for pk in due_credentials(now).values_list("pk", flat=True).iterator(chunk_size=batch_size):
        batch.append(pk)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- helpers ------------------------------------------------------------------------------


def _retry_database_errors(write: Callable[[], T]) -> T:
    for attempt in range(1, SUCCESS_WRITE_ATTEMPTS + 1):
        try:
            return write()
        except DatabaseError:
            if attempt == SUCCESS_WRITE_ATTEMPTS:
                logger.critical("Could not store refreshed tokens; the grant may be lost.")
                raise
            logger.error("Storing refreshed tokens failed (attempt %s); retrying.", attempt)
            connections[router.db_for_write(Credential)].close_if_unusable_or_obsolete()
            time.sleep(0.2 * 2 ** attempt)
    raise AssertionError("unreachable")


def _outside_caller_transaction(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``func`` where its writes commit at once.

    Inside a caller's ``transaction.atomic()`` (ATOMIC_REQUESTS, say) the lease would stay
    invisible to other processes, and a rollback would throw away tokens the provider has
    already rotated. There, run in a thread with its own connection. A durable block is
    allowed only outside real transactions (Django's TestCase excepted), which is the test.
    """
    alias = router.db_for_write(Credential)
    if transaction.get_connection(alias).in_atomic_block:
        try:
            with transaction.atomic(using=alias, durable=True):
                pass
        except RuntimeError:
            return _in_thread(func, *args, **kwargs)
    return func(*args, **kwargs)


def _in_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
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
