"""The two endpoints of the authorization-code flow. Thin: the work is in ``authorization``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET

from . import authorization, protocol
from .models import Connector, callback_url

#: Longest ``next`` URL kept.
MAX_NEXT_LENGTH = 2000


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def oauth_response_headers(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer`` on every response: the
    URLs of this flow carry ``state`` and ``code``, which must not be cached or leak onwards."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = view(request, *args, **kwargs)
        add_never_cache_headers(response)
        response["Referrer-Policy"] = "no-referrer"
        return response

    return wrapped


def safe_next_url(request: HttpRequest, value: str | None) -> str:
    """``value`` when it is a URL on this site, else ``""`` (no open redirects)."""
    if not value or len(value) > MAX_NEXT_LENGTH:
        return ""
    if url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return ""


@require_GET
@oauth_response_headers
def authorize(request: HttpRequest, slug: str) -> HttpResponse:
    """Send the logged-in end user to the connector's consent page."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    connector = get_object_or_404(Connector, slug=slug, is_active=True)
    try:
        url = authorization.start(
            connector,
            session=request.session,
            redirect_uri=callback_url(request),
            user=request.user,
            next_url=safe_next_url(request, request.GET.get("next")),
        )
    except protocol.OAuthError as exc:
        return _failure_page(request, "configuration", str(exc), connector)
    return HttpResponseRedirect(url)


@require_GET
@oauth_response_headers
def callback(request: HttpRequest) -> HttpResponse:
    """Where every connector's provider sends the end user back."""
    try:
        connected = authorization.complete(request.GET, request.session)
    except authorization.AuthorizationFailed as exc:
        return _failure_page(request, exc.reason, exc.message, exc.connector)
    slug = connected.credential.connector.slug
    return HttpResponseSeeOther(connected.next_url or reverse("alloy_oauth:connected", args=[slug]))


@require_GET
def connected(request: HttpRequest, slug: str) -> HttpResponse:
    """The default page after a successful connection."""
    connector = get_object_or_404(Connector, slug=slug)
    return render(request, "alloy_oauth/connected.html", {"connector": connector})


def _failure_page(
    request: HttpRequest, reason: str, message: str, connector: Connector | None
) -> HttpResponse:
    context = {
        "reason": reason,
        "message": message,
        "connector": connector,
        "retry_url": (
            reverse("alloy_oauth:authorize", args=[connector.slug])
            if connector is not None and connector.is_active else None
        ),
    }
    return render(request, "alloy_oauth/error.html", context, status=400)
