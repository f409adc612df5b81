"""The connector pages: the list with each connector's credentials by status and whether
it is live, and the change form (presets and discovery from ``admin_setup``, Validate
credential from ``admin_validation``)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminURLFieldWidget
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from . import admin_validation, validation
from .admin_base import (
    SecretsHiddenFromViewers, SensitiveFormViews, public_token_params, secret_state, status_badge,
)
from .admin_setup import ConnectorSetup
from .conf import app_settings
from .bounded_json import BoundedJSONField
from .forms import ConnectorForm
from .models import Connector, Credential, callback_url


def _count_column(status: str, label: Any) -> Any:
    """A list column: how many of the connector's credentials have ``status``."""

    @admin.display(description=label, ordering=f"{status}_count")
    def column(self: ConnectorAdmin, obj: Any) -> int:
        return getattr(obj, f"{status}_count")

    return column


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
