"""``{% load alloy_oauth %}``: the connect button and its script.

    {% alloy_oauth_script %}
    {% alloy_oauth_connect_button "github" %}
    {% alloy_oauth_connect_button connector label="Reconnect" next="/settings/" %}
    {% alloy_oauth_connect_button "shopify" params=shop_params %}   {# {"shop": "acme"} #}
    {% alloy_oauth_logo connector %}
    {{ credential.last_refreshed_at|alloy_oauth_ago }}        {# "just now", "5 minutes ago" #}
    {{ credential.expires_at|alloy_oauth_expiry }}   {# "access expires in 5 minutes" #}

The button opens the connector's consent page in a popup (``AlloyOAuth.connect``) and, by
default, reloads the page when the connection is made; it dispatches ``alloy-oauth:connected``
and ``alloy-oauth:error`` events (bubbling, ``event.detail`` = the result) either way.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import template
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _

from .. import auth_types, connection_params, tickets
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
    """A connector (or its slug). An unknown, inactive or unvalidated one (not live:
    ``Connector.is_live``) renders nothing, with a warning
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
    if found is None or not found.is_live or (
            found.auth_type not in auth_types.END_USER_TYPES):  # (client credentials)
        logger.warning("alloy_oauth_connect_button: no live connector %r that end users connect "
                       "(unknown, inactive, not validated, or client credentials); nothing "
                       "rendered.", str(connector))
        return {"slug": ""}
    query: dict[str, Any] = {"next": next} if next else {}
    query.update({str(name): str(value) for name, value in (params or {}).items()
                  if str(name) not in connection_params.RESERVED_NAMES})
    if credential is not None and credential != "":
        query["credential"] = str(getattr(credential, "pk", credential))
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and hasattr(request, "session"):
        query["ticket"] = tickets.issue_ticket(
            request.session, tickets.start_purpose(found.slug, user.pk))
    return {
        "slug": found.slug,
        "name": found.name,
        "connector": found,
        "label": label,
        "next": next,
        "css_class": css_class,
        "authorize_url": reverse("alloy_oauth:authorize", args=[found.slug])
        + ("?" + urlencode(query, safe="/") if query else ""),
    }


@register.inclusion_tag("alloy_oauth/connector_logo.html")
def alloy_oauth_logo(connector: Connector, size: int = 24) -> dict[str, Any]:
    """The connector's logo (``Connector.logo_url``) as an ``<img>`` of ``size`` pixels, or
    its initial in a neutral badge when it has none."""
    return {"src": connector.logo_src, "initial": connector.logo_initial, "size": size}


#: Closer than this to now, a moment is "just now": "0 minutes ago" says nothing.
JUST_NOW = timedelta(minutes=1)


@register.filter
def alloy_oauth_ago(value: datetime | None) -> str:
    """``"just now"`` within a minute, else ``"5 minutes ago"`` (``"in 5 minutes"`` for a
    moment to come: clocks differ)."""
    if value is None:
        return ""
    now = timezone.now()
    if abs(now - value) < JUST_NOW:
        return _("just now")
    if value > now:
        return _("in %(time)s") % {"time": timeuntil(value, now)}
    return _("%(time)s ago") % {"time": timesince(value, now)}


@register.filter
def alloy_oauth_expiry(value: datetime | None) -> str:
    """When an access token expires, as the Connections page says it: "access expires in 5
    minutes", "access expires in less than a minute", "access expired 5 minutes ago" (the
    refresh is late) or "access expired just now"."""
    if value is None:
        return ""
    left = value - timezone.now()
    if left >= JUST_NOW:
        return _("access expires in %(time)s") % {"time": timeuntil(value)}
    if left >= timedelta(0):
        return _("access expires in less than a minute")
    return _("access expired %(when)s") % {"when": alloy_oauth_ago(value)}
