"""``{% load alloy_oauth %}``: the connect button and its script.

    {% alloy_oauth_script %}
    {% alloy_oauth_connect_button "github" %}
    {% alloy_oauth_connect_button connector label="Reconnect" next="/settings/" %}
    {% alloy_oauth_connect_button "shopify" params=shop_params %}   {# {"shop": "acme"} #}

The button opens the connector's consent page in a popup (``AlloyOAuth.connect``) and, by
default, reloads the page when the connection is made; it dispatches ``alloy-oauth:connected``
and ``alloy-oauth:error`` events (bubbling, ``event.detail`` = the result) either way.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from django import template
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import format_html

from .. import auth_types, authorization, connection_params
from ..models import Connector

register = template.Library()
logger = logging.getLogger(__name__)


@register.simple_tag
def alloy_oauth_script() -> str:
    return format_html('<script src="{}" defer></script>', static("alloy_oauth/connect.js"))


@register.inclusion_tag("alloy_oauth/connect_button.html", takes_context=True)
def alloy_oauth_connect_button(
    context: template.Context, connector: Connector | str, label: str = "", next: str = "",
    css_class: str = "", params: dict[str, Any] | None = None, credential: Any = None,
) -> dict[str, Any]:
    """A connector (or its slug). An unknown or inactive one renders nothing, with a warning
    in the log: its authorize URL would answer 404. For a logged-in user (``request`` in the
    context) the link carries a start ticket, so it goes straight to the provider; without
    one the person is asked to confirm first. Like ``{% csrf_token %}``, the ticket is per
    session: the page varies on Cookie and must not go into a cache shared between users.

    ``params``: values of the connector's connection parameters (a dict, e.g.
    ``{"shop": "acme"}``); the person is asked for the others before the provider.
    ``credential``: the account to reconnect (a credential or its id), for a connector that
    allows several accounts per end user."""
    found = connector if isinstance(connector, Connector) else (
        Connector.objects.filter(slug=connector).first())
    if found is None or not found.is_active or (
            found.auth_type not in auth_types.END_USER_TYPES):  # (client credentials)
        logger.warning("alloy_oauth_connect_button: no active connector %r (that end users "
                       "connect); nothing rendered.", str(connector))
        return {"slug": ""}
    query: dict[str, Any] = {"next": next} if next else {}
    query.update({str(name): str(value) for name, value in (params or {}).items()
                  if str(name) not in connection_params.RESERVED_NAMES})
    if credential is not None and credential != "":
        query["credential"] = str(getattr(credential, "pk", credential))
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and hasattr(request, "session"):
        query["ticket"] = authorization.issue_ticket(
            request.session, authorization.start_purpose(found.slug, user.pk))
    return {
        "slug": found.slug,
        "name": found.name,
        "label": label,
        "next": next,
        "css_class": css_class,
        "authorize_url": reverse("alloy_oauth:authorize", args=[found.slug])
        + ("?" + urlencode(query, safe="/") if query else ""),
    }
