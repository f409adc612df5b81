"""Tokens for host code, now: ``credential.get_access_token()``, ``credential.refresh()``
and the API session's 401 retry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import OperationalError
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from ..exceptions import ReauthorizationRequired, TokenRefreshFailed
from ..models import Credential
from . import leases
from .outcomes import Outcome
from .single import UNDECRYPTABLE_MESSAGE, refresh_one


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
    if not credential.last_error and credential.expires_at is not None:
        # Refreshed (here or elsewhere), and yet expired already: the provider's tokens last
        # less than this process took to read one back (a starved machine, a clock skew).
        raise TokenRefreshFailed(
            credential,
            f"The {credential.connector} access token was refreshed, but the new one expired "
            f"(at {credential.expires_at:%Y-%m-%d %H:%M:%S} UTC) before it could be used.",
        )
    raise TokenRefreshFailed(
        credential,
        f"The {credential.connector} access token has expired and could not be refreshed: "
        f"{credential.last_error or outcome.message}",
    )


def refresh_for_caller(credential: Credential, **options: Any) -> Outcome:
    """:func:`.single.refresh_one` on behalf of host code (``get_access_token``, the
    API session, ``credential.refresh()``): a database that refuses becomes
    TokenRefreshFailed."""
    try:
        return refresh_one(credential.pk, **options)
    except OperationalError as exc:
        raise TokenRefreshFailed(
            credential,
            f"The {credential.connector} access token could not be refreshed: the database "
            f"refused ({type(exc).__name__}). If this runs inside a transaction that has "
            f"locked or changed this credential, ask for the token before that.",
        ) from None


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
