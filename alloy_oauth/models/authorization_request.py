"""A pending authorization: what the callback needs to check and finish it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..fields import EncryptedJSONField, EncryptedTextField
from .connector import Connector


class AuthorizationRequest(models.Model):
    """One pending authorization: what the callback needs to check and finish it.

    Only a hash of ``state`` is stored; the PKCE verifier is encrypted.
    """

    class Purpose(models.TextChoices):
        #: An end user connects their account: the callback stores a credential.
        CONNECT = "connect", _("Connect")
        #: An operator validates the connector: the callback reports, stores no credential.
        VALIDATE = "validate", _("Validate")

    purpose = models.CharField(max_length=10, choices=Purpose.choices, default=Purpose.CONNECT)
    #: Started in a popup: the callback answers with a page that tells the opener and closes.
    popup = models.BooleanField(default=False)
    #: connect.js's id for this attempt, echoed in the popup's result.
    flow_id = models.CharField(max_length=64, blank=True)
    #: SHA-256 of the headless connect link that started it: a link works once.
    link_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    state_hash = models.CharField(max_length=64, unique=True)
    #: Null for the validation of a new connector's unsaved values (``draft``).
    connector = models.ForeignKey(
        Connector, on_delete=models.CASCADE, related_name="authorization_requests",
        null=True, blank=True,
    )
    #: A validation of values not saved yet: the connector's values (the client secret among
    #: them), which the callback uses instead of the saved connector's.
    draft = EncryptedJSONField(default=dict, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
        related_name="+",
    )
    external_id = models.CharField(max_length=255, blank=True)
    #: The connection parameters of this attempt (its URLs were built with them).
    connection_config = models.JSONField(default=dict, blank=True)
    #: The account being reconnected, when one was named (a connector with several accounts).
    credential = models.ForeignKey(
        "Credential", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
    )
    code_verifier = EncryptedTextField(blank=True, null=True)
    redirect_uri = models.TextField()
    scope = models.TextField(blank=True)
    next_url = models.TextField(blank=True)
    session_binding = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("authorization request")
        verbose_name_plural = _("authorization requests")

    def __str__(self) -> str:
        return f"{self.connector} ({self.created_at:%Y-%m-%d %H:%M:%S})"
