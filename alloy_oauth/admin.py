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
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from . import authorization, connection_params, entered_secrets, protocol, refresh, validation
from .admin_credentials import CredentialAddMixin
from .admin_setup import ConnectorSetup
from .fields import is_undecryptable
from .forms import BoundedJSONField, ConnectorForm, WebhookEndpointForm
from .models import (
    AuthorizationRequest,
    Connector,
    Credential,
    CredentialEvent,
    WebhookDelivery,
    WebhookEndpoint,
    callback_url,
)
from .redaction import REDACTED, last_four
from .refresh import Result
from .responses import FLOW_ID, failure_page, no_store
from .webhooks import delivery

#: How long the popup may take to follow the pre-flight's answer.
VALIDATION_TICKET_MAX_AGE = 120

STATUS_COLOURS = {
    Credential.Status.ACTIVE: "#1a7f37",
    Credential.Status.REAUTH_REQUIRED: "#9a6700",
    Credential.Status.ERROR: "#cf222e",
    Credential.Status.REVOKED: "#59636e",
    WebhookDelivery.Status.PENDING: "#9a6700",
    WebhookDelivery.Status.SUCCEEDED: "#1a7f37",
    WebhookDelivery.Status.FAILED: "#cf222e",
    WebhookDelivery.Status.DROPPED: "#59636e",
}


def status_badge(status: str, label: str) -> str:
    return format_html(
        '<span class="alloy-oauth-badge alloy-oauth-badge-{}" style="background:{};color:#fff;'
        'border-radius:1em;padding:.1em .6em;font-size:.85em;white-space:nowrap">{}</span>',
        status, STATUS_COLOURS.get(status, "#59636e"), label,
    )


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


class SecretsHiddenFromViewers(admin.ModelAdmin):
    """Staff with the view permission only see a page of read-only fields, which Django
    renders from the model's values: a form's write-only widget does not apply there, and
    a secret would be shown in plain text. For them, each field named in
    :attr:`viewer_displays` is replaced by a display that says at most whether it is stored."""

    #: A field of the page → the display (a method of the admin) a viewer sees instead.
    viewer_displays: dict[str, str] = {}

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        # As Django decides: an existing object without the change permission is read-only.
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets

        def swap(name: Any) -> Any:
            if isinstance(name, (list, tuple)):  # several fields on one line
                return type(name)(swap(each) for each in name)
            return self.viewer_displays.get(name, name)

        return [(title, {**options, "fields": [swap(name) for name in options["fields"]]})
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
    list_display = ["name", "slug", "is_active", "validation_state", "active_count",
                    "reauth_count", "error_count", "revoked_count"]
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
            "api_base_url", "test_request_path", "test_request_statuses", "token_placement",
            "token_header", "token_template", "token_query_param",
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

    active_count = _count_column(Credential.Status.ACTIVE, gettext_lazy("active"))
    reauth_count = _count_column(Credential.Status.REAUTH_REQUIRED, gettext_lazy("reconnect"))
    error_count = _count_column(Credential.Status.ERROR, gettext_lazy("error"))
    revoked_count = _count_column(Credential.Status.REVOKED, gettext_lazy("revoked"))

    @admin.display(description=gettext_lazy("validated"), ordering="validated_at")
    def validation_state(self, obj: Connector) -> str:
        if obj.validated_at:
            return status_badge("active", _("validated"))
        if obj.validation_error:
            return status_badge("error", _("failed"))
        return "—"

    @admin.display(description=gettext_lazy("last validation"))
    def validation_report_display(self, obj: Connector) -> str:
        report = obj.validation_report or {}
        if not report:
            return _("Not validated yet: save, then press “Validate credential”.")
        rows = [(check["name"], "✔" if check["ok"] else "✘", check["message"])
                for check in report.get("preflight", [])]
        if "scopes_granted" in report:
            rows.append((_("Token"), "✔", _("%(type)s token received; lifetime %(life)s; "
                                           "refresh token: %(refresh)s.") % {
                "type": report["token_type"],
                "life": f"{report['expires_in']} s" if report.get("expires_in") else _("not given"),
                "refresh": _("yes") if report.get("refresh_token") else _("no"),
            }))
            differs = report.get("scopes_missing") or report.get("scopes_extra")
            rows.append((_("Scopes"), "⚠" if differs else "✔", _(
                "requested: %(requested)s; granted: %(granted)s") % {
                "requested": " ".join(report.get("scopes_requested", [])) or "—",
                "granted": " ".join(report.get("scopes_granted", [])) or "—",
            } + (_(" (differs: missing %(missing)s, extra %(extra)s)") % {
                "missing": " ".join(report.get("scopes_missing", [])) or "—",
                "extra": " ".join(report.get("scopes_extra", [])) or "—",
            } if differs else "")))
            if "metadata" in report:
                found = report.get("metadata") or {}
                missing = report.get("metadata_missing") or []
                rows.append((_("Metadata"), "⚠" if missing else "✔", "; ".join(
                    [f"{key} = {value}" for key, value in found.items()]
                    + ([_("not sent: %(keys)s") % {"keys": ", ".join(missing)}] if missing
                       else [])) or "—"))
            test = report.get("test_request")
            if test:
                rows.append((_("Test request"), "✔" if 200 <= test.get("status", 0) < 300 else "✘",
                             f"GET {test['url']} → " + str(test.get("status", test.get("error")))))
        if report.get("warning"):
            rows.append((_("Warning"), "⚠", report["warning"]))
        return format_html(
            '<table class="alloy-oauth-report">{}</table>',
            format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.display(description=gettext_lazy("client secret"))
    def client_secret_state(self, obj: Connector) -> str:
        return secret_state(obj.client_secret)

    @admin.display(description=gettext_lazy("extra token parameters"))
    def token_params_for_viewers(self, obj: Connector) -> str:
        return public_token_params(obj.token_params) or self.get_empty_value_display()

    @admin.display(description=gettext_lazy("extra refresh parameters"))
    def refresh_params_for_viewers(self, obj: Connector) -> str:
        return public_token_params(obj.refresh_params) or self.get_empty_value_display()

    def get_form(self, request: HttpRequest, obj: Connector | None = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)
        # The callback URL depends on the request's host (unless CALLBACK_BASE_URL is set).
        return type(form.__name__, (form,), {"callback_url_value": callback_url(request)})

    # --- Validate credential ---------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/validate/", wrap(self.validate_view),
                 name="alloy_oauth_connector_validate"),
            path("<int:pk>/validate/authorize/", wrap(self.validate_authorize_view),
                 name="alloy_oauth_connector_validate_authorize"),
            *super().get_urls(),
        ]

    def _connector_for_validation(self, request: HttpRequest, pk: int) -> Connector:
        connector = get_object_or_404(Connector, pk=pk)
        if not self.has_change_permission(request, connector):
            raise PermissionDenied
        return connector

    @method_decorator(require_POST)
    def validate_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Step 1, the pre-flight (no end user): JSON for the page's script. The POST carries
        the values of the connector's connection parameters the operator entered."""
        connector = self._connector_for_validation(request, pk)
        config = _posted_config(connector, request.POST)
        checks = validation.preflight(connector, redirect_uri=callback_url(request),
                                      config=config)
        ok = all(check.ok for check in checks)
        authorize_url = None
        if ok and connector.auth_type == Connector.AuthType.OAUTH2:  # (others: no popup)
            # Proof, for the popup's GET, that it follows this browser's own pre-flight (a
            # CSRF-checked POST): no other site can start a validation in its name.
            ticket = authorization.issue_ticket(
                request.session, authorization.validation_purpose(connector.pk, request.user.pk))
            authorize_url = reverse("admin:alloy_oauth_connector_validate_authorize",
                                    args=[connector.pk]) + "?" + urlencode({
                                        "ticket": ticket,
                                        **{PARAM_PREFIX + name: value
                                           for name, value in config.items()}})
        return JsonResponse({
            "ok": ok,
            "checks": [{"name": c.name, "ok": c.ok, "message": c.message} for c in checks],
            "authorize_url": authorize_url,
        })

    def validate_authorize_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Step 2, in the popup: the operator authorizes at the provider; the callback
        reports on the token and stores no credential."""
        connector = self._connector_for_validation(request, pk)
        if not authorization.is_ticket(
            request.session, authorization.validation_purpose(connector.pk, request.user.pk),
            request.GET.get("ticket", ""), max_age=VALIDATION_TICKET_MAX_AGE,
        ):
            return failure_page(request, "invalid_request", _(
                "Start “Validate credential” from the connector's page."), None, status=403)
        # The id admin.js gave this popup: the result is for the page that opened it only.
        flow = request.GET.get("flow", "")
        back = reverse("admin:alloy_oauth_connector_change", args=[connector.pk])
        if flow and not FLOW_ID.fullmatch(flow):
            return failure_page(request, "invalid_request", _(
                "This address has a repeated or oversized parameter."), connector, next_url=back)
        config, errors = connector.connection_values(_posted_config(connector, request.GET))
        if errors:
            return failure_page(request, "invalid_request", " ".join(errors.values()),
                                connector, next_url=back)
        try:
            url = authorization.start(
                connector, session=request.session, redirect_uri=callback_url(request),
                user=request.user, purpose=AuthorizationRequest.Purpose.VALIDATE,
                popup=True, flow_id=flow, next_url=back, connection_config=config,
            )
        except (protocol.OAuthError, connection_params.ParameterError) as exc:
            validation.record_failure(connector, str(exc))
            return failure_page(request, "configuration", str(exc), connector, next_url=back)
        return no_store(HttpResponseRedirect(url))

    @admin.action(description=gettext_lazy("Validate credential (pre-flight checks)"),
                  permissions=["change"])
    def validate_preflight(self, request: HttpRequest, queryset: QuerySet[Connector]) -> None:
        for connector in queryset:
            checks = validation.preflight(connector, redirect_uri=callback_url(request))
            failed = [check for check in checks if not check.ok]
            if failed:
                self.message_user(request, f"{connector}: " + " ".join(c.message for c in failed),
                                  messages.ERROR)
            elif connector.auth_type != Connector.AuthType.OAUTH2:  # no round trip to make
                self.message_user(request, _("%(connector)s: the checks passed.") % {
                    "connector": connector}, messages.SUCCESS)
            else:
                self.message_user(request, _(
                    "%(connector)s: the pre-flight checks passed. Open the connector and press "
                    "“Validate credential” to complete the round trip.") % {
                    "connector": connector}, messages.SUCCESS)


#: Connection parameter values in the Validate requests: ``param-shop=acme``.
PARAM_PREFIX = "param-"


def _posted_config(connector: Connector, data: Any) -> dict[str, str]:
    """The connection parameter values the operator entered for Validate credential."""
    return {param.name: data[PARAM_PREFIX + param.name] for param in connector.params
            if isinstance(data.get(PARAM_PREFIX + param.name), str)}


class CredentialEventInline(admin.TabularInline):
    model = CredentialEvent
    fields = ["created_at", "kind", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-created_at", "-id"]
    verbose_name_plural = gettext_lazy("events (newest first)")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ChangedByActionsOnly(admin.ModelAdmin):
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
    fields = [
        "connector", "user", "external_id", "account", "connection_config_display",
        "metadata_display", "status_display", "tokens", "token_type", "scope",
        "scope_drift", "expires_at", "refresh_token_expires_at", "connected_at",
        "last_refreshed_at", "next_refresh_at", "failure_count", "failing_since", "last_error",
        "version",
    ]
    readonly_fields = fields
    viewer_displays = {"tokens": "token_states"}
    inlines = [CredentialEventInline]

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
        outcomes = [refresh.refresh_credential(pk, force=True, wait=True)
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
        for outcome in outcomes:
            if outcome.result is not done:
                self.message_user(request, _("Credential %(pk)s: %(result)s. %(message)s") % {
                    "pk": outcome.credential_id, "result": outcome.result,
                    "message": outcome.message}, messages.WARNING)


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
