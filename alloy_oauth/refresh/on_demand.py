"""Tokens for host code, now: ``credential.get_access_token()``, ``credential.refresh()``,
the API session's 401 retry, and an entered secret the API refused."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import OperationalError
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .. import auth_types
from ..exceptions import NoAccessToken, ReauthorizationRequired, TokenRefreshFailed
from ..models import Credential
from ..outcomes import Outcome
from . import leases
from .revocation import mark_reauth_required
from .single import UNDECRYPTABLE_MESSAGE, refresh_one

logger = logging.getLogger(__name__)


@sensitive_variables()
def access_token(credential: Credential, *, min_valid: int) -> str:
    """``credential.get_access_token()``: a token valid for at least ``min_valid`` seconds,
    refreshed synchronously when needed; when another process is refreshing, its result.
    An API key credential's is its key (what host code puts in a header), a bearer
    credential's its token; a Basic pair is no single token (``NoAccessToken``)."""
    auth_type = credential.connector.auth_type
    if auth_type == auth_types.BASIC:
        raise NoAccessToken(
            credential,
            f"The {credential.connector} credential is a user name and password (HTTP Basic), "
            f"not an access token: send its requests with credential.session(), or read "
            f"credential.username and credential.password.")
    raise_if_unusable(credential)
    if auth_type == auth_types.API_KEY:
        return credential.api_key
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


def raise_if_unusable(credential: Credential) -> None:
    """Raise what ``get_access_token()`` raises for any type before it looks at the token:
    ``ReauthorizationRequired`` when the end user must reconnect, ``TokenRefreshFailed`` when
    the secrets cannot be decrypted."""
    _raise_if_reauthorization_required(credential)
    if credential.undecryptable:
        raise TokenRefreshFailed(credential, f"{credential.connector}: {UNDECRYPTABLE_MESSAGE}")


def secret_refused(credential: Credential, *, version: int, request: str) -> bool:
    """The API answered 401 to a secret a person entered (an API key, a Basic pair, a bearer
    token): nothing can renew it, so the credential needs it entered again. Marked
    ``reauth_required`` through the engine (event, signal), unless the secret was replaced
    since ``version`` was read: the refusal was of the old one. ``request`` says which
    request was refused (no query: a query may carry the secret)."""
    reason = (f"The API refused the stored secret (HTTP 401 to {request}): it must be "
              f"entered again.")
    try:
        marked = mark_reauth_required(credential.pk, reason=reason, if_version=version)
    except OperationalError as exc:
        # The caller still gets the API's answer; the next 401 tries again.
        logger.warning("Credential %s: the API refused its secret, but it could not be marked "
                       "for reconnection (the database refused: %s).",
                       credential.pk, type(exc).__name__)
        return False
    if marked:
        credential.refresh_from_db(using=leases.database())
    return marked


def _raise_if_reauthorization_required(credential: Credential) -> None:
    if credential.status in (Credential.Status.REAUTH_REQUIRED, Credential.Status.REVOKED):
        raise ReauthorizationRequired(
            credential,
            f"The end user must reconnect their {credential.connector} account "
            f"(credential {credential.pk} is {credential.status}).",
        )
