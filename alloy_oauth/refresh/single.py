"""Refreshing one credential: what a web request, the admin, a command or a single task
needs now. (The sweep's batches go through :mod:`.batch`, with the same steps for each
credential.)

1. take the lease (:mod:`.leases`) with one conditional UPDATE whose conditions are the
   rule of :mod:`.eligibility`; losing it means someone else is refreshing, or the rule
   says no, and :func:`.eligibility.explain` says which;
2. read the credential from the primary database (its tokens decrypt here); on PostgreSQL
   and SQLite the UPDATE returns it;
3. POST the refresh request outside any transaction, the lease kept alive meanwhile;
4. write the outcome (:mod:`.records`) fenced by the lease token and ``version``: success
   stores the tokens, bumps ``version`` and frees the lease; failures are classified.

Once a request may have reached the provider without an answer coming back (timeout, a
crash, a database that will not take the new tokens), the lease is *not* released: it runs
out by itself, so no second request can overlap one the provider may still be processing.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .. import auth_types, connection_params, metrics, protocol
from ..conf import app_settings
from ..fields import is_undecryptable
from ..models import Credential
from ..outcomes import Outcome, Result
from . import eligibility, leases, records
from .leases import Lease

logger = logging.getLogger(__name__)

UNDECRYPTABLE_MESSAGE = (
    "The stored tokens or client secret cannot be decrypted with the configured FERNET_KEYS: "
    "restore the key they were encrypted with (see manage.py alloy_oauth_rotate_keys --check)."
)


def refresh_one(
    credential_id: int,
    *,
    force: bool = False,
    min_valid: int | None = None,
    if_version: int | None = None,
    wait: bool = False,
) -> Outcome:
    """Refresh one credential if :func:`.eligibility.refresh_conditions` allow it now,
    safely against every other process:

    - by default (tasks): when ``next_refresh_at`` has come;
    - ``min_valid=N`` (on demand): when the access token expires within N seconds, unless the
      credential is backing off after a failure;
    - ``if_version=v`` (a request refused with 401): now, unless someone has refreshed since
      version ``v`` was read, or the credential is in error or backing off;
    - ``force=True`` (admin, command): now, also for a credential in ``error``;
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
    leased = acquire_or_explain(
        credential_id,
        lambda: eligibility.refresh_conditions(now=timezone.now(), force=force,
                                               min_valid=min_valid, if_version=if_version),
        wait=wait,
    )
    if isinstance(leased, Outcome):
        return leased
    lease, credential = leased
    with leases.kept_alive(lease.token, lambda: (credential_id,)):
        record = without_request(credential, lease) or request(credential, lease)
        return records.settle([record])[0]


def acquire_or_explain(
    credential_id: int,
    conditions: Callable[[], list[eligibility.Condition]],
    *,
    wait: bool,
) -> tuple[Lease, Credential] | Outcome:
    """Take the lease under ``conditions`` and read the credential, or say why not; a
    ``BUSY`` answer is waited out (polling, at most ``LEASE_SECONDS + HTTP_TIMEOUT``) when
    ``wait``."""
    give_up_at = time.monotonic() + app_settings.LEASE_SECONDS + app_settings.HTTP_TIMEOUT
    pause = 0.05
    while True:
        rule = conditions()
        leased = leases.acquire_one(credential_id, eligibility.all_of(rule))
        if leased is not None:
            return leased
        outcome = eligibility.explain(credential_id, rule) or Outcome(
            Result.BUSY, credential_id, "Another process was refreshing it.")
        if outcome.result is not Result.BUSY or not wait or time.monotonic() > give_up_at:
            return outcome
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def without_request(credential: Credential, lease: Lease) -> records.Record | None:
    """The outcome when no request can be sent: a secret that cannot be decrypted, a secret
    entered by a person (an API key: nothing to refresh), or no refresh token at all (a
    client-credentials token needs none). ``None`` when the request can go."""
    if credential.undecryptable or is_undecryptable(credential.connector.client_secret):
        return records.failure(credential, lease, protocol.OAuthError(
            protocol.ErrorKind.CONFIGURATION, UNDECRYPTABLE_MESSAGE), timezone.now())
    if credential.connector.auth_type in auth_types.ENTERED_TYPES:
        return records.not_refreshable(credential, lease, timezone.now())
    if not credential.refresh_token and not _client_credentials(credential):
        return records.without_refresh_token(credential, lease, timezone.now())
    return None


def _client_credentials(credential: Credential) -> bool:
    """A token of the client itself (RFC 6749 §4.4): "refreshed" by asking for a new one."""
    return credential.connector.auth_type == auth_types.CLIENT_CREDENTIALS


@metrics.timed_request
@sensitive_variables()
def request(credential: Credential, lease: Lease) -> records.Record:
    """Send the refresh request and make its outcome a record (not written yet). Safe to
    run in any thread: no database access."""
    connector = credential.connector
    try:
        # This account's own endpoint (its connection parameters filled in).
        token_url = credential.url("refresh_url") or credential.url("token_url")
    except connection_params.ParameterError as exc:
        return records.failure(credential, lease, protocol.OAuthError(
            protocol.ErrorKind.CONFIGURATION, exc.message), timezone.now())
    try:
        if _client_credentials(credential):
            token = protocol.client_credentials_token(
                connector.oauth_client(token_url), scopes=connector.scopes,
                scope_separator=connector.scope_separator,
                extra_params=connector.token_params)
        else:
            token = protocol.refresh_access_token(
                connector.oauth_client(token_url),
                refresh_token=credential.refresh_token,
                extra_params=connector.refresh_params,
            )
    except protocol.OAuthError as error:
        return records.failure(credential, lease, error, timezone.now())
    except Exception as exc:
        # Not foreseen: the request may have gone out, so it counts as in doubt (the lease
        # runs out). Only the type and the frames are logged: a message could quote a token.
        logger.error("Credential %s: unexpected %s while refreshing.\n%s", credential.pk,
                     type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
        return records.failure(credential, lease, protocol.OAuthError(
            protocol.ErrorKind.MALFORMED,
            f"The refresh failed unexpectedly ({type(exc).__name__}).", in_doubt=True),
            timezone.now())
    return records.success(credential, lease, token, timezone.now())
