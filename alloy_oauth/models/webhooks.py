"""Webhook endpoints (where events are sent out of the process) and their deliveries."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..fields import EncryptedTextField
from .connector import Connector


class WebhookEndpoint(models.Model):
    """Where events are sent out of the process (see ``docs/events.md``): a URL, the secret
    deliveries are signed with, which events and which connectors."""

    url = models.URLField(
        _("URL"), max_length=500,
        help_text=_("Receives a signed POST per event. https, and not a private address "
                    "unless listed in WEBHOOK_ALLOWED_NETWORKS."),
    )
    description = models.CharField(_("description"), max_length=200, blank=True)
    #: Signs every delivery (HMAC-SHA256); never shown on any page.
    secret = EncryptedTextField(_("signing secret"))
    #: The secret replaced last: deliveries carry a signature with it too until
    #: ``previous_secret_expires_at``, so the receiver can switch without losing any.
    previous_secret = EncryptedTextField(_("previous signing secret"), blank=True, null=True,
                                         default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(
        _("previous secret signs until"), null=True, blank=True, editable=False)
    #: Event types (``alloy_oauth.webhooks.EVENT_TYPES``) sent to this endpoint.
    events = models.JSONField(_("events"), default=list)
    connectors = models.ManyToManyField(
        Connector, blank=True, related_name="+", verbose_name=_("connectors"),
        help_text=_("Only events of these connectors. None selected: every connector."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["url"]
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.description or self.url


class WebhookDelivery(models.Model):
    """One event sent (or to be sent) to one endpoint. ``payload`` holds ids and statuses,
    never a secret; the message that asks a worker to send it carries the delivery's id."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Delivered")
        #: Every attempt failed (or the endpoint was disabled or refused): re-send it by hand.
        FAILED = "failed", _("Failed")
        #: Not sent: too many deliveries were pending for the endpoint (WEBHOOK_MAX_PENDING).
        DROPPED = "dropped", _("Dropped")

    #: The event's id, the same for every endpoint and attempt: the receiver's idempotency key.
    event_id = models.UUIDField(_("event ID"), default=uuid.uuid4, editable=False)
    event = models.CharField(_("event"), max_length=50)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE,
                                 related_name="deliveries", verbose_name=_("endpoint"))
    connector = models.ForeignKey(Connector, on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="+", verbose_name=_("connector"))
    payload = models.JSONField(_("payload"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices,
                              default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    response_code = models.PositiveIntegerField(_("last response code"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    #: When the next attempt may start; while one runs, when its claim runs out.
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        indexes = [
            # The pending cap per endpoint.
            models.Index(fields=["endpoint", "status"], name="alloy_oauth_hook_queue"),
            # The sweep: pending deliveries whose message was lost; old ones to delete.
            models.Index(fields=["status", "next_attempt_at"], name="alloy_oauth_hook_due"),
            models.Index(fields=["created_at"], name="alloy_oauth_hook_age"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"],
                                    name="alloy_oauth_hook_once_per_event"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint} ({self.created_at:%Y-%m-%d %H:%M:%S})"
