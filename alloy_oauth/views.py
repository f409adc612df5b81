"""The two endpoints of the authorization-code flow. Thin: the work is in ``authorization``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_variables
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from . import authorization, headless, protocol
from .conf import app_settings
from .models import AuthorizationRequest, Connector, Credential, callback_url
from .refresh import Result

#: Longest ``next`` URL kept.
MAX_NEXT_LENGTH = 2000


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def no_store(response: HttpResponse) -> HttpResponse:
    """``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer``: the URLs of this flow
    carry ``state`` and ``code``, which must not be cached or leak onwards."""
    add_never_cache_headers(response)
    response["Referrer-Policy"] = "no-referrer"
    return response


def oauth_response_headers(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """:func:`no_store` on every response of ``view``."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        return no_store(view(request, *args, **kwargs))

    return wrapped


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


def request_origin(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


@oauth_response_headers
@require_GET
def authorize(request: HttpRequest, slug: str) -> HttpResponse:
    """Send the end user to the connector's consent page: the logged-in user, or the one a
    headless connect link names (``?link=``, see :mod:`alloy_oauth.headless`). With
    ``?popup=1`` the callback answers with a page that reports to the opener and closes."""
    for name, values in request.GET.lists():
        limit = MAX_NEXT_LENGTH if name == "next" else authorization.MAX_PARAM_LENGTH
        if len(values) > 1 or any(len(value) > limit for value in values):
            return _failure_page(request, "invalid_request", _(
                "This address has a repeated or oversized parameter."), None)
    link = request.GET.get("link")
    if not link and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    connector = get_object_or_404(Connector, slug=slug, is_active=True)
    owner: dict[str, Any] = {"user": request.user}
    next_url = request.GET.get("next")
    if link:
        try:
            external_id, next_url = headless.read_connect_link(link, slug)
        except headless.InvalidConnectLink as exc:
            return _failure_page(request, "invalid_link", str(exc), None)
        owner = {"external_id": external_id, "link_hash": headless.link_hash(link)}
    popup = request.GET.get("popup") == "1"
    try:
        url = authorization.start(
            connector,
            session=request.session,
            redirect_uri=callback_url(request),
            next_url=safe_next_url(request, next_url),
            popup=popup,
            opener_origin=request_origin(request) if popup else "",
            **owner,
        )
    except protocol.OAuthError as exc:
        return _failure_page(request, "configuration", str(exc), connector)
    except IntegrityError:  # the same link, twice at the same moment
        return _failure_page(request, "invalid_link", _(
            "This connect link has already been used; ask for a new one."), None)
    except authorization.TooManyPending as exc:
        return _failure_page(request, "too_many_pending", str(exc), None, status=429)
    return HttpResponseRedirect(url)


@transaction.non_atomic_requests  # the state is used up for good, even if a later step fails
@oauth_response_headers
@require_GET
@sensitive_variables("params")
def callback(request: HttpRequest) -> HttpResponse:
    """Where every connector's provider sends the browser back."""
    params = request.GET
    hide_callback_parameters(request)
    try:
        completed = authorization.complete(params, request.session)
    except authorization.AuthorizationFailed as exc:
        if exc.pending is not None and exc.pending.popup:
            return popup_result(request, exc.pending, {
                "status": "error", "reason": exc.reason, "message": exc.message,
            }, status=400)
        return _failure_page(request, exc.reason, exc.message, exc.connector)
    pending = completed.pending
    if pending.popup:
        if completed.credential is None:
            return popup_result(request, pending, {"status": "validated"})
        return popup_result(request, pending, {
            "status": "connected", "credential": completed.credential.pk,
            "created": completed.created,
        })
    return HttpResponseSeeOther(
        pending.next_url or reverse("alloy_oauth:connected", args=[pending.connector.slug])
    )


def popup_result(request: HttpRequest, pending: AuthorizationRequest, result: dict[str, Any],
                 *, status: int = 200) -> HttpResponse:
    """The page the popup lands on: it posts ``result`` (never a token) to its opener, at the
    exact origin that opened it, and closes; without an opener it offers a link onwards."""
    result = {"source": "alloy_oauth", "connector": pending.connector.slug, **result}
    return render(request, "alloy_oauth/popup.html", {
        "result": result,
        "opener_origin": pending.opener_origin,
        "connector": pending.connector,
        "next_url": pending.next_url,
    }, status=status)


@require_GET
def connected(request: HttpRequest, slug: str) -> HttpResponse:
    """The default page after a successful connection."""
    connector = get_object_or_404(Connector, slug=slug)
    return render(request, "alloy_oauth/connected.html", {"connector": connector})


@login_required
@require_GET
def connections(request: HttpRequest) -> HttpResponse:
    """The end user's connections: every active connector, with their status at each."""
    credentials = {
        credential.connector_id: credential
        for credential in Credential.objects.for_owner(user=request.user)
    }
    warn_before = timezone.now() + timedelta(seconds=app_settings.REFRESH_TOKEN_EXPIRY_WARNING)
    rows = []
    for connector in Connector.objects.filter(is_active=True).order_by("name"):
        credential = credentials.get(connector.pk)
        state = _connection_state(credential)
        rows.append({
            "connector": connector, "credential": credential, "state": state,
            "reconnect_by": credential.refresh_token_expires_at
            if state == "connected" and credential.refresh_token_expires_at
            and credential.refresh_token_expires_at <= warn_before else None,
            "scopes_missing": credential.scopes_missing if state == "connected" else [],
        })
    return render(request, "alloy_oauth/connections.html", {"rows": rows})


def _connection_state(credential: Credential | None) -> str:
    """What the end user sees: ``connected``, ``reconnect`` or ``not_connected``."""
    if credential is None or credential.status == Credential.Status.REVOKED:
        return "not_connected"
    if credential.status == Credential.Status.ACTIVE:
        return "connected"
    return "reconnect"


@login_required
@require_POST
def disconnect(request: HttpRequest, slug: str) -> HttpResponse:
    """Revoke the user's grant at the provider (when it can) and delete the tokens."""
    connector = get_object_or_404(Connector, slug=slug)
    credential = Credential.objects.for_owner(user=request.user).filter(
        connector=connector).first()
    if credential is not None:
        outcome = credential.revoke()
        if outcome.result in (Result.REVOKED, Result.NOT_REFRESHABLE):
            messages.success(request, _("Disconnected from %(name)s.") % {"name": connector},
                             fail_silently=True)
        else:
            messages.error(request, _("%(name)s could not be disconnected: %(message)s") % {
                "name": connector, "message": outcome.message}, fail_silently=True)
    next_url = safe_next_url(request, request.POST.get("next"))
    return HttpResponseSeeOther(next_url or reverse("alloy_oauth:connections"))


def _failure_page(
    request: HttpRequest, reason: str, message: str, connector: Connector | None,
    status: int = 400,
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
    return render(request, "alloy_oauth/error.html", context, status=status)
