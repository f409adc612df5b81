"""Connect links for end users who are not Django users (headless, embedded use).

Host code names its own end user by ``external_id`` and gets a signed, short-lived, single-use
URL; opened in a browser (directly, or with ``AlloyOAuth.connect(slug, {url})``) it starts the
same authorization flow as for a logged-in user, and the credential is stored for that
``external_id``::

    from alloy_oauth.headless import connect_url

    url = connect_url("github", external_id="customer-42", next_url="/done/")

The link is a bearer capability: whoever opens it first connects *their* provider account as
that end user. Make one per click, hand it only to that end user, keep it short-lived
(``CONNECT_LINK_MAX_AGE``). A link works once.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from django.core import signing
from django.urls import reverse

from .conf import app_settings
from .models import AuthorizationRequest, Connector, absolute_url

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
) -> str:
    """A signed link that connects ``external_id``'s account at ``connector``.

    ``next_url`` must be a path on this site (checked again when the link is used). The URL is
    absolute when ``CALLBACK_BASE_URL`` is set or ``request`` is given, else a path.
    """
    slug = connector.slug if isinstance(connector, Connector) else connector
    if not external_id or len(external_id) > MAX_EXTERNAL_ID:
        raise ValueError(f"external_id must be 1 to {MAX_EXTERNAL_ID} characters.")
    token = signing.dumps({"c": slug, "e": external_id, "n": next_url}, salt=SALT,
                          compress=True)
    path = reverse("alloy_oauth:authorize", args=[slug]) + "?" + urlencode({"link": token})
    return absolute_url(path, request)


def read_connect_link(token: str, slug: str) -> tuple[str, str]:
    """``(external_id, next_url)`` of a valid link for connector ``slug``; raises
    :class:`InvalidConnectLink` otherwise. Using a link twice is refused (see ``link_hash``)."""
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
    return str(data["e"]), str(data.get("n") or "")


def link_hash(token: str) -> str:
    """What the authorization request records of the link that started it: a second use of
    the same link is then recognised (the unique column refuses it even under a race)."""
    return hashlib.sha256(token.encode()).hexdigest()
