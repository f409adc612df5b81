"""Operator UI: connectors (with Validate credential), their end users' credentials, webhook
endpoints and their deliveries.

No page renders a token, a client secret or a webhook secret, whatever the operator's
permissions: secrets are write-only in the forms, a credential shows whether each token is
stored (and its last four characters to staff who may act on it), and staff with the view
permission only see every secret as "stored" or "not stored" (see
:class:`SecretsHiddenFromViewers`).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminURLFieldWidget
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from . import admin_actions, admin_validation, entered_secrets, protocol, refresh, validation
from .admin_actions import when
from .admin_credentials import CredentialAddMixin
from .admin_setup import ConnectorSetup
from .conf import app_settings
from .fields import is_undecryptable
from .forms import BoundedJSONField, ConnectorForm, WebhookEndpointForm
from .models import (
    Connector,
    Credential,
    WebhookDelivery,
    WebhookEndpoint,
    callback_url,
)
from .redaction import REDACTED, last_four
from .refresh import Result
from .webhooks import delivery

def status_badge(status: str, label: str) -> str:
    """A status as a coloured badge (its colour: ``alloy-oauth-badge-<status>`` in admin.css)."""
    return format_html('<span class="alloy-oauth-badge alloy-oauth-badge-{}">{}</span>',
                       status, label)


class StyledAdmin(admin.ModelAdmin):
    """The app's admin pages share one style sheet (badges, validation results, actions)."""

    class Media:
        css = {"all": ["alloy_oauth/admin.css"]}


@sensitive_variables()
def secret_state(value: str, *, tail: bool = False) -> str:
    """What an admin page says of a stored secret: whether it is stored, and with ``tail``
    its last four characters (see :func:`alloy_oauth.redaction.last_four`)."""
    if is_undecryptable(value):
        return _("cannot be decrypted with FERNET_KEYS")
    if not value:
        return _("not stored")
    if tail:
        return _("stored (ends %(tail)s)") % {"tail": last_four(value)}
    return _("stored")


@sensitive_variables()
def public_token_params(params: Any) -> str:
    """Extra token parameters as JSON, the values of all but known public ones redacted
    (empty when there are none)."""
    if not params:
        return ""
    if not isinstance(params, dict):
        return REDACTED
    return json.dumps({key: value if str(key).lower() in protocol.PUBLIC_TOKEN_PARAMS
                       else REDACTED for key, value in params.items()},
                      ensure_ascii=False, sort_keys=True)


class SecretsHiddenFromViewers(StyledAdmin):
    """Staff with the view permission only see a page of read-only fields, which Django
    renders from the model's values: a form's write-only widget does not apply there, and
    a secret would be shown in plain text. For them, each field named in
    :attr:`viewer_displays` is replaced by a display that says at most whether it is stored."""

    #: A field of the page → the display (a method of the admin) a viewer sees instead.
    viewer_displays: dict[str, str] = {}
    #: Fields that only ask something of whoever saves: not on a viewer's page.
    viewer_hidden: tuple[str, ...] = ()

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        # As Django decides: an existing object without the change permission is read-only.
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets

        def swap(name: Any) -> Any:
            if isinstance(name, (list, tuple)):  # several fields on one line
                return type(name)(swap(each) for each in name)
            return self.viewer_displays.get(name, name)

        return [(title, {**options, "fields": [swap(name) for name in options["fields"]
                                               if name not in self.viewer_hidden]})
                for title, options in fieldsets]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Displays are never form fields, so the form never asks the model for them.
        return [*super().get_readonly_fields(request, obj), *self.viewer_displays.values()]


class SensitiveFormViews(admin.ModelAdmin):
    """For an admin whose form receives a secret: the report Django mails to ADMINS when the
    view fails shows neither the POST nor any frame's variables (cleaned_data, the object
    being saved)."""

    @method_decorator(sensitive_post_parameters())
    @method_decorator(sensitive_variables())
    def changeform_view(self, request: HttpRequest, object_id: str | None = None,
                        form_url: str = "", extra_context: dict[str, Any] | None = None
                        ) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)


def _count_column(status: str, label: Any) -> Any:
    """A list column: how many of the connector's credentials have ``status``."""

    @admin.display(description=label, ordering=f"{status}_count")
    def column(self: ConnectorAdmin, obj: Any) -> int:
        return getattr(obj, f"{status}_count")

    return column


@admin.register(Connector)
class ConnectorAdmin(ConnectorSetup, SensitiveFormViews, SecretsHiddenFromViewers):
    form = ConnectorForm
    change_form_template = "admin/alloy_oauth/connector/change_form.html"
    # The admin builds its form with its own callback, not the form's: the same field options.
    formfield_overrides = {
        models.URLField: {"widget": AdminURLFieldWidget, "assume_scheme": "https"},
        models.JSONField: {"form_class": BoundedJSONField},
    }
    viewer_displays = {
        "client_secret": "client_secret_state",
        # Extra token parameters may hold credentials of their own (the engine scrubs their
        # values from messages, all but known public ones).
        "token_params": "token_params_for_viewers",
        "refresh_params": "refresh_params_for_viewers",
    }
    viewer_hidden = ("confirm_api_host",)
    list_display = ["name", "slug", "live_status", "active_count", "reauth_count",
                    "error_count", "revoked_count"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["validated_at", "validation_error", "validation_report_display"]
    actions = ["validate_preflight"]
    fieldsets = [
        (gettext_lazy("Connector"), {"fields": ["name", "slug", "is_active", "logo_url",
                                              "auth_type"]}),
        (gettext_lazy("OAuth 2.0"), {"fields": [
            "callback_url", "auth_url", "token_url", "client_id", "client_secret", "scope",
        ]}),
        (gettext_lazy("API requests"), {"fields": [
            "api_base_url", "confirm_api_host", "test_request_path", "test_request_statuses",
            "token_placement", "token_header", "token_template", "token_query_param",
        ]}),
        (gettext_lazy("Refresh configuration"), {"fields": [
            "refresh_url", "refresh_params", "refresh_lead_time", "default_expires_in",
            "keepalive_interval",
        ]}),
        (gettext_lazy("Connection parameters and metadata"), {"classes": ["collapse"], "fields": [
            "connection_params", "metadata_fields", "callback_params", "allow_multiple_accounts",
            "account_label",
        ]}),
        (gettext_lazy("Advanced"), {"classes": ["collapse"], "fields": [
            "client_auth_method", "use_pkce", "scope_separator", "authorization_params",
            "token_params", "revocation_url", "issuer", "require_issuer",
        ]}),
        (gettext_lazy("Validation"), {"fields": [
            "validated_at", "validation_error", "validation_report_display",
        ]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Connector]:
        counts = {
            f"{status}_count": Count("credentials", filter=Q(credentials__status=status))
            for status in Credential.Status.values
        }
        return super().get_queryset(request).annotate(**counts)

    active_count = _count_column(Credential.Status.ACTIVE, gettext_lazy("accounts connected"))
    reauth_count = _count_column(Credential.Status.REAUTH_REQUIRED,
                                 gettext_lazy("must reconnect"))
    error_count = _count_column(Credential.Status.ERROR, gettext_lazy("in error"))
    revoked_count = _count_column(Credential.Status.REVOKED, gettext_lazy("revoked"))

    @admin.display(description=gettext_lazy("offered to end users"), ordering="validated_at")
    def live_status(self, obj: Connector) -> str:
        """The rule of docs/admin.md: live = active and validated since its last OAuth change."""
        if obj.is_live:
            return status_badge("live", _("Live"))
        if not obj.is_active:
            return status_badge("inactive", _("No: inactive"))
        if obj.validation_error:
            return status_badge("validation_failed", _("No: validation failed"))
        return status_badge("not_validated", _("No: not validated"))

    @admin.display(description=gettext_lazy("last validation"))
    def validation_report_display(self, obj: Connector) -> str:
        if not obj.validation_report:
            return _("Not validated yet: press “Validate credential” below.")
        return admin_validation.report_table(obj.validation_report)

    @admin.display(description=gettext_lazy("client secret"))
    def client_secret_state(self, obj: Connector) -> str:
        return secret_state(obj.client_secret)

    @admin.display(description=gettext_lazy("extra token parameters"))
    def token_params_for_viewers(self, obj: Connector) -> str:
        return public_token_params(obj.token_params) or self.get_empty_value_display()

    @admin.display(description=gettext_lazy("extra refresh parameters"))
    def refresh_params_for_viewers(self, obj: Connector) -> str:
        return public_token_params(obj.refresh_params) or self.get_empty_value_display()

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any,
                           **kwargs: Any) -> HttpResponse:
        context["alloy_oauth_recipes_url"] = app_settings.PROVIDER_RECIPES_URL
        return super().render_change_form(request, context, *args, **kwargs)

    def get_form(self, request: HttpRequest, obj: Connector | None = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)
        # The callback URL depends on the request's host (unless CALLBACK_BASE_URL is set).
        return type(form.__name__, (form,), {"callback_url_value": callback_url(request)})

    # --- Validate credential (see admin_validation) ------------------------------------------

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("validate/", wrap(self.validate_view), name="alloy_oauth_connector_validate_new"),
            path("validate/result/", wrap(admin_validation.result),
                 name="alloy_oauth_connector_validation_result"),
            path("<int:pk>/validate/", wrap(self.validate_view),
                 name="alloy_oauth_connector_validate"),
            *super().get_urls(),
        ]

    @method_decorator(require_POST)
    @method_decorator(sensitive_post_parameters())  # (the page's form: the client secret)
    def validate_view(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        return admin_validation.validate(self, request, pk)

    def save_model(self, request: HttpRequest, obj: Connector, form: Any, change: bool) -> None:
        admin_validation.keep_validated(request, obj)
        super().save_model(request, obj, form, change)

    @admin.action(description=gettext_lazy("Validate credential (pre-flight checks)"),
                  permissions=["change"])
    def validate_preflight(self, request: HttpRequest, queryset: QuerySet[Connector]) -> None:
        for connector in queryset:
            checks = validation.preflight(connector, redirect_uri=callback_url(request))
            failed = [check for check in checks if not check.ok]
            if failed:
                self.message_user(request, _("%(connector)s failed the checks: %(problems)s") % {
                    "connector": connector, "problems": " ".join(
                        f"{check.name}: {check.message}" for check in failed)}, messages.ERROR)
            elif connector.auth_type != Connector.AuthType.OAUTH2:  # no round trip to make
                self.message_user(request, _("%(connector)s: the checks passed.") % {
                    "connector": connector}, messages.SUCCESS)
            else:
                self.message_user(request, _(
                    "%(connector)s: the pre-flight checks passed. To finish, open it and press "
                    "“Validate credential”: you will sign in at the provider.") % {
                    "connector": connector}, messages.SUCCESS)


class ChangedByActionsOnly(StyledAdmin):
    """Pages of objects that the app itself keeps changing (a refresh, a delivery's worker):
    nothing is editable, and a full save() would write back a stale copy over a change that
    landed meanwhile. Changes go through the actions only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        pass

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "show_save": False,
                         "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, extra_context)


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
    return format_html('<table class="alloy-oauth-values">{}</table>', format_html_join(
        "", "<tr><th>{}</th><td>{}</td></tr>", sorted(values.items())))


@admin.register(Credential)
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
        return format_html(
            '<table class="alloy-oauth-events"><thead><tr><th>{}</th><th>{}</th><th>{}</th>'
            "</tr></thead><tbody>{}</tbody></table>",
            _("time"), _("event"), _("detail"), format_html_join(
                "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                ((when(event.created_at), event.get_kind_display(), event.detail or "—")
                 for event in events)))

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
        outcomes = [refresh.refresh_one(pk, force=True, wait=True)
                    for pk in queryset.values_list("pk", flat=True)]
        self._report(request, outcomes, done=Result.REFRESHED, verb=_("refreshed"))

    @admin.action(description=gettext_lazy("Revoke (at the provider) and delete the tokens"),
                  permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        outcomes = [refresh.revoke_credential(pk) for pk in queryset.values_list("pk", flat=True)]
        self._report(request, outcomes, done=Result.REVOKED, verb=_("revoked"))

    @admin.action(description=gettext_lazy("Mark for reconnection"), permissions=["change"])
    def mark_for_reconnection(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        reason = _("Marked for reconnection by %(operator)s.") % {
            "operator": request.user.get_username()}
        marked = sum(refresh.mark_reauth_required(pk, reason=reason)
                     for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, _("%(count)d credential(s) marked for reconnection.")
                          % {"count": marked}, messages.SUCCESS if marked else messages.WARNING)

    def _report(self, request: HttpRequest, outcomes: list[refresh.Outcome], *, done: Result,
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


# --- webhooks ---------------------------------------------------------------------------------


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(SensitiveFormViews, SecretsHiddenFromViewers):
    form = WebhookEndpointForm
    formfield_overrides = {models.URLField: {"widget": AdminURLFieldWidget,
                                             "assume_scheme": "https"}}
    viewer_displays = {"secret": "secret_state"}
    list_display = ["__str__", "url", "is_active", "event_list", "pending_count", "failed_count"]
    list_filter = ["is_active"]
    search_fields = ["url", "description"]
    readonly_fields = ["rotation", "deliveries_link"]
    fieldsets = [
        (None, {"fields": ["url", "description", "is_active", "secret", "rotation"]}),
        (gettext_lazy("What is sent"), {"fields": ["events", "connectors", "deliveries_link"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        return super().get_queryset(request).annotate(
            pending=Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.PENDING)),
            failed=Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.FAILED)),
        )

    @admin.display(description=gettext_lazy("events"))
    def event_list(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.events) if isinstance(obj.events, list) else "—"

    @admin.display(description=gettext_lazy("pending"), ordering="pending")
    def pending_count(self, obj: WebhookEndpoint) -> int:
        return getattr(obj, "pending", 0)

    @admin.display(description=gettext_lazy("failed"), ordering="failed")
    def failed_count(self, obj: WebhookEndpoint) -> int:
        return getattr(obj, "failed", 0)

    @admin.display(description=gettext_lazy("signing secret"))
    def secret_state(self, obj: WebhookEndpoint) -> str:
        return secret_state(obj.secret)

    @admin.display(description=gettext_lazy("previous secret"))
    def rotation(self, obj: WebhookEndpoint) -> str:
        until = obj.previous_secret_expires_at
        if not obj.previous_secret or until is None or until <= timezone.now():
            return _("none: deliveries are signed with the current secret only")
        return _("deliveries are signed with it too until %(when)s UTC") % {
            "when": f"{until:%Y-%m-%d %H:%M}"}

    @admin.display(description=gettext_lazy("deliveries"))
    def deliveries_link(self, obj: WebhookEndpoint) -> str:
        if obj.pk is None:
            return "—"
        url = reverse("admin:alloy_oauth_webhookdelivery_changelist") + "?" + urlencode(
            {"endpoint__id__exact": obj.pk})
        return format_html('<a href="{}">{}</a>', url, _("Deliveries to this endpoint"))


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ChangedByActionsOnly):
    list_display = ["created_at", "event", "endpoint", "status_display", "attempts",
                    "response_code", "next_attempt_at", "last_error_short"]
    list_filter = ["status", "event", "endpoint"]
    list_select_related = ["endpoint"]
    search_fields = ["=event_id"]
    actions = ["resend"]
    fields = ["event", "event_id", "endpoint", "connector", "status_display", "attempts",
              "response_code", "last_error", "next_attempt_at", "created_at", "delivered_at",
              "payload_display"]
    readonly_fields = fields

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, obj: WebhookDelivery) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description=gettext_lazy("last error"))
    def last_error_short(self, obj: WebhookDelivery) -> str:
        return obj.last_error[:60] + ("…" if len(obj.last_error) > 60 else "")

    @admin.display(description=gettext_lazy("payload (as sent, signed)"))
    def payload_display(self, obj: WebhookDelivery) -> str:
        # Ids and statuses only: a payload never holds a secret.
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    @admin.action(description=gettext_lazy("Re-send"), permissions=["change"])
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = delivery.resend(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, _("%(count)d delivery(ies) will be sent again.")
                          % {"count": count}, messages.SUCCESS)
