"""Connect links for end users who are not Django users (headless, embedded use).

Host code names its own end user by ``external_id`` and gets a signed, short-lived, single-use
URL; opened in a browser (directly, or with ``AlloyOAuth.connect(slug, {url})``) it starts the
same authorization flow as for a logged-in user, and the credential is stored for that
``external_id``::

    from alloy_oauth.headless import connect_url

    url = connect_url("github", external_id="customer-42", next_url="/done/")
    url = connect_url("shopify", external_id="customer-42", params={"shop": "acme"})

The link is a bearer capability: whoever opens it first connects *their* provider account as
that end user. Make one per click, hand it only to that end user, keep it short-lived
(``CONNECT_LINK_MAX_AGE``). A link works once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.core import signing
from django.urls import reverse

from . import connection_params
from .conf import app_settings
from .models import AuthorizationRequest, Connector, absolute_url

__all__ = ["connect_url", "InvalidConnectLink"]

SALT = "alloy_oauth.headless.connect"
#: Longest external id accepted (the Credential field's length).
MAX_EXTERNAL_ID = 255


class InvalidConnectLink(Exception):
    """The link is forged, expired, already used, or for another connector."""


def connect_url(
    connector: Connector | str,
    external_id: str,
    *,
    next_url: str = "",
    request: Any = None,
    params: dict[str, str] | None = None,
) -> str:
    """A signed link that connects ``external_id``'s account at ``connector``.

    ``next_url`` must be a path on this site (checked again when the link is used). ``params``:
    values of the connector's connection parameters (``{"shop": "acme"}``), fixed by the link;
    each must be valid (``ValueError`` otherwise), and the end user is asked for any other. The
    URL is absolute when ``CALLBACK_BASE_URL`` is set or ``request`` is given, else a path.
    """
    slug = connector.slug if isinstance(connector, Connector) else connector
    if not external_id or len(external_id) > MAX_EXTERNAL_ID:
        raise ValueError(f"external_id must be 1 to {MAX_EXTERNAL_ID} characters.")
    payload: dict[str, Any] = {"c": slug, "e": external_id, "n": next_url}
    if params:
        payload["p"] = _checked_params(connector, params)
    token = signing.dumps(payload, salt=SALT, compress=True)
    path = reverse("alloy_oauth:authorize", args=[slug]) + "?" + urlencode({"link": token})
    return absolute_url(path, request)


def _checked_params(connector: Connector | str, params: dict[str, str]) -> dict[str, str]:
    if not isinstance(connector, Connector):
        connector = Connector.objects.filter(slug=connector).first()
        if connector is None:
            raise ValueError("No connector has this slug.")
    declared = connector.params
    unknown = sorted(set(params) - {param.name for param in declared})
    if unknown:
        raise ValueError(f"{connector.slug} has no connection parameter {', '.join(unknown)}.")
    values, errors = connection_params.read_values(declared, params, names=params)
    if errors:
        raise ValueError(" ".join(errors.values()))
    return values


@dataclass(frozen=True)
class ConnectLink:
    """What a valid connect link says."""

    external_id: str
    next_url: str = ""
    #: Connection parameter values the link fixes.
    params: dict[str, str] = field(default_factory=dict)


def read_connect_link(token: str, slug: str) -> ConnectLink:
    """What a valid link for connector ``slug`` says; raises :class:`InvalidConnectLink`
    otherwise. Using a link twice is refused (see ``link_hash``)."""
    try:
        data = signing.loads(token, salt=SALT, max_age=app_settings.CONNECT_LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise InvalidConnectLink("This connect link has expired; ask for a new one.") from None
    except signing.BadSignature:
        raise InvalidConnectLink("This connect link is not valid.") from None
    if not isinstance(data, dict) or data.get("c") != slug or not data.get("e"):
        raise InvalidConnectLink("This connect link is not valid.")
    if AuthorizationRequest.objects.filter(link_hash=link_hash(token)).exists():
        raise InvalidConnectLink("This connect link has already been used; ask for a new one.")
    params = data.get("p")
    return ConnectLink(str(data["e"]), str(data.get("n") or ""),
                       {str(k): str(v) for k, v in params.items()}
                       if isinstance(params, dict) else {})


def link_hash(token: str) -> str:
    """What the authorization request records of the link that started it: a second use of
    the same link is then recognised (the unique column refuses it even under a race)."""
    return hashlib.sha256(token.encode()).hexdigest()
