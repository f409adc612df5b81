"""The webhook pages: endpoints (write-only signing secret, its rotation) and their
deliveries (read-only, with *Re-send*)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminURLFieldWidget
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .admin_base import (
    ChangedByActionsOnly, SecretsHiddenFromViewers, SensitiveFormViews, secret_state, status_badge,
)
from .forms import WebhookEndpointForm
from .models import WebhookDelivery, WebhookEndpoint
from .webhooks import delivery


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
