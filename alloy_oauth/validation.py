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

Both store their outcome on the connector (``validated_at``, ``validation_error``,
``validation_report``); nothing secret goes into them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone
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


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str


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
    Connector.objects.filter(pk=connector.pk).update(
        validated_at=None,
        validation_error=" ".join(check.message for check in failed),
        validation_report=report,
    )
    send_validation_failed(connector, " ".join(check.message for check in failed))
    if token is not None:
        # Client credentials: the token is the round trip, without any popup.
        connector.refresh_from_db(fields=["validation_report"])
        record_round_trip(connector, token, connector.scopes, config=config)
        connector.refresh_from_db(fields=["validated_at", "validation_error",
                                          "validation_report"])
        if connector.validation_error:
            checks.append(Check(_("Test request"), False, connector.validation_error))
            send_validation_failed(connector, connector.validation_error)
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
                checks.append(Check(label, False, f"{label}: {exc.message}"))
                continue
        problem = protocol.insecure_url_problem(url, allow_http=settings.DEBUG)
        checks.append(Check(
            label, problem is None,
            _("%(label)s %(problem)s.") % {"label": label, "problem": problem} if problem
            else _("%(label)s is acceptable.") % {"label": label},
        ))
    return checks


def _auth_endpoint_answers(connector: Connector, config: dict[str, str]) -> Check:
    label = _("Auth URL answers")
    try:
        status = protocol.probe_url(connector.url("auth_url", config),
                                    timeout=app_settings.HTTP_TIMEOUT, allow_http=settings.DEBUG)
    except protocol.OAuthError as exc:
        return Check(label, False, _("The auth URL does not answer: %(error)s") % {"error": exc})
    if status == 404 or status >= 500:
        return Check(label, False, _("The auth URL answered HTTP %(status)s; check it.")
                     % {"status": status})
    return Check(label, True, _("The auth URL answered (HTTP %(status)s).") % {"status": status})


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
            return Check(label, True, _("The token endpoint accepted the client credentials "
                                        "(it refused only the deliberately invalid code)."))
        if refused_the_code and exc.error in BAD_CODE_ERRORS:
            # Providers that refuse a bad code in their own words do not say whether the
            # client was checked first.
            return Check(label, True, _(
                "The token endpoint refused the deliberately invalid code (%(error)s) without "
                "rejecting the client credentials; the round trip will tell for sure."
            ) % {"error": exc.error})
        if exc.kind is protocol.ErrorKind.CLIENT:
            return Check(label, False, _(
                "The client credentials were rejected: check the client ID and secret, and the "
                "client authentication method (%(method)s). The provider said: %(error)s"
            ) % {"method": connector.client_auth_method, "error": exc})
        return Check(label, False, _("The token endpoint could not check the client "
                                     "credentials: %(error)s") % {"error": exc})
    return Check(label, False, _("The token endpoint issued a token for an invalid code: it "
                                 "does not look like an OAuth 2.0 token endpoint."))


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
    Connector.objects.filter(pk=connector.pk).update(
        validated_at=None if error else timezone.now(),
        validation_error=error,
        validation_report={**(connector.validation_report or {}), **report},
    )
    logger.info("Validate credential of connector %s: %s.", connector.slug,
                "the test request failed" if error else "validated")
    return report


def record_failure(connector: Connector, message: str) -> None:
    Connector.objects.filter(pk=connector.pk).update(validated_at=None, validation_error=message)
    send_validation_failed(connector, message)


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
