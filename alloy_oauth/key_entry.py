"""The end user's own page for an API key, Basic or Bearer connector: instead of a
provider's consent page, the connect popup (or window) shows a form on this site where the
end user enters their key, user name and password, or token. It is a POST form with CSRF
protection; the values are checked with the connector's test request before they are
stored, encrypted, and never shown back. ``alloy_oauth:authorize`` sends starts of such
connectors here with their query (``next``, ``popup``, ``flow``, a headless ``link``,
connection parameters)."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from . import auth_types, entered_secrets, headless, protocol, tickets
from .models import AuthorizationRequest, Connector
from .secret_forms import EnteredSecretForm
from .responses import (
    FLOW_ID, HttpResponseSeeOther, start_failure, no_store, popup_result, safe_next_url,
)
from .views import CONNECTED_SESSION_KEY


@method_decorator(xframe_options_deny, name="dispatch")
@method_decorator(sensitive_post_parameters(), name="dispatch")
class EnterSecretView(View):
    """``alloy_oauth:enter_secret``: the form (GET), and storing what it checked (POST)."""

    http_method_names = ["get", "post"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # "same-origin": the form's POST needs an Origin header (Django's CSRF check).
        return no_store(super().dispatch(request, *args, **kwargs), "same-origin")

    def setup_flow(self, request: HttpRequest, slug: str) -> HttpResponse | None:
        """Read the start's query; a response when it cannot go on."""
        params = request.GET
        self.popup = params.get("popup") == "1"
        self.flow = params.get("flow", "")
        self.link = params.get("link", "")
        self.slug = slug
        if not self.link and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if self.flow and not FLOW_ID.fullmatch(self.flow):
            return self.fail("invalid_request", _("This address has an invalid parameter."))
        self.connector = get_object_or_404(Connector, Connector.LIVE, slug=slug)
        if self.connector.auth_type not in auth_types.ENTERED_TYPES:
            raise Http404("This connector is not connected with an entered secret.")
        self.owner: dict[str, Any] = {"user": request.user}
        self.next_url = safe_next_url(request, params.get("next"))
        fixed: dict[str, str] = {}
        if self.link:
            try:
                connect_link = headless.read_connect_link(self.link, slug)
            except headless.InvalidConnectLink as exc:
                return self.fail("invalid_link", str(exc))
            self.owner = {"external_id": connect_link.external_id}
            self.next_url = safe_next_url(request, connect_link.next_url)
            fixed = connect_link.params
        # Connection parameters: fixed by the link, else asked for on the form (pre-filled
        # from the query: ?shop=acme, the connect button's params).
        self.config = fixed
        self.ask = {param.name: params.get(param.name, "") for param in self.connector.params
                    if param.name not in fixed}
        return None

    def form(self, data: Any = None) -> EnteredSecretForm:
        return EnteredSecretForm(self.connector, data, config=self.config, ask=self.ask)

    def fail(self, reason: str, message: str) -> HttpResponse:
        return start_failure(self.request, reason, message, self.slug, self.popup, self.flow,
                             next_url=getattr(self, "next_url", ""), headless=bool(self.link))

    def page(self, form: EnteredSecretForm, status: int = 200) -> HttpResponse:
        return render(self.request, "alloy_oauth/enter_secret.html", {
            "connector": self.connector, "form": form, "site": self.request.get_host(),
            "headless": bool(self.link)}, status=status)

    def get(self, request: HttpRequest, slug: str) -> HttpResponse:
        return self.setup_flow(request, slug) or self.page(self.form())

    @sensitive_variables()
    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        refused = self.setup_flow(request, slug)
        if refused:
            return refused
        form = self.form(request.POST)
        if not form.is_valid():
            return self.page(form, status=400)
        self.config = form.config
        try:
            with transaction.atomic():
                if self.link:
                    self.use_link()
                credential, created = entered_secrets.store(
                    self.connector, form.secret_values(), config=self.config, **self.owner)
        except IntegrityError:  # the same link, twice at the same moment
            return self.fail("invalid_link", _(
                "This connect link has already been used; ask for a new one."))
        if self.popup:
            return popup_result(request, slug, self.flow, {
                "status": "connected", "credential": credential.pk, "created": created},
                next_url=self.next_url)
        request.session[CONNECTED_SESSION_KEY] = {
            **request.session.get(CONNECTED_SESSION_KEY, {}), slug: credential.pk}
        return HttpResponseSeeOther(
            self.next_url or reverse("alloy_oauth:connected", args=[slug]))

    def use_link(self) -> None:
        """A headless link works once: recorded as a finished authorization of its own
        (the unique ``link_hash`` refuses a second use, also under a race)."""
        now = timezone.now()
        AuthorizationRequest.objects.create(
            connector=self.connector, external_id=self.owner["external_id"],
            link_hash=headless.link_hash(self.link),
            state_hash=protocol.hash_state(secrets.token_urlsafe(32)), redirect_uri="",
            session_binding=tickets.browser_binding(self.request.session, create=True),
            expires_at=now, consumed_at=now)


enter_secret = EnterSecretView.as_view()
