"""The credential pages: the list (status, expiry, failures) and the read-only change page
(tokens only as stored or not, the connection's values, the events), with the actions
Refresh now, Revoke and Mark for reconnection; the buttons are ``admin_actions``', the
*Add credential* page ``admin_credentials``'."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import admin_actions, entered_secrets
from .admin_actions import when
from .admin_base import ChangedByActionsOnly, SecretsHiddenFromViewers, secret_state, status_badge
from .admin_credentials import CredentialAddMixin
from .models import Credential
from .outcomes import Outcome, Result
from .refresh.revocation import mark_reauth_required, revoke_credential
from .refresh.single import refresh_one


def _time_field(name: str, *, relative: bool = False) -> Any:
    """A credential page's display of the time field ``name``, in the page's one format."""

    @admin.display(description=Credential._meta.get_field(name).verbose_name, ordering=name)
    def display(self: CredentialAdmin, obj: Credential) -> str:
        return when(getattr(obj, name), relative=relative)

    return display


def _json_table(values: Any) -> str:
    """A JSON object as a small table of its keys and values (``—`` when empty)."""
    if not isinstance(values, dict) or not values:
        return "—"
    return render_to_string("admin/alloy_oauth/credential/values.html", {
        "values": [(key, str(value)) for key, value in sorted(values.items())]})


class CredentialAdmin(CredentialAddMixin, ChangedByActionsOnly, SecretsHiddenFromViewers):
    list_display = [
        "owner", "connector", "account", "status_display", "expires_in", "last_refreshed",
        "failures", "last_error_short",
    ]
    list_filter = ["connector", "status"]
    search_fields = ["external_id", "user__username", "user__email"]
    list_select_related = ["connector", "user"]
    actions = ["refresh_now", "revoke", "mark_for_reconnection"]
    # Tokens are deliberately absent: only whether they are stored, and their last four
    # characters for staff who may act on the credential (to match the token a provider's
    # console or error names, and to see a refresh rotate it); viewers see no characters.
    # Times through one format (admin_actions.when); the lease and version columns are the
    # refresh engine's bookkeeping, not the operator's.
    fields = [
        "connector", "user", "external_id", "account", "connection_config_display",
        "metadata_display", "status_display", "tokens", "token_type", "scope",
        "scope_drift", "expires_at_display", "refresh_token_expires_at_display",
        "connected_at_display", "last_refreshed_at_display", "next_refresh_at_display",
        "failure_count", "failing_since_display", "last_error", "events_display",
    ]
    readonly_fields = fields
    viewer_displays = {"tokens": "token_states"}
    change_form_template = "admin/alloy_oauth/credential/change_form.html"
    #: How many of a credential's events its page shows (newest first).
    EVENTS_SHOWN = 50

    expires_at_display = _time_field("expires_at", relative=True)
    refresh_token_expires_at_display = _time_field("refresh_token_expires_at", relative=True)
    connected_at_display = _time_field("connected_at")
    last_refreshed_at_display = _time_field("last_refreshed_at", relative=True)
    next_refresh_at_display = _time_field("next_refresh_at", relative=True)
    failing_since_display = _time_field("failing_since")

    @admin.display(description=gettext_lazy("events (newest first)"))
    def events_display(self, obj: Credential) -> str:
        events = obj.events.order_by("-created_at", "-id")[:self.EVENTS_SHOWN]
        if not events:
            return "—"
        return render_to_string("admin/alloy_oauth/credential/events.html", {"events": [
            {"when": when(event.created_at), "kind": event.get_kind_display(),
             "detail": event.detail} for event in events]})

    def get_urls(self) -> list[Any]:
        return [
            path("<int:pk>/act/<slug:name>/",
                 self.admin_site.admin_view(self.credential_action_view),
                 name="alloy_oauth_credential_action"),
            *super().get_urls(),
        ]

    def credential_action_view(self, request: HttpRequest, pk: int, name: str) -> HttpResponse:
        return admin_actions.credential_action(self, request, pk, name)

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any,
                           obj: Credential | None = None, **kwargs: Any) -> HttpResponse:
        if obj is not None and self.has_change_permission(request, obj):
            context["alloy_oauth_buttons"] = admin_actions.buttons(obj)
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    @admin.display(description=gettext_lazy("owner"), ordering="user__username")
    def owner(self, obj: Credential) -> str:
        return obj.owner_label

    @admin.display(description=gettext_lazy("account"))
    def account(self, obj: Credential) -> str:
        return obj.account_label or "—"

    # Not secret by declaration: the connector names what is kept (no token field can be).
    @admin.display(description=gettext_lazy("connection parameters"))
    def connection_config_display(self, obj: Credential) -> str:
        return _json_table(obj.connection_config)

    @admin.display(description=gettext_lazy("metadata"))
    def metadata_display(self, obj: Credential) -> str:
        return _json_table(obj.metadata)

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, obj: Credential) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description=gettext_lazy("expires"), ordering="expires_at")
    def expires_in(self, obj: Credential) -> str:
        if obj.expires_at is None:
            text = "—"
        elif obj.expires_at > timezone.now():
            text = _("in %(time)s") % {"time": timeuntil(obj.expires_at)}
        else:
            text = _("%(time)s ago") % {"time": timesince(obj.expires_at)}
        if obj.reconnect_by:
            return format_html('{}<br><span class="alloy-oauth-reconnect-by">{}</span>', text, _(
                "reconnect by %(when)s") % {"when": f"{obj.reconnect_by:%Y-%m-%d}"})
        return text

    @admin.display(description=gettext_lazy("last refreshed"), ordering="last_refreshed_at")
    def last_refreshed(self, obj: Credential) -> str:
        if obj.last_refreshed_at is None:
            return "—"
        return _("%(time)s ago") % {"time": timesince(obj.last_refreshed_at)}

    @admin.display(description=gettext_lazy("failures"), ordering="failure_count")
    def failures(self, obj: Credential) -> int:
        return obj.failure_count

    @admin.display(description=gettext_lazy("last error"))
    def last_error_short(self, obj: Credential) -> str:
        return obj.last_error[:60] + ("…" if len(obj.last_error) > 60 else "")

    @admin.display(description=gettext_lazy("scopes not as requested"))
    def scope_drift(self, obj: Credential) -> str:
        if not (obj.scopes_missing or obj.scopes_extra):
            return "—"
        return _("requested: %(requested)s; missing: %(missing)s; extra: %(extra)s") % {
            "requested": obj.requested_scope or "—",
            "missing": " ".join(obj.scopes_missing) or "—",
            "extra": " ".join(obj.scopes_extra) or "—",
        }

    def get_queryset(self, request: HttpRequest) -> QuerySet[Credential]:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            # The list shows no token: do not decrypt any.
            queryset = queryset.defer(*Credential.SECRET_FIELDS, "token_response")
        return queryset

    @admin.display(description=gettext_lazy("tokens"))
    def tokens(self, obj: Credential) -> str:
        return self._tokens(obj, tail=True)

    @admin.display(description=gettext_lazy("tokens"))
    def token_states(self, obj: Credential) -> str:
        return self._tokens(obj, tail=False)

    def _tokens(self, obj: Credential, *, tail: bool) -> str:
        entered = entered_secrets.FIELDS.get(obj.connector.auth_type, ("access_token",))
        if entered != ("access_token",):  # an API key, a user name and password
            return format_html_join("; ", "{}: {}", [
                (Credential._meta.get_field(name).verbose_name,
                 secret_state(getattr(obj, name), tail=tail)) for name in entered])
        return format_html(_("access token: {}; refresh token: {}"),
                           secret_state(obj.access_token, tail=tail),
                           secret_state(obj.refresh_token, tail=tail))

    @admin.action(description=gettext_lazy("Refresh now"), permissions=["change"])
    def refresh_now(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        outcomes = [refresh_one(pk, force=True, wait=True)
                    for pk in queryset.values_list("pk", flat=True)]
        self._report(request, outcomes, done=Result.REFRESHED, verb=_("refreshed"))

    @admin.action(description=gettext_lazy("Revoke (at the provider) and delete the tokens"),
                  permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        outcomes = [revoke_credential(pk) for pk in queryset.values_list("pk", flat=True)]
        self._report(request, outcomes, done=Result.REVOKED, verb=_("revoked"))

    @admin.action(description=gettext_lazy("Mark for reconnection"), permissions=["change"])
    def mark_for_reconnection(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        reason = _("Marked for reconnection by %(operator)s.") % {
            "operator": request.user.get_username()}
        marked = sum(mark_reauth_required(pk, reason=reason)
                     for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, _("%(count)d credential(s) marked for reconnection.")
                          % {"count": marked}, messages.SUCCESS if marked else messages.WARNING)

    def _report(self, request: HttpRequest, outcomes: list[Outcome], *, done: Result,
                verb: str) -> None:
        succeeded = [o for o in outcomes if o.result is done]
        if succeeded:
            self.message_user(request, _("%(count)d credential(s) %(verb)s.")
                              % {"count": len(succeeded), "verb": verb}, messages.SUCCESS)
        failed = [o for o in outcomes if o.result is not done]
        names = {credential.pk: str(credential) for credential in Credential.objects.filter(
            pk__in=[o.credential_id for o in failed]).select_related("connector", "user")}
        for outcome in failed:
            self.message_user(request, _("%(credential)s was not %(verb)s: %(reason)s") % {
                "credential": names.get(outcome.credential_id, outcome.credential_id),
                "verb": verb, "reason": outcome.message or outcome.result.replace("_", " ")},
                messages.WARNING)
