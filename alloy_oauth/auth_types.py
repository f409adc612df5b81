"""Authentication types of a connector, and where each one's secret goes on an API request.

A connector authenticates its API requests in one of five ways (``Connector.auth_type``):
an OAuth 2.0 access token obtained by an end user (``oauth2``) or by the client itself
(``oauth2_client_credentials``, RFC 6749 §4.4), or a secret entered by a person: an API key,
a user name and password (HTTP Basic), or a bearer token. Wherever it comes from, the secret
is placed on each request the same way, as the connector says: in a header made from a
template (``Authorization: {token_type} {token}``, ``X-Api-Key: {api_key}``), or as a query
parameter. See ``docs/auth-types.md``.

Plain values in, plain values out: no model, no request (the session and the forms use it).
"""

from __future__ import annotations

import base64
import logging
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables
from requests.utils import DEFAULT_PORTS

OAUTH2 = "oauth2"
CLIENT_CREDENTIALS = "oauth2_client_credentials"
API_KEY = "api_key"
BASIC = "basic"
BEARER = "bearer"

#: Types whose token comes from a token endpoint, and is refreshed by the engine.
OAUTH_TYPES = frozenset({OAUTH2, CLIENT_CREDENTIALS})
#: Types whose secret a person enters (the operator, or the end user in the connect popup):
#: nothing to refresh, checked with the connector's test request before it is stored.
ENTERED_TYPES = frozenset({API_KEY, BASIC, BEARER})

#: Types whose credentials end users connect themselves (a client credentials connector has
#: no end users: the authorize URL, the Connections page and the connect button ignore it).
END_USER_TYPES = frozenset({OAUTH2, *ENTERED_TYPES})

HEADER = "header"
QUERY = "query"

DEFAULT_HEADER = "Authorization"
DEFAULT_TEMPLATE = "{token_type} {token}"

#: The placeholders a header template may use, per type. ``{token}`` is always the secret
#: itself (the access token, the API key, the bearer token; for Basic the base64 of
#: ``username:password``) and ``{token_type}`` the scheme that goes with it, so the default
#: template suits every type.
PLACEHOLDERS: dict[str, frozenset[str]] = {
    OAUTH2: frozenset({"token_type", "token"}),
    CLIENT_CREDENTIALS: frozenset({"token_type", "token"}),
    BEARER: frozenset({"token_type", "token"}),
    API_KEY: frozenset({"token_type", "token", "api_key"}),
    BASIC: frozenset({"token_type", "token", "username", "password"}),
}

#: The scheme ``{token_type}`` stands for when the type has no token response to say it.
SCHEMES = {API_KEY: "Bearer", BASIC: "Basic", BEARER: "Bearer"}


@dataclass(frozen=True)
class Placement:
    """Where a connector puts the secret: a header made from a template, or a query parameter
    (whose value is the secret itself, ``{token}``)."""

    auth_type: str = OAUTH2
    where: str = HEADER
    header: str = DEFAULT_HEADER
    template: str = DEFAULT_TEMPLATE
    query_param: str = ""


@dataclass(frozen=True)
class Secret:
    """What one credential authenticates with (never logged: ``repr`` shows no value)."""

    token: str = field(default="", repr=False)
    token_type: str = "Bearer"
    api_key: str = field(default="", repr=False)
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)


def template_problem(template: str, auth_type: str) -> str | None:
    """What is wrong with a header template for ``auth_type``, or ``None``. Only plain
    ``{name}`` placeholders of the type are allowed (no attribute, index, conversion or
    format: a template must not reach into anything but the values it is given)."""
    allowed = PLACEHOLDERS.get(auth_type, PLACEHOLDERS[OAUTH2])
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return str(_("Unbalanced braces: write {{ and }} for literal braces."))
    names = [name for _text, name, spec, conversion in parts if name is not None]
    if any(spec or conversion for _text, name, spec, conversion in parts if name is not None):
        return str(_("Placeholders take no format or conversion: write {token}, not {token!r}."))
    unknown = sorted({name for name in names if name not in allowed})
    if unknown:
        return str(_("Unknown placeholder(s) %(unknown)s: this type allows %(allowed)s.") % {
            "unknown": ", ".join("{%s}" % name for name in unknown),
            "allowed": ", ".join("{%s}" % name for name in sorted(allowed))})
    if not names:
        return str(_("The template must contain the secret, e.g. {token}."))
    if any(char in template for char in "\r\n\0"):
        return str(_("A header value cannot contain line breaks."))
    return None


@sensitive_variables()
def values(placement: Placement, secret: Secret) -> dict[str, str]:
    """The placeholder values of ``secret`` for the connector's type."""
    if placement.auth_type == BASIC:
        pair = f"{secret.username}:{secret.password}".encode()
        return {"token_type": SCHEMES[BASIC], "token": base64.b64encode(pair).decode(),
                "username": secret.username, "password": secret.password}
    if placement.auth_type == API_KEY:
        return {"token_type": SCHEMES[API_KEY], "token": secret.api_key,
                "api_key": secret.api_key}
    token_type = SCHEMES[BEARER] if placement.auth_type == BEARER else secret.token_type
    return {"token_type": token_type or SCHEMES[BEARER], "token": secret.token}


@sensitive_variables()
def apply(placement: Placement, secret: Secret, headers: Mapping[str, str]
          ) -> tuple[dict[str, str], dict[str, str]]:
    """``(headers, query parameters)`` to send: ``headers`` with the secret added as the
    connector says, and the query parameter that carries it (none for a header)."""
    found = values(placement, secret)
    if placement.where == QUERY:
        QUERY_SECRET_FILTER.names.add(placement.query_param)
        return dict(headers), {placement.query_param: found["token"]}
    rendered = placement.template.format_map(found) if placement.template else found["token"]
    return {**headers, placement.header or DEFAULT_HEADER: rendered}, {}


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``, the port written out (``https://a`` is
    ``https://a:443``): the unit a secret is allowed to go to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme)


def secret_names(placement: Placement) -> tuple[set[str], set[str]]:
    """``(header names, query parameter names)`` that carry the secret: what a redirect to
    another host must lose (``Authorization`` always, as requests itself does)."""
    headers = {DEFAULT_HEADER}
    if placement.where == HEADER:
        headers.add(placement.header or DEFAULT_HEADER)
    return headers, ({placement.query_param} if placement.where == QUERY else set())


class QuerySecretFilter(logging.Filter):
    """Redacts the values of the query parameters that carry secrets from urllib3's DEBUG
    lines (``"GET /items?api_key=… HTTP/1.1" 200``), the only place an HTTP client writes
    a URL down. ``AppConfig.ready()`` installs it; :func:`apply` names the parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.names:
            message = record.getMessage()
            redacted = re.sub(
                "([?&](?:%s)=)[^&\\s\"#]*" % "|".join(map(re.escape, sorted(self.names))),
                r"\1[redacted]", message)
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


QUERY_SECRET_FILTER = QuerySecretFilter()
#: The loggers whose records may hold a request's URL.
URL_LOGGERS = ("urllib3.connectionpool",)
