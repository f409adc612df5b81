"""The authorization-code flow: start it for an end user, finish it at the callback.

The views are thin wrappers around :func:`start` and :func:`complete`; anything else that
starts an authorization (the admin's validation, headless connect links) goes through them
too. :func:`complete` ends at the token; :func:`credential_store.store_credential` makes it
a connection.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from . import connection_params, protocol, tickets
from .conf import app_settings
from .models import AuthorizationRequest, Connector, Credential
from .redaction import scrub

logger = logging.getLogger(__name__)

#: Longest callback parameter accepted; real codes and states are far shorter.
MAX_PARAM_LENGTH = 4096
_CALLBACK_PARAMS = ("state", "code", "error", "error_description", "error_uri", "iss")


class AuthorizationFailed(Exception):
    """The callback cannot complete. ``reason`` is a stable code for programs and tests;
    ``str()`` is a sentence for the end user that never contains a secret. Nothing was stored.
    ``pending`` is the authorization request, once the callback is known to belong to it.
    ``retry`` says whether starting again may work (the attempt ran out, was finished, ran in
    another browser, was refused by the person, or met a passing failure), unlike a forged or
    broken answer or the operator's problem; the failure page offers "Try again" then.
    ``at_exchange``: the callback was genuine and the provider's answer (its error, or the
    code exchange) was the failure."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        connector: Connector | None = None,
        pending: AuthorizationRequest | None = None,
        retry: bool = False,
        at_exchange: bool = False,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.connector = connector
        self.pending = pending
        self.retry = retry
        self.at_exchange = at_exchange


class TooManyPending(Exception):
    """This browser (or user) already has ``MAX_PENDING_AUTHORIZATIONS`` authorizations in
    progress: refusing more keeps the table from being filled by a script."""


@dataclass(frozen=True)
class Redeemed:
    """An authorization whose code was exchanged for ``token``. What becomes of the token is
    the caller's to decide: :func:`credential_store.store_credential` for an end user's
    connection, the admin's validation for a Validate credential (``pending.purpose`` says
    which).
    ``metadata``: what the connector's metadata fields and callback parameters found."""

    pending: AuthorizationRequest
    token: protocol.TokenResponse = field(repr=False)
    metadata: dict[str, Any]

    @property
    def requested_scopes(self) -> list[str]:
        return protocol.parse_scopes(self.pending.scope)


def start(
    connector: Connector,
    *,
    session: SessionBase,
    redirect_uri: str,
    user: Any = None,
    external_id: str = "",
    next_url: str = "",
    purpose: str = AuthorizationRequest.Purpose.CONNECT,
    popup: bool = False,
    flow_id: str = "",
    link_hash: str | None = None,
    connection_config: dict[str, str] | None = None,
    credential: Credential | None = None,
    draft: dict[str, Any] | None = None,
) -> str:
    """Record a pending authorization for one end user (or, to validate the connector, an
    operator) and return the provider URL to send their browser to.

    ``connection_config``: the values of the connector's connection parameters (see
    :meth:`Connector.connection_errors`), which its URLs are built with, now and at the
    callback; ``credential``: the owner's account being reconnected, for a connector with
    several accounts; ``draft``: to validate values not saved yet, those values
    (:func:`validation.draft_values`, kept encrypted), which ``connector`` is built from.
    Raises :class:`protocol.OAuthError` when the connector's auth URL is refused by the
    transport rule, ``connection_params.ParameterError`` when the values do not make it, and
    ``IntegrityError`` when the headless link (``link_hash``) was used already."""
    if (user is None) == (not external_id):
        raise ValueError("An authorization needs exactly one owner: user= or external_id=.")
    config = dict(connection_config or {})
    auth_url = connector.url("auth_url", config)
    protocol.require_secure_url(
        auth_url, allow_http=settings.DEBUG, what=_("The connector's auth URL")
    )
    now = timezone.now()
    binding = tickets.browser_binding(session, create=True)
    pending_now = AuthorizationRequest.objects.filter(consumed_at__isnull=True, expires_at__gt=now)
    limit = app_settings.MAX_PENDING_AUTHORIZATIONS
    if pending_now.filter(session_binding=binding).count() >= limit or (
        user is not None and pending_now.filter(user=user).count() >= limit
    ):
        raise TooManyPending(_("Too many connections are in progress; finish or close one, "
                               "or wait a few minutes."))
    state = protocol.new_state()
    verifier, challenge = protocol.new_pkce_pair() if connector.use_pkce else ("", None)
    scopes = connector.scopes
    pending = AuthorizationRequest.objects.create(
        purpose=purpose,
        popup=popup,
        flow_id=flow_id,
        link_hash=link_hash,
        state_hash=protocol.hash_state(state),
        connector=connector if connector.pk else None,  # (a new connector's draft)
        draft=draft or {},
        user=user,
        external_id=external_id,
        connection_config=config,
        credential=credential,
        code_verifier=verifier,
        redirect_uri=redirect_uri,
        scope=" ".join(scopes),
        next_url=next_url,
        session_binding=binding,
        created_at=now,
        expires_at=now + timedelta(seconds=app_settings.STATE_TTL),
    )
    logger.info("Authorization %s started for connector %s.", pending.pk, connector.slug)
    return protocol.authorization_url(
        auth_url,
        client_id=connector.client_id,
        redirect_uri=redirect_uri,
        state=state,
        scopes=scopes,
        scope_separator=connector.scope_separator,
        code_challenge=challenge,
        extra_params=connector.authorization_params,
    )


@sensitive_variables()
def complete(params: QueryDict, session: SessionBase) -> Redeemed:
    """Finish an authorization from the callback's query parameters, up to the token.

    Checks, in this order: state present → known → unexpired → not used → same browser
    session; then consumes it with one conditional UPDATE (of two simultaneous callbacks
    only one wins); then the provider's error, if any; then exchanges the code. Any failure
    raises :class:`AuthorizationFailed`. Nothing is stored but the state's use: the caller
    decides what the token is for (see :class:`Redeemed`).
    """
    values = _single_values(params)
    state = values.get("state")
    if not state:
        raise AuthorizationFailed(
            "missing_state", _("The authorization response has no state parameter.")
        )
    pending = (
        AuthorizationRequest.objects.select_related("connector")
        .filter(state_hash=protocol.hash_state(state))
        .first()
    )
    if pending is None:
        raise AuthorizationFailed(
            "unknown_state", _("This authorization response does not match any request.")
        )
    if pending.draft:  # the admin validating values not saved (yet): they are the connector
        pending.connector = Connector(pk=pending.connector_id, **pending.draft)
    connector = pending.connector
    now = timezone.now()
    binding = tickets.browser_binding(session, create=False)
    same_browser = binding is not None and hmac.compare_digest(binding, pending.session_binding)
    # Only the browser that started it may see its popup mode, flow id and next URL.
    mine = pending if same_browser else None
    if pending.expires_at <= now:
        raise AuthorizationFailed(
            "expired_state", _("This authorization took too long. Please start again."),
            connector=connector, pending=mine, retry=True,
        )
    if pending.consumed_at is not None:
        raise AuthorizationFailed(
            "used_state", _("This authorization response has already been used."),
            connector=connector, pending=mine, retry=True,
        )
    if not same_browser:
        raise AuthorizationFailed(
            "wrong_session",
            _("This authorization was started in another browser session. Please start again "
              "from this browser."),
            connector=connector, retry=True,
        )
    consumed = AuthorizationRequest.objects.filter(
        pk=pending.pk, consumed_at__isnull=True
    ).update(consumed_at=now, draft={})  # (a validation's unsaved values: needed no longer)
    if not consumed:
        raise AuthorizationFailed(
            "used_state", _("This authorization response has already been used."),
            connector=connector, retry=True,
        )
    try:
        token = _redeem(values, pending)
    except AuthorizationFailed as failure:
        failure.pending = pending
        failure.at_exchange = True
        raise
    metadata = {
        **connection_params.token_metadata(connector.metadata_fields, token.extra,
                                           secrets=(token.access_token, token.refresh_token)),
        **connection_params.callback_metadata(connector.callback_params, params),
    }
    return Redeemed(pending, token, metadata)


#: Code exchange failures that a new attempt may well not meet: a code that expired or was
#: used (``invalid_grant``), a provider briefly unwell. The others are the operator's to fix.
RETRY_TOKEN_ERRORS = frozenset({
    protocol.ErrorKind.REAUTHORIZE, protocol.ErrorKind.TRANSIENT, protocol.ErrorKind.MALFORMED,
})
#: Provider refusals (RFC 6749 §4.1.2.1) after which asking again makes sense: the person
#: said no (and may change their mind), or the provider was briefly unwell.
RETRY_PROVIDER_ERRORS = frozenset({"access_denied", "server_error", "temporarily_unavailable"})


@sensitive_variables()
def _redeem(values: dict[str, str], pending: AuthorizationRequest) -> protocol.TokenResponse:
    """The provider's answer: its error, or the code exchanged for tokens."""
    connector = pending.connector
    _check_issuer(values.get("iss"), connector)
    if values.get("error"):
        raise _provider_refusal(values, connector)
    code = values.get("code")
    if not code:
        raise AuthorizationFailed(
            "missing_code", _("The provider sent neither a code nor an error."),
            connector=connector,
        )
    if not connector.is_live and pending.purpose == AuthorizationRequest.Purpose.CONNECT:
        raise AuthorizationFailed(
            "inactive_connector",
            _("%(name)s cannot be connected at the moment: the site has turned it off, or not "
              "finished setting it up.") % {"name": connector.name},
            connector=connector,
        )
    try:
        token_url = connector.url("token_url", pending.connection_config)
    except connection_params.ParameterError as exc:
        # The operator changed the parameters since this attempt started.
        raise AuthorizationFailed("configuration", exc.message, connector=connector) from None
    try:
        return protocol.exchange_code(
            connector.oauth_client(token_url),
            code=code,
            redirect_uri=pending.redirect_uri,
            code_verifier=pending.code_verifier or None,
            extra_params=connector.token_params,
        )
    except protocol.OAuthError as exc:
        logger.warning(
            "Authorization %s for connector %s: code exchange failed (%s, HTTP %s).",
            pending.pk, connector.slug, exc.kind, exc.status,
        )
        raise AuthorizationFailed("token_error", str(exc), connector=connector,
                                  retry=exc.kind in RETRY_TOKEN_ERRORS) from None


def _check_issuer(iss: str | None, connector: Connector) -> None:
    """Mix-up defence (RFC 9700 §4.4, RFC 9207): an answer that names another issuer than
    the connector's came from elsewhere, whatever it carries; a provider that always sends
    ``iss`` never omits it."""
    if iss is not None and connector.issuer and iss != connector.issuer:
        raise AuthorizationFailed(
            "issuer_mismatch",
            _("This answer does not come from %(name)s's authorization server.")
            % {"name": connector.name},
            connector=connector,
        )
    if iss is None and connector.require_issuer:
        raise AuthorizationFailed(
            "missing_issuer",
            _("This answer does not say which authorization server sent it, and %(name)s "
              "always does.") % {"name": connector.name},
            connector=connector,
        )


def _single_values(params: QueryDict) -> dict[str, str]:
    """The callback parameters we read, refusing repeated (RFC 6749 §3.1) or oversized ones."""
    values: dict[str, str] = {}
    for name in _CALLBACK_PARAMS:
        found = params.getlist(name)
        if len(found) > 1:
            raise AuthorizationFailed(
                "invalid_request", _("The authorization response repeats a parameter.")
            )
        if found:
            if len(found[0]) > MAX_PARAM_LENGTH:
                raise AuthorizationFailed(
                    "invalid_request", _("The authorization response has an oversized parameter.")
                )
            values[name] = found[0]
    return values


def _provider_refusal(values: dict[str, str], connector: Connector) -> AuthorizationFailed:
    error = scrub(values["error"][:100])
    description = scrub(values.get("error_description", "")[: protocol.MAX_DESCRIPTION_CHARS])
    if error == "access_denied":
        message = _("You did not grant access to %(name)s.") % {"name": connector.name}
    else:
        message = _("%(name)s refused the authorization (%(error)s).") % {
            "name": connector.name, "error": error,
        }
    if description:
        message = f"{message} {description}"
    return AuthorizationFailed(error if error == "access_denied" else "provider_error", message,
                               connector=connector, retry=error in RETRY_PROVIDER_ERRORS)
