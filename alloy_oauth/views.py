"""The end user's pages: the authorization-code flow (authorize, callback) and the
Connections page. Thin: the work is in ``authorization``, ``headless`` and ``refresh``."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import (
    auth_types, authorization, connection_params, credential_store, headless, protocol, tickets,
    validation,
)
from .models import AuthorizationRequest, Connector, Credential, callback_url
from .outcomes import Result
from .responses import (
    FLOW_ID, MAX_NEXT_LENGTH, HttpResponseSeeOther, failure_page, hide_callback_parameters,
    oauth_response_headers, popup_result, safe_next_url, start_failure,
)

#: Session key: {connector slug: credential id} of the connections made in this session.
CONNECTED_SESSION_KEY = "alloy_oauth_connected"


# "same-origin": the confirmation form's POST needs an Origin header (CSRF), and nothing of
# the URL may reach the provider.
@oauth_response_headers(referrer_policy="same-origin")
@xframe_options_deny
@require_http_methods(["GET", "POST"])
def authorize(request: HttpRequest, slug: str) -> HttpResponse:
    """Send the end user to the connector's consent page: the logged-in user, or the one a
    headless connect link names (``link``, see :mod:`alloy_oauth.headless`).

    Parameters: ``next`` (a page of this site), ``popup=1`` (the callback then answers with a
    page that reports to the opening window), ``flow`` (connect.js's id for this attempt).
    A GET goes straight to the provider only with a ``ticket`` from one of our own pages
    (the connect button carries one, see :func:`tickets.issue_ticket`); a headless
    link, a navigation from another site, or a plain link first asks the person in front of
    the browser to confirm (a POST with CSRF): otherwise any site could silently connect
    whatever provider account the browser is signed in to, also through the login page.
    """
    params = request.POST if request.method == "POST" else request.GET
    # Before anything else: an anonymous visitor (with no headless link) learns nothing of the
    # parameters, and no page of theirs reports to other windows of this site.
    link = params.get("link")
    if not link and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    popup = params.get("popup") == "1"
    flow = params.get("flow", "")
    for name, values in params.lists():
        limit = MAX_NEXT_LENGTH if name == "next" else authorization.MAX_PARAM_LENGTH
        if len(values) > 1 or any(len(value) > limit for value in values) or (
            name == "flow" and not FLOW_ID.fullmatch(values[0])
        ):
            return start_failure(request, "invalid_request", _(
                "This address has a repeated or oversized parameter."), slug, popup, flow,
                headless=bool(link))
    connector = get_object_or_404(Connector, Connector.LIVE, slug=slug,
                                  auth_type__in=auth_types.END_USER_TYPES)
    if connector.auth_type in auth_types.ENTERED_TYPES:
        # No provider page: the end user enters the secret on our own (key_entry). 307
        # keeps the method and the query.
        return HttpResponseRedirect(reverse("alloy_oauth:enter_secret", args=[slug]) + (
            "?" + request.GET.urlencode() if request.GET else ""), preserve_request=True)
    owner: dict[str, Any] = {"user": request.user}
    next_url = safe_next_url(request, params.get("next"))
    fixed: dict[str, str] = {}
    if link:
        try:
            connect_link = headless.read_connect_link(link, slug)
        except headless.InvalidConnectLink as exc:
            return start_failure(request, "invalid_link", str(exc), slug, popup, flow,
                                 headless=True)
        owner = {"external_id": connect_link.external_id, "link_hash": headless.link_hash(link)}
        next_url = safe_next_url(request, connect_link.next_url)
        fixed = connect_link.params
    ways = {"next_url": next_url, "headless": bool(link)}
    owner_filter = {key: value for key, value in owner.items() if key != "link_hash"}
    try:
        account = _account_to_reconnect(connector, params.get("credential", ""), owner_filter)
    except Http404:
        return start_failure(request, "invalid_request", _(
            "This account is not one of your connections."), slug, popup, flow, **ways)
    config, fields = _connection_values(connector, params, fixed, account, owner_filter,
                                        submitted=request.method == "POST")
    cross_site = request.headers.get("Sec-Fetch-Site") == "cross-site"
    if config is None or (request.method == "GET" and (
            link or cross_site or not tickets.is_ticket(
                request.session, tickets.start_purpose(slug, request.user.pk),
                params.get("ticket", ""),
                max_age=tickets.START_TICKET_MAX_AGE,
            ))):
        # The confirmation, with the connection parameters still to be given (or corrected).
        names = {field["name"] for field in fields}
        invalid = any(field["error"] and field["given"] for field in fields)
        return render(request, "alloy_oauth/authorize_confirm.html", {
            "connector": connector, "site": request.get_host(), "headless": bool(link),
            "cross_site": cross_site, "params": fields,
            "fields": [(name, value) for name, value in params.items()
                       if name not in ("ticket", "csrfmiddlewaretoken") and name not in names],
        }, status=400 if invalid else 200)
    try:
        url = authorization.start(
            connector,
            session=request.session,
            redirect_uri=callback_url(request),
            next_url=next_url,
            popup=popup,
            flow_id=flow,
            connection_config=config,
            credential=account,
            **owner,
        )
    except (protocol.OAuthError, connection_params.ParameterError) as exc:
        return start_failure(request, "configuration", str(exc), slug, popup, flow, **ways)
    except IntegrityError:  # the same link, twice at the same moment
        return start_failure(request, "invalid_link", _(
            "This connect link has already been used; ask for a new one."), slug, popup, flow,
            **ways)
    except authorization.TooManyPending as exc:
        return start_failure(request, "too_many_pending", str(exc), slug, popup, flow,
                             status=429, retry=True, **ways)
    return HttpResponseSeeOther(url) if request.method == "POST" else HttpResponseRedirect(url)


def _account_to_reconnect(connector: Connector, value: str,
                          owner: dict[str, Any]) -> Credential | None:
    """The owner's credential that ``?credential=`` names (a Reconnect of one of several
    accounts), ``None`` when none is named; ``Http404`` when it is not the owner's at this
    connector."""
    if not value:
        return None
    found = Credential.objects.filter(pk=int(value), connector=connector, **owner).first() \
        if value.isdigit() and len(value) < 19 else None
    if found is None:
        raise Http404("No such account.")
    return found


def _connection_values(
    connector: Connector, params: Any, fixed: dict[str, str], account: Credential | None,
    owner: dict[str, Any], *, submitted: bool,
) -> tuple[dict[str, str] | None, list[dict[str, Any]]]:
    """The connection parameter values of this start (``None`` while some are missing or
    wrong: the form must be shown), and the form's fields for them (empty when the connector
    has none).

    Where a value comes from, first found first: the headless link (``fixed``, which the
    person cannot change); for a Reconnect of a named account, that account's own values;
    the request (the authorize URL's query, the connect button's ``params``, the form); for
    the one account of a connector that allows one, the values it was connected with
    (reconnecting keeps them), unless it was disconnected. An error is shown for a value that
    was given, and for every value once the form was submitted."""
    declared = connector.params
    if not declared:
        return {}, []
    given = {param.name: params[param.name] for param in declared if param.name in params}
    kept: dict[str, Any] = {}
    if account is not None:
        # (A value that no longer fits, the operator having changed the parameter since, is
        # asked for again rather than shown fixed.)
        kept = connection_params.read_values(declared, account.connection_config)[0]
        raw = {**given, **kept, **fixed}
    else:
        if not connector.allow_multiple_accounts:
            existing = Credential.objects.filter(connector=connector, **owner).exclude(
                status=Credential.Status.REVOKED).order_by("pk").first()
            kept = existing.connection_config if existing else {}
        raw = {**kept, **given, **fixed}
    values, errors = connector.connection_values(raw)
    fields = [{
        "name": param.name, "label": param.label, "help": param.help,
        "choices": param.choices, "value": raw.get(param.name, ""),
        "fixed": param.name in fixed or (account is not None and param.name in kept),
        "given": param.name in given,
        "error": errors.get(param.name, "") if submitted or param.name in given else "",
    } for param in declared]
    return (None if errors else values), fields


@transaction.non_atomic_requests  # the state is used up for good, even if a later step fails
@oauth_response_headers
@require_GET
@sensitive_variables("params")
def callback(request: HttpRequest) -> HttpResponse:
    """Where every connector's provider sends the browser back."""
    params = request.GET
    hide_callback_parameters(request)
    try:
        redeemed = authorization.complete(params, request.session)
    except authorization.AuthorizationFailed as exc:
        if exc.at_exchange and exc.pending.purpose == AuthorizationRequest.Purpose.VALIDATE:
            validation.finish(request.session, exc.pending.flow_id, exc.pending.connector,
                              validation.record_failure(exc.pending.connector, exc.message))
        pending = exc.pending  # (None unless this browser started it)
        ways: dict[str, Any] = {"retry": exc.retry}
        if pending is not None:
            ways = {"next_url": pending.next_url, "headless": bool(pending.external_id),
                    # (Validate credential is started again from the connector's page.)
                    "retry": exc.retry and pending.purpose == AuthorizationRequest.Purpose.CONNECT}
            if pending.popup:
                return popup_result(request, pending.connector.slug, pending.flow_id, {
                    "status": "error", "reason": exc.reason, "message": exc.message,
                }, status=400, **ways)
        return failure_page(request, exc.reason, exc.message, exc.connector, **ways)
    pending = redeemed.pending
    credential = None
    if pending.purpose == AuthorizationRequest.Purpose.VALIDATE:
        # The admin's Validate credential: a report on the token, which is not kept.
        validation.finish(request.session, pending.flow_id, pending.connector,
                          validation.record_round_trip(
                              pending.connector, redeemed.token, redeemed.requested_scopes,
                              config=pending.connection_config, metadata=redeemed.metadata))
    else:
        credential, created = credential_store.store_credential(redeemed)
    if pending.popup:
        result: dict[str, Any] = {"status": "validated"}
        if credential is not None:
            result = {"status": "connected", "credential": credential.pk, "created": created}
        return popup_result(request, pending.connector.slug, pending.flow_id, result,
                            next_url=pending.next_url)
    if credential is not None:
        # What the default landing page may show to this browser session, and no other.
        request.session[CONNECTED_SESSION_KEY] = {
            **request.session.get(CONNECTED_SESSION_KEY, {}),
            pending.connector.slug: credential.pk,
        }
        if pending.next_url and credential.user_id is not None:
            # Back on the page it started from (popups blocked), which says so if it shows
            # messages, as the Connections page does. (Not for a headless end user: the
            # session may be the host's.)
            messages.success(request, _("Connected to %(name)s.") % {
                "name": pending.connector}, fail_silently=True)
    return HttpResponseSeeOther(
        pending.next_url or reverse("alloy_oauth:connected", args=[pending.connector.slug])
    )


@never_cache
@xframe_options_deny
@require_GET
def connected(request: HttpRequest, slug: str) -> HttpResponse:
    """The default page after a successful connection: only for the browser session that
    connected (the owner may be a headless end user, not a Django user), and only while that
    credential is still connected."""
    connector = get_object_or_404(Connector, slug=slug, is_active=True)
    credential_id = request.session.get(CONNECTED_SESSION_KEY, {}).get(slug)
    if not Credential.objects.filter(pk=credential_id, connector=connector,
                                     status=Credential.Status.ACTIVE).exists():
        raise Http404("No connection to show.")
    return render(request, "alloy_oauth/connected.html", {"connector": connector})


# Its Disconnect buttons are one click each: never inside another site's frame.
@never_cache
@xframe_options_deny
@login_required
@require_GET
def connections(request: HttpRequest) -> HttpResponse:
    """The end user's connections: every active connector, with their status at each; for a
    connector that allows several accounts, each account (but disconnected ones) with its
    own status, and a way to connect another. The page keeps itself up to date by polling
    :func:`connections_status`."""
    rows = _connection_rows(request.user)
    response = render(request, "alloy_oauth/connections.html", {
        "rows": rows, "status": _status_of(rows),
    })
    # Its Disconnect forms need the browser to send an Origin header (Django's CSRF check
    # refuses "Origin: null", which "no-referrer" gives); the template's meta says the same.
    response["Referrer-Policy"] = "same-origin"
    return response


@never_cache
@login_required
@require_GET
def connections_status(request: HttpRequest) -> JsonResponse:
    """What the Connections page shows, as JSON, for its connections.js to notice a change
    without a reload: per connection its connector, credential id, state and dates; never a token
    nor a secret. The same owner and protection as the page."""
    return JsonResponse(_status_of(_connection_rows(request.user)))


def _connection_rows(user: Any) -> list[dict[str, Any]]:
    """The rows of the Connections page (see ``connections.html``)."""
    credentials: dict[int, list[Credential]] = {}
    for credential in Credential.objects.for_owner(user=user).select_related(
            "connector").order_by("pk"):
        credentials.setdefault(credential.connector_id, []).append(credential)
    rows = []
    # Live connectors, and others the user still has tokens with (to disconnect).
    for connector in Connector.objects.filter(
        Connector.LIVE | Q(pk__in=list(credentials)),
        auth_type__in=auth_types.END_USER_TYPES,
    ).order_by("name"):
        mine = credentials.get(connector.pk, [])
        if connector.allow_multiple_accounts:
            accounts = [_connection_row(connector, credential) for credential in mine
                        if credential.status != Credential.Status.REVOKED]
            if accounts or connector.is_live:
                rows.append({"connector": connector, "multiple": True, "accounts": accounts,
                             "state": "connected" if accounts else "not_connected"})
            continue
        rows.append(_connection_row(connector, mine[0] if mine else None))
    return rows


def _status_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON of :func:`connections_status`: one entry per row and per account."""
    entries = []
    for row in rows:
        for shown in [row, *row.get("accounts", [])]:
            credential = shown.get("credential") if shown["state"] != "not_connected" else None
            entries.append({
                "connector": row["connector"].slug,
                "credential": credential.pk if credential else None,
                "state": shown["state"],
                "label": shown.get("label", ""),
                "expires_at": credential.expires_at if credential else None,
                "last_refreshed_at": credential.last_refreshed_at if credential else None,
                "reconnect_by": shown.get("reconnect_by"),
                "scopes_missing": shown.get("scopes_missing", []),
            })
    return {"connections": entries}


def _connection_row(connector: Connector, credential: Credential | None) -> dict[str, Any]:
    state = _connection_state(credential, connector)
    connected = state == "connected"
    return {
        "connector": connector, "credential": credential, "state": state, "multiple": False,
        "multiple_accounts": connector.allow_multiple_accounts,
        "label": credential.account_label if state != "not_connected" else "",
        "reconnect_by": credential.reconnect_by if connected else None,
        "scopes_missing": credential.scopes_missing if connected else [],
    }


def _connection_state(credential: Credential | None, connector: Connector) -> str:
    """What the end user sees: ``connected``, ``reconnect`` (their part), ``unavailable``
    (the operator's: connector disabled, misconfigured or not validated) or ``not_connected``."""
    if credential is None or credential.status == Credential.Status.REVOKED:
        return "not_connected"
    if not connector.is_live or credential.status == Credential.Status.ERROR:
        return "unavailable"
    if credential.status == Credential.Status.ACTIVE:
        return "connected"
    return "reconnect"


@login_required
@require_POST
def disconnect(request: HttpRequest, slug: str) -> HttpResponse:
    """Revoke the user's grant at the provider (when it can) and delete the tokens: the one
    named by ``credential`` (an account of a connector that allows several), else the user's
    one credential at the connector."""
    connector = get_object_or_404(Connector, slug=slug)
    mine = Credential.objects.for_owner(user=request.user).filter(connector=connector)
    named = request.POST.get("credential", "")
    if named:
        credential = mine.filter(pk=int(named)).first() \
            if named.isdigit() and len(named) < 19 else None
        if credential is None:
            messages.error(request, _("This account is not one of your connections."),
                           fail_silently=True)
    elif connector.allow_multiple_accounts and mine.exclude(
            status=Credential.Status.REVOKED).count() > 1:
        credential = None
        messages.error(request, _("Choose which %(name)s account to disconnect.") % {
            "name": connector}, fail_silently=True)
    else:
        credential = mine.order_by("pk").first()
    if credential is not None:
        account = credential.account_label
        name = f"{connector} ({account})" if account else str(connector)
        outcome = credential.revoke()
        if outcome.result in (Result.REVOKED, Result.NOT_REFRESHABLE):
            messages.success(request, _("Disconnected from %(name)s.") % {"name": name},
                             fail_silently=True)
        else:
            messages.error(request, _("%(name)s could not be disconnected: %(message)s") % {
                "name": name, "message": outcome.message}, fail_silently=True)
    next_url = safe_next_url(request, request.POST.get("next"))
    return HttpResponseSeeOther(next_url or reverse("alloy_oauth:connections"))
