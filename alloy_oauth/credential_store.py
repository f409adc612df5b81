"""An end user's connection: the token of a redeemed authorization
(:func:`authorization.complete`) stored as their credential, new or reconnected."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timezone as dt_timezone
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from . import connection_params, protocol
from .authorization import Redeemed
from .models import AuthorizationRequest, Credential, CredentialEvent
from .signals import credential_connected, send

logger = logging.getLogger(__name__)


def store_credential(redeemed: Redeemed) -> tuple[Credential, bool]:
    """The end user's connection: create their credential for the connector, or reconnect
    the existing one (see :func:`_store_credential`); ``credential_connected`` is sent.
    Returns the credential and whether it is new."""
    pending = redeemed.pending
    credential, created = _store_credential(pending, redeemed.token, redeemed.metadata)
    logger.info(
        "Authorization %s for connector %s stored credential %s.",
        pending.pk, pending.connector.slug, credential.pk,
    )
    send(credential_connected, credential, created=created)
    return credential, created


@sensitive_variables()
def _store_credential(
    pending: AuthorizationRequest, token: protocol.TokenResponse,
    metadata: dict[str, Any] | None = None,
) -> tuple[Credential, bool]:
    """Create the end user's credential for this connector, or reconnect the existing one
    (same row, back to ``active``, ``version`` bumped so an in-flight refresh of the old grant
    cannot overwrite the new tokens). With several accounts allowed, which one: see
    :func:`_account`."""
    connector = pending.connector
    now = timezone.now()
    values = connector.token_values(token, requested_scopes=protocol.parse_scopes(pending.scope))
    values.update(
        # Set at connect (a new grant's metadata, which may be another account's).
        connection_config=pending.connection_config,
        metadata=metadata or {},
        # A new grant: its refresh token (or none) replaces the old grant's, which may belong
        # to another account at the provider (RFC 6749 §6's "keep the old one" is for refreshes).
        refresh_token=token.refresh_token or "",
        refresh_token_expires_at=values.get("refresh_token_expires_at"),
        requested_scope=pending.scope,
        status=Credential.Status.ACTIVE,
        connected_at=now,
        failure_count=0,
        failing_since=None,
        last_error="",
    )
    owner = {"user": pending.user} if pending.user_id else {"external_id": pending.external_id}
    note = token.expires_in_note
    try:
        return _save_credential(pending, owner, values, now, note)
    except IntegrityError:
        # Another callback for the same end user (and account) created the row first: update
        # it instead.
        return _save_credential(pending, owner, values, now, note)


@sensitive_variables()
def _save_credential(
    pending: AuthorizationRequest, owner: dict[str, Any], values: dict[str, Any], now: Any,
    note: str,
) -> tuple[Credential, bool]:
    connector = pending.connector
    with transaction.atomic():
        credential, account_key = _account(pending, owner, values)
        created = credential is None
        if created:
            credential = Credential(connector=connector, account_key=account_key, **owner)
        else:
            values = {**values, "version": credential.version + 1}
        for name, value in values.items():
            setattr(credential, name, value)
        credential.save()
        CredentialEvent.objects.create(
            credential=credential,
            kind=CredentialEvent.Kind.CONNECTED,
            created_at=now,
            detail=_connected_detail(credential, created, note),
        )
    return credential, created


def _account(
    pending: AuthorizationRequest, owner: dict[str, Any], values: dict[str, Any]
) -> tuple[Credential | None, str]:
    """The owner's credential this connection updates (locked until the transaction ends),
    or ``None`` and the ``account_key`` of a new one.

    One account per owner (the default): the owner's credential, whose ``account_key`` is
    ``""``, so that the unique constraints keep two simultaneous callbacks from creating two.
    Several accounts: the one being reconnected, if named; else the one with the same account
    label (the same shop, the same e-mail), else a new one keyed by that label (two
    simultaneous callbacks for one account still make one row) or, without a label, by a
    random key."""
    connector = pending.connector
    mine = Credential.objects.select_for_update().filter(connector=connector, **owner)
    if not connector.allow_multiple_accounts:
        return mine.order_by("pk").first(), ""
    accounts = list(mine.order_by("pk"))
    for credential in accounts:
        if credential.pk == pending.credential_id:
            return credential, credential.account_key
    label = connection_params.label(connector.account_label, values["connection_config"],
                                    values["metadata"])
    if not label:
        return None, secrets.token_hex(16)
    for credential in accounts:
        if connection_params.label(connector.account_label, credential.connection_config,
                                   credential.metadata) == label:
            return credential, credential.account_key
    return None, hashlib.sha256(label.encode()).hexdigest()


def _connected_detail(credential: Credential, created: bool, note: str) -> str:
    parts = [_("Connected.") if created else _("Reconnected.")]
    if credential.scope:
        parts.append(_("Scopes granted: %(scopes)s.") % {"scopes": credential.scope})
    if credential.scopes_missing or credential.scopes_extra:
        parts.append(_("Not as requested: missing %(missing)s; extra %(extra)s.") % {
            "missing": " ".join(credential.scopes_missing) or "—",
            "extra": " ".join(credential.scopes_extra) or "—"})
    if credential.expires_at:
        parts.append(_("Access token expires at %(when)s.") % {
            # (as the admin's credential page writes every time: admin_actions.when)
            "when": f"{credential.expires_at.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M} UTC",
        })
    if note:  # an expiry assumed, and why
        parts.append(note)
    return " ".join(parts)
