"""Secrets a person enters: an API key, a user name and password (HTTP Basic), a bearer
token. The operator enters one in the admin (a shared credential), or an end user in the
connect popup; either way it is checked with the connector's test request before it is
stored (:func:`check`), and stored encrypted on the owner's credential (:func:`store`),
with the same event and signal as an OAuth 2.0 connection."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from . import api_check, auth_types
from .models import Connector, Credential, CredentialEvent
from .signals import credential_connected, send

logger = logging.getLogger(__name__)

#: The credential fields each type stores (a bearer token is an access token).
FIELDS = {
    auth_types.API_KEY: ("api_key",),
    auth_types.BASIC: ("username", "password"),
    auth_types.BEARER: ("access_token",),
}


def fields_of(connector: Connector) -> tuple[str, ...]:
    return FIELDS.get(connector.auth_type, ())


@sensitive_variables()
def secret_of(values: dict[str, str]) -> auth_types.Secret:
    return auth_types.Secret(token=values.get("access_token", ""),
                             api_key=values.get("api_key", ""),
                             username=values.get("username", ""),
                             password=values.get("password", ""))


@sensitive_variables()
def check(connector: Connector, values: dict[str, str],
          config: dict[str, Any] | None = None) -> str | None:
    """Why the connector's test request refuses these values, or ``None`` when it accepts
    them (or the connector has no test request: then nothing can be checked)."""
    if not api_check.is_configured(connector):
        return None
    result = api_check.check(connector, secret_of(values), config=config)
    if result.ok:
        return None
    logger.info("Connector %s: an entered secret failed the test request (%s).",
                connector.slug, result.status or "no answer")
    if result.status in (401, 403):
        return _("the API refused it (%(error)s)") % {"error": result.error}
    return result.error


@sensitive_variables()
def store(connector: Connector, values: dict[str, str], *, user: Any = None,
          external_id: str = "", config: dict[str, Any] | None = None,
          by: str = "", into: Credential | None = None) -> tuple[Credential, bool]:
    """Store ``values`` (the fields of :data:`FIELDS` for the connector's type) on the
    owner's credential: a new one, or the existing one replaced (back to ``active``,
    ``version`` bumped). With several accounts allowed, each entry is a new account.
    ``into``: the credential to fill and save instead: a new one (the admin's add form,
    which has checked that the owner has none) or a stored one whose secret the operator
    replaces. Sends ``credential_connected``."""
    if (user is None) == (not external_id):
        raise ValueError("A credential needs exactly one owner: user= or external_id=.")
    owner = {"user": user} if user is not None else {"external_id": external_id}
    try:
        credential, created = _save(connector, owner, values, config or {}, by, into)
    except IntegrityError:  # another entry for the same owner created the row first
        if into is not None:
            raise
        credential, created = _save(connector, owner, values, config or {}, by, None)
    logger.info("Connector %s: credential %s stored (%s).", connector.slug, credential.pk,
                "new" if created else "replaced")
    send(credential_connected, credential, created=created)
    return credential, created


@sensitive_variables()
def _save(connector: Connector, owner: dict[str, Any], values: dict[str, str],
          config: dict[str, Any], by: str, into: Credential | None
          ) -> tuple[Credential, bool]:
    now = timezone.now()
    with transaction.atomic():
        existing = into if into is not None and into.pk else None
        if into is None and not connector.allow_multiple_accounts:
            existing = (Credential.objects.select_for_update()
                        .filter(connector=connector, **owner).order_by("pk").first())
        credential = existing or into or Credential(
            connector=connector, **owner,
            account_key=secrets.token_hex(16) if connector.allow_multiple_accounts else "")
        for name in ("access_token", "api_key", "username", "password"):
            setattr(credential, name, values.get(name, ""))
        credential.token_type = "Bearer"
        credential.connection_config = config
        if existing is None and into is not None and connector.allow_multiple_accounts:
            credential.account_key = secrets.token_hex(16)
        credential.status = Credential.Status.ACTIVE
        credential.refresh_token = ""
        credential.expires_at = credential.next_refresh_at = None
        credential.connected_at = now
        credential.failure_count = 0
        credential.failing_since = None
        credential.last_error = ""
        if existing is not None:
            credential.version += 1
        credential.save()
        detail = _("Connected.") if existing is None else _("Replaced.")
        if by:
            detail += " " + _("Entered by %(who)s.") % {"who": by}
        CredentialEvent.objects.create(credential=credential, created_at=now, detail=detail,
                                       kind=CredentialEvent.Kind.CONNECTED)
    return credential, existing is None
