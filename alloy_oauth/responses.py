"""What the app's pages answer with, shared by the end user's views and the admin's
Validate credential: the headers of the flow's responses, the validated ``next``, the
failure page with its ways on, and the popup's answer to the page that opened it."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import get_script_prefix, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme

from .conf import app_settings
from .models import Connector

#: Longest ``next`` URL kept.
MAX_NEXT_LENGTH = 2000


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def no_store(response: HttpResponse, referrer_policy: str = "no-referrer") -> HttpResponse:
    """``Cache-Control: no-store`` and a strict ``Referrer-Policy``: the URLs of this flow
    carry ``state`` and ``code`` (or a connect link), which must not be cached or leak on."""
    add_never_cache_headers(response)
    response["Referrer-Policy"] = referrer_policy
    return response


def oauth_response_headers(
    view: Callable[..., HttpResponse] | None = None, *, referrer_policy: str = "no-referrer"
) -> Any:
    """:func:`no_store` on every response of ``view``."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            return no_store(view(request, *args, **kwargs), referrer_policy)

        return wrapped

    return decorate(view) if view is not None else decorate


def safe_next_url(request: HttpRequest, value: str | None) -> str:
    """``value`` when it is a URL on this site, else ``""`` (no open redirects).

    Absolute URLs must be https when the site is (judged by the request, or by an https
    ``CALLBACK_BASE_URL`` behind a proxy that does not say so).
    """
    if not value or len(value) > MAX_NEXT_LENGTH or not value.isprintable():
        return ""
    base = app_settings.CALLBACK_BASE_URL or ""
    if url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()},
        require_https=request.is_secure() or base.startswith("https://"),
    ):
        return value
    return ""


def hide_callback_parameters(request: HttpRequest) -> None:
    """Keep ``code`` and ``state`` out of error reports (Django's 500 page, the e-mails to
    ADMINS) should anything go wrong after this point: they show the request's query."""
    redacted = request.GET.copy()
    for name in redacted:
        redacted.setlist(name, ["[redacted]"] * len(redacted.getlist(name)))
    request.GET = redacted
    request.META["QUERY_STRING"] = redacted.urlencode(safe="[]")


#: What a flow id (connect.js's, echoed in the popup's result) may look like.
FLOW_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def failure_page(
    request: HttpRequest, reason: str, message: str, connector: Connector | None,
    status: int = 400, *, next_url: str = "", retry: bool = False, headless: bool = False,
) -> HttpResponse:
    """``alloy_oauth/error.html``: a sentence, a stable reason code, and the ways on
    (:func:`ways_on`: back, and "Try again" when ``retry`` says it may work)."""
    context = {
        "reason": reason,
        "message": message,
        "connector": connector,
        **ways_on(request, connector, next_url=next_url, retry=retry, headless=headless),
    }
    return render(request, "alloy_oauth/error.html", context, status=status)


def start_failure(request: HttpRequest, reason: str, message: str, slug: str, popup: bool,
                  flow: str, *, status: int = 400, **ways: Any) -> HttpResponse:
    """A failure to start a flow (``authorize``, the secret entry page): in a popup, the popup
    page (so the opener learns why). ``ways``: see :func:`ways_on`."""
    if popup:
        return popup_result(request, slug, flow, {
            "status": "error", "reason": reason, "message": message}, status=status, **ways)
    connector = Connector.objects.filter(slug=slug).first()
    return failure_page(request, reason, message, connector, status=status, **ways)


def popup_result(request: HttpRequest, slug: str, flow: str, result: dict[str, Any], *,
                 next_url: str = "", status: int = 200, retry: bool = False,
                 headless: bool = False) -> HttpResponse:
    """The page the popup lands on: it reports ``result`` (never a token) to the page that
    opened it, on this origin, and closes; opened without a popup, it links onwards (after
    a failure, as :func:`failure_page` does)."""
    result = {"source": "alloy_oauth", "connector": slug, "flow": flow, **result}
    connector = Connector.objects.filter(slug=slug).first()
    context = {"result": result, "connector": connector, "next_url": next_url}
    if result["status"] == "error":
        context.update(ways_on(request, connector, next_url=next_url, retry=retry,
                               headless=headless))
    return render(request, "alloy_oauth/popup.html", context, status=status)


def ways_on(request: HttpRequest, connector: Connector | None, *, next_url: str = "",
            retry: bool = False, headless: bool = False) -> dict[str, Any]:
    """Where a failure page leads, as template context.

    ``back_url``: where the flow started (its validated ``next_url``, which only the browser
    that started it is given), else the Connections page for a logged-in user, else the
    site's root; ``back_to`` says which (``"next"``, ``"connections"``, ``"site"``).
    ``retry_url``: a new start for the same connector and ``next``, when starting again may
    work (``retry``) for a logged-in user and the connector is live; it has no start ticket,
    so the person confirms on the "Continue to …" page first. ``new_link_needed``: the flow
    came from a headless connect link, which works once: its end user needs a new one.
    """
    if next_url:
        back_to, back_url = "next", next_url
    elif request.user.is_authenticated:
        back_to, back_url = "connections", reverse("alloy_oauth:connections")
    else:
        back_to, back_url = "site", get_script_prefix()
    retry_url = None
    if (retry and not headless and request.user.is_authenticated
            and connector is not None and connector.is_live):
        retry_url = reverse("alloy_oauth:authorize", args=[connector.slug])
        if next_url:
            retry_url += "?" + urlencode({"next": next_url})
    return {"back_to": back_to, "back_url": back_url, "retry_url": retry_url,
            "new_link_needed": headless}
