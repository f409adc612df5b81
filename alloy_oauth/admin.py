"""Operator UI: connectors and the credentials of their end users (tokens are never shown)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.widgets import AdminURLFieldWidget
from django.db import models
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from .forms import ConnectorForm
from .models import Connector, Credential, CredentialEvent, callback_url


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    form = ConnectorForm
    formfield_overrides = {
        models.URLField: {"widget": AdminURLFieldWidget, "assume_scheme": "https"},
    }
    list_display = ["name", "slug", "is_active", "validated_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["validated_at", "validation_error"]
    fieldsets = [
        (_("Connector"), {"fields": ["name", "slug", "is_active"]}),
        (_("OAuth 2.0"), {"fields": [
            "callback_url", "auth_url", "token_url", "client_id", "client_secret", "scope",
        ]}),
        (_("Refresh configuration"), {"fields": [
            "refresh_url", "refresh_params", "refresh_lead_time", "default_expires_in",
        ]}),
        (_("Advanced"), {"classes": ["collapse"], "fields": [
            "client_auth_method", "use_pkce", "scope_separator", "authorization_params",
            "token_params", "revocation_url", "api_base_url", "test_request_path",
        ]}),
        (_("Validation"), {"fields": ["validated_at", "validation_error"]}),
    ]

    def get_form(self, request: HttpRequest, obj: Connector | None = None, **kwargs):  # type: ignore[override]
        form = super().get_form(request, obj, **kwargs)
        # The callback URL depends on the request's host (unless CALLBACK_BASE_URL is set).
        return type(form.__name__, (form,), {"callback_url_value": callback_url(request)})


class CredentialEventInline(admin.TabularInline):
    model = CredentialEvent
    fields = ["created_at", "kind", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-created_at", "-id"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    list_display = [
        "__str__", "connector", "status", "expires_at", "last_refreshed_at", "failure_count",
    ]
    list_filter = ["connector", "status"]
    search_fields = ["external_id", "user__username", "user__email"]
    list_select_related = ["connector", "user"]
    # Tokens are deliberately absent: no field of this page ever renders a token value.
    fields = [
        "connector", "user", "external_id", "status", "token_type", "scope", "expires_at",
        "connected_at", "last_refreshed_at", "next_refresh_at", "failure_count", "last_error",
        "version",
    ]
    readonly_fields = fields
    inlines = [CredentialEventInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
