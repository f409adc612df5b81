"""The credential (one end user's tokens for one connector) and its audit trail. The token
methods hand over to the refresh engine and the API session without importing them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.apps import apps
from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import NullIf
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import auth_types, connection_params, querysets
from ..conf import app_settings
from ..fields import EncryptedJSONField, EncryptedTextField, is_undecryptable
from ..querysets import CredentialQuerySet
from .connector import Connector

if TYPE_CHECKING:
    from requests_oauthlib import OAuth2Session

    from ..outcomes import Outcome


def credential_methods() -> Any:
    """:mod:`alloy_oauth.credential_methods`, where ``Credential``'s token methods are done
    (by the refresh engine and the API session). Those build on these models, so the models
    do not import them: ``AppConfig.ready()`` wires them in."""
    return apps.get_app_config("alloy_oauth").credential_methods


def cascade_without_nulling(collector: Any, field: Any, sub_objs: Any, using: str) -> None:
    """``models.CASCADE`` without its MySQL/MariaDB detour: there (no deferrable constraints)
    Django first sets a nullable foreign key to NULL, then deletes the rows, and the NULL
    breaks ``alloy_oauth_cred_has_owner``, so a user with a credential could not be deleted.
    Credential → user is no cycle: the collector deletes the credentials first
    (``nullable=False`` orders the deletes instead of relying on the NULLs). Migrations name
    this function as ``alloy_oauth.models.cascade_without_nulling``: keep it there."""
    collector.collect(sub_objs, source=field.remote_field.model, source_attr=field.name,
                      nullable=False, fail_on_restricted=False)


class Credential(models.Model):
    """One end user's tokens for one connector."""

    class Status(models.TextChoices):
        ACTIVE = querysets.ACTIVE, _("Active")
        REAUTH_REQUIRED = "reauth_required", _("Reconnection required")
        ERROR = "error", _("Error")
        REVOKED = "revoked", _("Revoked")

    connector = models.ForeignKey(
        Connector, on_delete=models.PROTECT, related_name="credentials",
        verbose_name=_("connector"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=cascade_without_nulling, null=True, blank=True,
        related_name="alloy_oauth_credentials", verbose_name=_("user"),
    )
    #: Case-sensitive on every database: on MySQL/MariaDB through a binary collation that
    #: migration 0003 sets in the database only (a migration altering this field must too).
    external_id = models.CharField(
        _("external ID"), max_length=255, blank=True, db_index=True,
        help_text=_("The host's own identifier for an end user who is not a Django user."),
    )
    #: ``external_id``, NULL when blank (kept by the database): what the one-credential-per-
    #: external-id constraint is on. A unique constraint on ``external_id`` itself would need
    #: a condition, which MySQL/MariaDB do not support (Django silently skips it there).
    external_key = models.GeneratedField(
        expression=NullIf("external_id", Value("")),
        output_field=models.CharField(max_length=255, null=True),
        db_persist=True,
    )

    access_token = EncryptedTextField(_("access token"), blank=True, null=True, default="")
    refresh_token = EncryptedTextField(_("refresh token"), blank=True, null=True, default="")
    #: An API key, a user name and password (connectors of those types; a Bearer token is
    #: the access token).
    api_key = EncryptedTextField(_("API key"), blank=True, null=True, default="")
    username = EncryptedTextField(_("user name"), blank=True, null=True, default="")
    password = EncryptedTextField(_("password"), blank=True, null=True, default="")
    token_type = models.CharField(_("token type"), max_length=40, default="Bearer")
    scope = models.TextField(_("granted scope"), blank=True)
    requested_scope = models.TextField(_("requested scope"), blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    refresh_token_expires_at = models.DateTimeField(
        _("refresh token expires at"), null=True, blank=True,
        help_text=_("When the provider said the refresh token expires: reconnect before."),
    )
    token_response = EncryptedJSONField(
        _("other token response fields"), default=dict, blank=True,
    )
    #: The connection parameters this account was connected with (not secret).
    connection_config = models.JSONField(
        _("connection parameters"), default=dict, blank=True,
        help_text=_("The values of the connector's connection parameters for this account."),
    )
    #: What the connector's metadata fields and callback parameters found (not secret).
    metadata = models.JSONField(
        _("metadata"), default=dict, blank=True,
        help_text=_("Values the provider returned, kept as the connector says."),
    )
    #: Which of an owner's accounts at the connector this is: "" for the one account of a
    #: connector that allows one (so the unique constraints allow one per owner), a key of
    #: its own per account otherwise.
    account_key = models.CharField(max_length=64, blank=True, default="", editable=False)

    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.ACTIVE,
    )
    connected_at = models.DateTimeField(_("connected at"), default=timezone.now)
    last_refreshed_at = models.DateTimeField(_("last refreshed at"), null=True, blank=True)
    next_refresh_at = models.DateTimeField(_("next refresh at"), null=True, blank=True)
    failure_count = models.PositiveIntegerField(_("consecutive failures"), default=0)
    #: When the current run of failed refreshes began (meaningful while ``failure_count`` is
    #: positive): how long a credential was failing when it recovers.
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    lease_until = models.DateTimeField(_("refresh lease until"), null=True, blank=True)
    #: Who holds the lease (random per lease): fences the holder's writes.
    lease_token = models.CharField(max_length=32, blank=True, editable=False)
    version = models.PositiveIntegerField(_("version"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = CredentialQuerySet.as_manager()

    #: The encrypted fields an API request or a refresh may use.
    SECRET_FIELDS = ("access_token", "refresh_token", "api_key", "username", "password")

    class Meta:
        verbose_name = _("credential")
        verbose_name_plural = _("credentials")
        indexes = [
            # The refresh sweep: active credentials whose next_refresh_at has come.
            models.Index(fields=["status", "next_refresh_at"], name="alloy_oauth_cred_due"),
            # Credentials by connector and status (metrics, manage.py alloy_oauth_status).
            models.Index(fields=["connector", "status"], name="alloy_oauth_cred_health"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False) | ~Q(external_id=""),
                name="alloy_oauth_cred_has_owner",
            ),
            # NULLs are distinct in unique indexes on SQLite, PostgreSQL and MySQL/MariaDB:
            # no condition needed (MySQL/MariaDB would ignore one). One credential per owner
            # and account_key: per owner, unless the connector allows several accounts.
            models.UniqueConstraint(
                fields=["connector", "user", "account_key"],
                name="alloy_oauth_cred_one_per_user_account",
            ),
            models.UniqueConstraint(
                fields=["connector", "external_key", "account_key"],
                name="alloy_oauth_cred_one_per_external_id_account",
            ),
        ]

    def __str__(self) -> str:
        account = self.account_label
        return f"{self.connector} — {self.owner_label}" + (f" ({account})" if account else "")

    @property
    def account_label(self) -> str:
        """What tells this account apart from the owner's others at the connector (the
        connector's ``account_label`` filled in), or ``""``."""
        return connection_params.label(
            self.connector.account_label,
            self.connection_config if isinstance(self.connection_config, dict) else {},
            self.metadata if isinstance(self.metadata, dict) else {})

    def url(self, field: str) -> str:
        """The connector's URL ``field`` for this account (see :meth:`Connector.url`)."""
        return self.connector.url(field, self.connection_config, self.metadata)

    def api_url(self, path: str) -> str:
        """``path`` under this account's API base URL."""
        return self.connector.api_url(path, base=self.url("api_base_url"))

    @property
    def reconnect_by(self) -> datetime | None:
        """When the refresh token runs out, if that is within ``REFRESH_TOKEN_EXPIRY_WARNING``:
        the end user should reconnect before then."""
        warn_from = timezone.now() + timedelta(seconds=app_settings.REFRESH_TOKEN_EXPIRY_WARNING)
        expiry = self.refresh_token_expires_at
        return expiry if expiry is not None and expiry <= warn_from else None

    @property
    def undecryptable(self) -> bool:
        """Whether a token of this credential cannot be decrypted with ``FERNET_KEYS``."""
        return any(is_undecryptable(getattr(self, name)) for name in self.SECRET_FIELDS)

    def save(self, *args: Any, **kwargs: Any) -> None:
        if (self._state.adding and not self.access_token and self.next_refresh_at is None
                and self.connector.auth_type == auth_types.CLIENT_CREDENTIALS):
            # No token yet (client credentials: created by the operator or host code): due
            # now, and expired, so the sweep and get_access_token() fetch one.
            self.expires_at = self.next_refresh_at = timezone.now()
            self.requested_scope = self.requested_scope or " ".join(self.connector.scopes)
        super().save(*args, **kwargs)

    @property
    def scopes_missing(self) -> list[str]:
        """Requested but not granted (the end user unticked them, or the provider refused)."""
        granted = set(self.scope.split())
        return [scope for scope in self.requested_scope.split() if scope not in granted]

    @property
    def scopes_extra(self) -> list[str]:
        """Granted without being requested."""
        requested = set(self.requested_scope.split())
        return [scope for scope in self.scope.split() if scope not in requested]

    @property
    def owner_label(self) -> str:
        if self.user_id is not None:
            return str(self.user)
        return self.external_id

    def get_access_token(self, min_valid: int = 60) -> str:
        """An access token valid for at least ``min_valid`` seconds, refreshed now if needed
        (or, when another process is refreshing it, the token that process gets).

        Raises ``alloy_oauth.exceptions.ReauthorizationRequired`` when the end user must
        reconnect, and ``TokenRefreshFailed`` when the token has expired and cannot be
        refreshed right now. While a refresh is impossible, a token that is still valid (for
        less than ``min_valid``) is returned rather than nothing.

        An API key credential gives its key, a Bearer one its token; a Basic one has no token
        and raises ``alloy_oauth.exceptions.NoAccessToken`` (use :meth:`session`, or
        ``username`` and ``password``). See docs/auth-types.md.
        """
        return credential_methods().access_token(self, min_valid=min_valid)

    async def aget_access_token(self, min_valid: int = 60) -> str:
        """:meth:`get_access_token` for async code (an async view, a consumer). The refresh
        is blocking database and HTTP work, so it runs where Django runs synchronous work for
        async code, as the ORM's own ``a…`` methods do (``sync_to_async``)."""
        return await sync_to_async(self.get_access_token)(min_valid=min_valid)

    def session(self, min_valid: int = 60) -> OAuth2Session:
        """An ``OAuth2Session`` for the connector's API that handles the token itself: a
        :class:`alloy_oauth.session.CredentialSession`. (Annotated with its public base class,
        so the models need not know the API session's module, which builds on them.)"""
        return credential_methods().session(self, min_valid=min_valid)

    def refresh(self, force: bool = False) -> Outcome:
        """Refresh now through the engine (when due, or always with ``force``) and reload."""
        outcome = credential_methods().refresh_for_caller(self, force=force, wait=True)
        self.refresh_from_db()
        return outcome

    def revoke(self) -> Outcome:
        """Revoke at the provider (RFC 7009, if the connector has a revocation URL), delete the
        tokens, mark ``revoked`` and reload. When the provider does not confirm, nothing
        changes and the outcome (``result == "failed"``) says why."""
        outcome = credential_methods().revoke_credential(self.pk)
        self.refresh_from_db()
        return outcome


class CredentialEvent(models.Model):
    """The audit trail of one credential. ``detail`` never holds a secret."""

    class Kind(models.TextChoices):
        CONNECTED = "connected", _("Connected")
        REFRESHED = "refreshed", _("Refreshed")
        REFRESH_FAILED = "refresh_failed", _("Refresh failed")
        REAUTH_REQUIRED = "reauth_required", _("Reconnection required")
        REVOKED = "revoked", _("Revoked")
        #: Refreshed after failing (instead of ``refreshed``).
        RECOVERED = "recovered", _("Recovered")

    credential = models.ForeignKey(
        Credential, on_delete=models.CASCADE, related_name="events", verbose_name=_("credential"),
    )
    kind = models.CharField(_("event"), max_length=20, choices=Kind.choices)
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    detail = models.TextField(_("detail"), blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("credential event")
        verbose_name_plural = _("credential events")
        indexes = [
            models.Index(fields=["credential", "-created_at"], name="alloy_oauth_event_trail"),
            # Failures of the last hour (manage.py alloy_oauth_status).
            models.Index(fields=["kind", "created_at"], name="alloy_oauth_event_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.created_at:%Y-%m-%d %H:%M:%S})"
