"""The connector's test request: a GET of its test path on its API base URL, with a token or
an entered secret placed as the connector says. It tells whether an access token works
(Validate credential) and whether an API key, a user name and password or a bearer token
is valid before it is stored (the admin's credential form, the end user's key entry).

The request goes through the protocol layer's transport (https rule, SSRF checks, no
redirects, one deadline); only the status is read. What it reports never holds the secret:
the URL it names is the one without the secret's query parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from . import auth_types, connection_params, protocol
from .conf import app_settings
from .models import Connector


@dataclass(frozen=True)
class CheckResult:
    """What the test request found: ``ok``, the URL (without the secret), the status (or
    ``None`` when no answer came) and, when not ok, a sentence saying what failed."""

    ok: bool
    url: str
    status: int | None = None
    error: str = ""

    def as_report(self) -> dict[str, Any]:
        report: dict[str, Any] = {"url": self.url, "ok": self.ok}
        if self.status is not None:
            report["status"] = self.status
        if self.error and self.status is None:
            report["error"] = self.error
        return report


def valid_statuses(connector: Connector) -> set[int] | None:
    """The statuses the operator listed as "valid", or ``None`` for the default (below
    400). Unreadable entries are ignored (the connector form refuses them)."""
    found = {int(part) for part in connector.test_request_statuses.replace(" ", "").split(",")
             if part.isdigit()}
    return found or None


def status_problem(value: str) -> str | None:
    """What is wrong with a list of valid statuses as the operator wrote it, or ``None``."""
    parts = [part for part in value.replace(" ", "").split(",") if part]
    if all(part.isdigit() and 100 <= int(part) <= 599 for part in parts):
        return None
    return _("Write HTTP statuses (100–599) separated by commas, e.g. 200, 204.")


def is_configured(connector: Connector) -> bool:
    return bool(connector.api_base_url and connector.test_request_path)


@sensitive_variables()
def check(connector: Connector, secret: auth_types.Secret, *,
          config: dict[str, Any] | None = None,
          metadata: dict[str, Any] | None = None) -> CheckResult:
    """GET the test path under this account's API base URL (``config``: its connection
    parameters; ``metadata``: what its token response said) with ``secret`` placed as the
    connector says."""
    try:
        base = connector.url("api_base_url", config or {}, metadata or {})
    except connection_params.ParameterError as exc:
        return CheckResult(False, connector.api_base_url, error=_(
            "The test request's URL cannot be built: %(error)s") % {"error": exc.message})
    url = connector.api_url(connector.test_request_path, base=base)
    problem = protocol.insecure_url_problem(url, allow_http=settings.DEBUG)
    if problem:
        return CheckResult(False, url, error=_("The test request URL %(problem)s.") % {
            "problem": problem})
    headers, params = auth_types.apply(connector.placement, secret,
                                       {"Accept": "application/json"})
    sent_url = url
    if params:
        sent_url += ("&" if "?" in url else "?") + urlencode(params)
    try:
        answer = protocol.send_request("GET", sent_url, headers=headers,
                                       timeout=app_settings.HTTP_TIMEOUT,
                                       allow_http=settings.DEBUG, what="test request",
                                       read_body=False)
    except protocol.OAuthError as exc:
        return CheckResult(False, url, error=_("The test request GET %(url)s failed: %(error)s")
                           % {"url": url, "error": exc})
    statuses = valid_statuses(connector)
    if (answer.status in statuses) if statuses else answer.status < 400:
        return CheckResult(True, url, answer.status)
    return CheckResult(False, url, answer.status, _(
        "The test request GET %(url)s answered HTTP %(status)s.") % {
        "url": url, "status": answer.status})

