"""Validate credential: does a connector's configuration work, before any end user tries it?

For a client credentials connector, the pre-flight asks for a token as the engine will and
reports on it as on a round trip: no popup. (API keys, Basic and Bearer tokens are checked
per credential, with the connector's test request, before they are stored.)

1. :func:`preflight`, without any end user: the URLs are acceptable and answer, and the token
   endpoint is asked to redeem a deliberately invalid code with the entered client
   credentials. ``invalid_grant`` then means the client ID and secret were accepted;
   ``invalid_client`` or a 401 means they were not.
2. The round trip: the operator authorizes in a popup (``authorization.start`` with purpose
   ``validate``); the callback hands the token to :func:`record_round_trip`, which reports
   the lifetime, the scopes granted versus requested and the result of the test request,
   revokes the token when the connector has a revocation URL, and stores no credential.

What is validated is what the operator has on screen (:func:`draft_values`), saved or not.
The outcome is stored on the connector (``validated_at``, ``validation_error``,
``validation_report``) when those values are the saved ones (same :func:`fingerprint`); the
round trip's outcome is also kept in the operator's session (:func:`finish`), so that
saving exactly the validated values keeps them validated (see ``admin_validation``).
Nothing secret goes into any of them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from . import api_check, auth_types, connection_params, protocol
from .conf import app_settings
from .models import Connector
from .signals import send_validation_failed

logger = logging.getLogger(__name__)

#: The code sent by the pre-flight: no provider can have issued it.
INVALID_CODE = "alloy-oauth-validation-deliberately-invalid-code"


#: The connector's fields that decide whether end users can connect: saving a change to one
#: clears ``validated_at`` (the connector is no longer live until validated again).
OAUTH_FIELDS = (
    "auth_type", "auth_url", "token_url", "client_id", "client_secret", "scope", "refresh_url",
    "refresh_params", "client_auth_method", "use_pkce", "scope_separator",
    "authorization_params", "token_params", "issuer", "require_issuer", "connection_params",
)
#: What a validation's outcome is about: the OAuth fields, and what else its round trip uses
#: (revocation, the test request, the metadata it reports).
VALIDATED_FIELDS = (*OAUTH_FIELDS, "revocation_url", "api_base_url", "test_request_path",
                    "test_request_statuses", "metadata_fields", "callback_params",
                    "token_placement", "token_header", "token_template", "token_query_param")
#: Where the round trips' outcomes wait in the operator's session, by popup flow id.
SESSION_KEY = "alloy_oauth_validations"
#: How many outcomes the session keeps (the newest).
REMEMBERED = 5


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str


@sensitive_variables()
def fingerprint(connector: Connector) -> str:
    """A keyed hash (HMAC with SECRET_KEY) of the connector's :data:`VALIDATED_FIELDS`, the
    client secret included: equal for the same configuration, and no way back to it."""
    values = json.dumps({name: getattr(connector, name) for name in VALIDATED_FIELDS},
                        sort_keys=True, default=str)
    return salted_hmac("alloy_oauth.validation.fingerprint", values).hexdigest()


def draft_values(connector: Connector) -> dict[str, Any]:
    """The operator's values of a connector (saved or not), as JSON: what a validation of
    unsaved values keeps (encrypted) for its round trip. The client secret is among them."""
    values = {field.attname: field.value_from_object(connector)
              for field in Connector._meta.concrete_fields
              if field.editable and not field.primary_key}
    values["validation_report"] = connector.validation_report
    return values


def _is_saved_configuration(connector: Connector) -> bool:
    """Whether ``connector`` (possibly unsaved edits) has the saved connector's OAuth values."""
    saved = Connector.objects.filter(pk=connector.pk).first() if connector.pk else None
    return saved is not None and fingerprint(saved) == fingerprint(connector)


def _record(connector: Connector, failure: str = "", **outcome: Any) -> None:
    """Store an outcome on the connector and report a ``failure`` (signal
    ``connector_validation_failed``), when what was validated is its saved configuration:
    the outcome of unsaved values is about no stored connector, only the page shows it."""
    if _is_saved_configuration(connector):
        Connector.objects.filter(pk=connector.pk).update(**outcome)
        send_validation_failed(connector, failure)


def finish(session: SessionBase, flow: str, connector: Connector,
           report: dict[str, Any]) -> None:
    """The end of every validation, passed or failed (``report``'s ``"error"`` says why):
    keep its outcome in the operator's session under its popup ``flow`` id. The page shows it
    (``admin_validation``), and saving the values it was about keeps the connector
    validated. No secret: the fingerprint is a keyed hash."""
    if not flow:
        return
    error = report.get("error", "")
    kept = dict(list(session.get(SESSION_KEY, {}).items())[-(REMEMBERED - 1):])
    kept[flow] = {"fingerprint": fingerprint(connector), "error": error, "report": report,
                  "validated_at": None if error else timezone.now().isoformat()}
    session[SESSION_KEY] = kept


def preflight(connector: Connector, *, redirect_uri: str,
              config: dict[str, str] | None = None) -> list[Check]:
    """Run the checks that need no end user, store their outcome, and return them.
    Never raises for a provider's or the network's failure: each is a failed check.
    ``config``: values of the connector's connection parameters, which its URLs need
    (without them, a connector that has parameters fails the check that asks for them)."""
    config = config or {}
    checks = _parameter_checks(connector, config)
    if all(check.ok for check in checks):
        checks += _url_checks(connector, config)
    token = None
    if all(check.ok for check in checks):
        if connector.auth_type == auth_types.CLIENT_CREDENTIALS:
            token_check, token = _client_credentials_token(connector, config)
            checks.append(token_check)
        elif connector.auth_type == auth_types.OAUTH2:
            checks.append(_auth_endpoint_answers(connector, config))
            checks.append(_client_credentials_accepted(connector, redirect_uri, config))
    failed = [check for check in checks if not check.ok]
    report = {"preflight": [asdict(check) for check in checks],
              "checked_at": timezone.now().isoformat(timespec="seconds")}
    if config:
        report["connection_config"] = config
    message = " ".join(check.message for check in failed)
    if failed:
        outcome: dict[str, Any] = {"validated_at": None}
    elif connector.auth_type in auth_types.ENTERED_TYPES:
        # API key, Basic, Bearer: no round trip to come (each secret is checked when entered).
        outcome = {"validated_at": timezone.now()}
    else:
        outcome = {}  # passing keeps an earlier validation: the round trip is still to come
    _record(connector, message, validation_error=message, validation_report=report, **outcome)
    connector.validation_report = report  # (the round trip's report adds to it)
    if token is not None:
        # Client credentials: the token is the round trip, without any popup.
        round_trip = record_round_trip(connector, token, connector.scopes, config=config)
        connector.validation_report = round_trip
        if round_trip.get("error"):
            checks.append(Check(_("Test request"), False, round_trip["error"]))
    return checks


@sensitive_variables()
def _client_credentials_token(connector: Connector, config: dict[str, str]
                              ) -> tuple[Check, protocol.TokenResponse | None]:
    """Ask for a client credentials token (RFC 6749 §4.4), as the engine will."""
    label = _("Client credentials token")
    try:
        token = protocol.client_credentials_token(
            connector.oauth_client(connector.url("token_url", config)),
            scopes=connector.scopes, scope_separator=connector.scope_separator,
            extra_params=connector.token_params)
    except protocol.OAuthError as exc:
        return Check(label, False, _("The token endpoint issued no token: %(error)s") % {
            "error": exc}), None
    return Check(label, True, _("The token endpoint issued a %(type)s token.") % {
        "type": token.token_type}), token


def _parameter_checks(connector: Connector, config: dict[str, str]) -> list[Check]:
    if not connector.params:
        return []
    label = _("Connection parameters")
    errors = connector.connection_values(config)[1]
    if errors:
        return [Check(label, False, _(
            "%(errors)s Enter them beside “Validate credential” on the connector's page.")
            % {"errors": " ".join(errors.values())})]
    return [Check(label, True, ", ".join(f"{name}={value}" for name, value in config.items()))]


def _url_checks(connector: Connector, config: dict[str, str]) -> list[Check]:
    checks = []
    for field in Connector.URL_FIELDS:
        template = getattr(connector, field)
        if not template:
            continue
        label = capfirst(str(Connector._meta.get_field(field).verbose_name))
        if field == "api_base_url" and any(
                name.startswith(connection_params.METADATA_PREFIX)
                for name in connection_params.placeholders(template)):
            # Known only once an account is connected: the round trip's test request tells.
            url = connection_params.sample_url(template)
        else:
            try:
                url = connector.url(field, config)
            except connection_params.ParameterError as exc:
                checks.append(Check(label, False, exc.message))
                continue
        problem = protocol.insecure_url_problem(url, allow_http=settings.DEBUG)
        checks.append(Check(
            label, problem is None,
            _("This address %(problem)s.") % {"problem": problem} if problem
            else _("A valid address for OAuth requests."),
        ))
    return checks


def _auth_endpoint_answers(connector: Connector, config: dict[str, str]) -> Check:
    label = _("Auth URL reachable")
    try:
        status = protocol.probe_url(connector.url("auth_url", config),
                                    timeout=app_settings.HTTP_TIMEOUT, allow_http=settings.DEBUG)
    except protocol.OAuthError as exc:
        return Check(label, False, _("No answer from this address: %(error)s") % {"error": exc})
    if status == 404 or status >= 500:
        return Check(label, False, _(
            "This address answered HTTP %(status)s (not found, or a server error): check the "
            "auth URL.") % {"status": status})
    return Check(label, True, _("It answered (HTTP %(status)s).") % {"status": status})


#: Providers' own words for "this code is not valid" (GitHub, Slack, HubSpot): the pre-flight
#: cannot tell from them whether the client credentials were accepted.
BAD_CODE_ERRORS = frozenset({"bad_verification_code", "invalid_code", "BAD_AUTH_CODE"})


@sensitive_variables()
def _client_credentials_accepted(connector: Connector, redirect_uri: str,
                                 config: dict[str, str]) -> Check:
    label = _("Client ID and secret")
    try:
        protocol.exchange_code(connector.oauth_client(connector.url("token_url", config)),
                               code=INVALID_CODE,
                               redirect_uri=redirect_uri, extra_params=connector.token_params)
    except protocol.OAuthError as exc:
        # An OAuth refusal of the code comes with a 400 (Auth0's with a 403, GitHub's and
        # Slack's with a 200); a 404 with the same words is some other server.
        refused_the_code = exc.status is not None and (
            exc.status in (400, 403) or 200 <= exc.status < 300)
        if refused_the_code and exc.kind is protocol.ErrorKind.REAUTHORIZE:
            return Check(label, True, _(
                "Accepted: the token endpoint refused only the deliberately invalid test code."))
        if refused_the_code and exc.error in BAD_CODE_ERRORS:
            # Providers that refuse a bad code in their own words do not say whether the
            # client was checked first.
            return Check(label, True, _(
                "Probably accepted: the token endpoint refused the deliberately invalid test "
                "code (%(error)s) without complaining about the client ID or secret. Signing "
                "in at the provider will confirm it.") % {"error": exc.error})
        if exc.kind is protocol.ErrorKind.CLIENT:
            return Check(label, False, _(
                "The client credentials were rejected (%(error)s). Check the client ID and "
                "secret, and the client authentication method (now: %(method)s)."
            ) % {"method": connector.get_client_auth_method_display(),
                 "error": _refusal(exc)})
        return Check(label, False, _("The token endpoint could not check the client ID and "
                                     "secret: %(error)s") % {"error": exc})
    return Check(label, False, _("The token endpoint issued a token for an invalid code: it "
                                 "does not look like an OAuth 2.0 token endpoint. Check the "
                                 "access token URL."))


def _refusal(exc: protocol.OAuthError) -> str:
    """How a token endpoint refused, in its own words: ``invalid_client: Bad secret``, or
    ``HTTP 401``."""
    said = exc.error or (f"HTTP {exc.status}" if exc.status else str(exc))
    return f"{said}: {exc.description}" if exc.description else said


@sensitive_variables()
def record_round_trip(
    connector: Connector, token: protocol.TokenResponse, requested_scopes: list[str], *,
    config: dict[str, str] | None = None, metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The operator's authorization came back with ``token``: report on it and, when the
    test request (if any) succeeds too, mark the connector validated. The token is not kept:
    it is revoked at the provider when the connector has a revocation URL. ``config`` and
    ``metadata``: the round trip's connection parameters and what the connector's metadata
    fields and callback parameters found (the report shows them, and which of them the
    provider did not send)."""
    granted = token.scopes if token.scopes is not None else requested_scopes
    report: dict[str, Any] = {
        "token_type": token.token_type,
        "expires_in": token.expires_in,
        "refresh_token": bool(token.refresh_token),
        "scopes_requested": requested_scopes,
        "scopes_granted": granted,
        "scopes_missing": [s for s in requested_scopes if s not in granted],
        "scopes_extra": [s for s in granted if s not in requested_scopes],
        "checked_at": timezone.now().isoformat(timespec="seconds"),
    }
    metadata = metadata or {}
    if connector.metadata_keys:
        report["metadata"] = metadata
        report["metadata_missing"] = [key for key in connector.metadata_keys
                                      if key not in metadata]
    error = ""
    if connector.api_base_url and connector.test_request_path:
        report["test_request"], error = _test_request(connector, token, config or {}, metadata)
    report["revoked"], report["revocation"] = _revoke(connector, token, config or {})
    warnings = []
    if not token.refresh_token and token.expires_in and connector.auth_type == auth_types.OAUTH2:
        warnings.append(_("The provider sent no refresh token: credentials will need "
                          "reconnecting when their access token expires."))
    if report["revoked"] is False:
        warnings.append(report["revocation"])
    if warnings:
        report["warning"] = " ".join(warnings)
    report = {**(connector.validation_report or {}), **report}
    if error:
        report["error"] = error
    _record(connector, error, validated_at=None if error else timezone.now(),
            validation_error=error, validation_report=report)
    logger.info("Validate credential of connector %s: %s.", connector.slug or "(new)",
                "the test request failed" if error else "validated")
    return report


def record_failure(connector: Connector, message: str) -> dict[str, Any]:
    """The round trip failed before a token (the provider refused, the code exchange
    failed): store that, and return the report to show."""
    report = {**(connector.validation_report or {}), "error": message}
    _record(connector, message, validated_at=None, validation_error=message,
            validation_report=report)
    return report


@sensitive_variables()
def _test_request(connector: Connector, token: protocol.TokenResponse, config: dict[str, str],
                  metadata: dict[str, Any]) -> tuple[dict, str]:
    """GET the test request path with the new token placed as the connector says (see
    :mod:`alloy_oauth.api_check`), under the round trip's own API base URL (connection
    parameters and metadata)."""
    result = api_check.check(connector, auth_types.Secret(
        token=token.access_token, token_type=token.token_type), config=config, metadata=metadata)
    return result.as_report(), result.error


@sensitive_variables()
def _revoke(connector: Connector, token: protocol.TokenResponse,
            config: dict[str, str]) -> tuple[bool | None, str]:
    """Revoke the token the round trip received (RFC 7009), the refresh token rather than the
    access token, at the round trip's own revocation URL (its connection parameters):
    validating must not leave a live grant at the provider. (Whether it was revoked, and a
    sentence saying so.)"""
    if not connector.revocation_url:
        return None, _("Not revoked: the connector has no revocation URL, so the token stays "
                       "valid at the provider until it expires or is revoked there.")
    try:
        revocation_url = connector.url("revocation_url", config)
        client = connector.oauth_client(connector.url("token_url", config))
    except connection_params.ParameterError as exc:
        return False, _("The token could not be revoked: %(error)s") % {"error": exc.message}
    try:
        protocol.revoke_token(
            client, revocation_url,
            token=token.refresh_token or token.access_token,
            token_type_hint="refresh_token" if token.refresh_token else "access_token",
        )
    except protocol.OAuthError as exc:
        logger.warning("Connector %s: revoking the validation token failed (%s, HTTP %s).",
                       connector.slug, exc.kind, exc.status)
        return False, _("The token could not be revoked: %(error)s") % {"error": exc}
    return True, _("The token was revoked at the provider.")
