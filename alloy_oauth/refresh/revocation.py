"""Ending a grant: revocation (the end user's Disconnect, the admin, ``credential.revoke()``)
and an operator's "Mark for reconnection"."""

from __future__ import annotations

import logging

from django.db.models import F
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .. import auth_types, connection_params, protocol
from ..models import Credential, CredentialEvent
from ..outcomes import Outcome, Result
from ..signals import credential_reauth_required, credential_revoked, send
from . import eligibility, leases, records
from .single import acquire_or_explain

logger = logging.getLogger(__name__)


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
    leased = acquire_or_explain(credential_id, eligibility.revocation_conditions, wait=True)
    if isinstance(leased, Outcome):
        return leased
    lease, credential = leased
    connector = credential.connector
    token = credential.refresh_token or credential.access_token
    # Only a token issued by the provider's token endpoint can be revoked there (RFC 7009):
    # an API key, a password or a pasted bearer token is only deleted here.
    revocable = connector.auth_type in auth_types.OAUTH_TYPES and bool(token)
    if connector.revocation_url and revocable:
        try:
            # This account's own endpoints (its connection parameters filled in).
            revocation_url = credential.url("revocation_url")
            client = connector.oauth_client(credential.url("token_url"))
        except connection_params.ParameterError as exc:
            leases.release(lease)
            return Outcome(Result.FAILED, credential.pk,
                           f"The revocation URL cannot be built, so the tokens are kept. "
                           f"{exc.message}")
        try:
            with leases.kept_alive(lease.token, lambda: (credential_id,)):
                protocol.revoke_token(
                    client, revocation_url, token=token,
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
                  "be valid at the provider." if revocable else "Secrets deleted.")
    now = timezone.now()
    values = dict(
        status=Credential.Status.REVOKED, access_token="", refresh_token="", token_response={},
        api_key="", username="", password="",
        expires_at=None, next_refresh_at=None, lease_until=None, lease_token="",
        failure_count=0, last_error="", version=credential.version + 1, updated_at=now,
    )
    records.write_with_events([records.Write(
        credential.pk, {"lease_token": lease.token}, values, CredentialEvent.Kind.REVOKED,
        detail, now)])
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


def mark_reauth_required(credential_id: int, *, reason: str,
                         if_version: int | None = None) -> bool:
    """Ask the end user to reconnect (an operator's decision, or an API that refused an
    entered secret): status ``reauth_required``, no more refreshes. ``version`` moves on, so a
    refresh in flight cannot undo it; with ``if_version``, only if the credential is still at
    that version (its secret not replaced meanwhile)."""
    return leases.outside_caller_transaction(_mark_reauth_required, credential_id, reason,
                                             if_version)


def _mark_reauth_required(credential_id: int, reason: str, if_version: int | None) -> bool:
    now = timezone.now()
    fence: dict[str, object] = {"status__in": [Credential.Status.ACTIVE,
                                               Credential.Status.ERROR]}
    if if_version is not None:
        fence["version"] = if_version
    changed = records.write_with_events([records.Write(
        credential_id,
        fence,
        dict(status=Credential.Status.REAUTH_REQUIRED, next_refresh_at=None, last_error=reason,
             version=F("version") + 1, updated_at=now),
        CredentialEvent.Kind.REAUTH_REQUIRED, reason, now)])
    if changed:
        credential = leases.credentials().select_related("connector").get(pk=credential_id)
        send(credential_reauth_required, credential, reason=reason)
    return bool(changed)
