"""Connectors (operator configuration), credentials (end users' tokens), pending authorizations,
the audit trail, and webhook endpoints with their deliveries. Every secret is stored with
``fernet_fields.EncryptedTextField``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.apps import apps
from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import NullIf
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import auth_types, connection_params, protocol, querysets
from .conf import app_settings
from .fields import (EncryptedJSONField, EncryptedTextField, TemplatedURLField, is_undecryptable,
                     validate_logo_url)
from .querysets import CredentialQuerySet

__all__ = ["Connector", "Credential", "CredentialEvent", "WebhookEndpoint", "WebhookDelivery"]

if TYPE_CHECKING:
    from .refresh import Outcome
    from .session import CredentialSession


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
    this function: keep it."""
    collector.collect(sub_objs, source=field.remote_field.model, source_attr=field.name,
                      nullable=False, fail_on_restricted=False)


def absolute_url(path: str, request: Any = None) -> str:
    """``path`` on this site: under ``CALLBACK_BASE_URL`` when set, else on the request's
    host; without either, the path alone (set ``CALLBACK_BASE_URL``)."""
    if app_settings.CALLBACK_BASE_URL:
        return app_settings.CALLBACK_BASE_URL + path
    if request is not None:
        return request.build_absolute_uri(path)
    return path


def callback_url(request: Any = None) -> str:
    """The absolute URL of the one callback view (see :func:`absolute_url`)."""
    return absolute_url(reverse("alloy_oauth:callback"), request)


class Connector(models.Model):
    """One OAuth 2.0 app registration at a third party."""

    class ClientAuthMethod(models.TextChoices):
        CLIENT_SECRET_BASIC = protocol.CLIENT_SECRET_BASIC, _("HTTP Basic (client_secret_basic)")
        CLIENT_SECRET_POST = protocol.CLIENT_SECRET_POST, _("In the body (client_secret_post)")

    class ScopeSeparator(models.TextChoices):
        SPACE = " ", _("Space (RFC 6749)")
        COMMA = ",", _("Comma")

    #: The connectors offered to end users (Connections page, connect buttons, authorize
    #: view): active, and validated since their last OAuth change (docs/admin.md).
    LIVE = Q(is_active=True, validated_at__isnull=False)

    class AuthType(models.TextChoices):
        OAUTH2 = auth_types.OAUTH2, _("OAuth 2.0 (end users authorize)")
        CLIENT_CREDENTIALS = auth_types.CLIENT_CREDENTIALS, _(
            "OAuth 2.0 client credentials (no end user)")
        API_KEY = auth_types.API_KEY, _("API key")
        BASIC = auth_types.BASIC, _("Basic (user name and password)")
        BEARER = auth_types.BEARER, _("Bearer token")

    class TokenPlacement(models.TextChoices):
        HEADER = auth_types.HEADER, _("Header")
        QUERY = auth_types.QUERY, _("Query parameter")

    #: The fields that hold URLs of the provider.
    URL_FIELDS = ("auth_url", "token_url", "refresh_url", "revocation_url", "api_base_url")

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), unique=True, help_text=_("Used in URLs."))
    is_active = models.BooleanField(
        _("active"), default=True,
        help_text=_("Untick to stop offering this connector to end users. An active connector "
                    "is offered once it has passed “Validate credential” (see “Live” in the "
                    "list)."),
    )
    auth_type = models.CharField(
        _("authentication type"), max_length=32, choices=AuthType.choices,
        default=AuthType.OAUTH2,
        help_text=_("How requests to the API are authenticated. OAuth 2.0: each end user "
                    "authorizes in a popup. Client credentials: the app itself gets tokens, no "
                    "end user. API key, Basic, Bearer: a secret entered by the operator or by "
                    "the end user in the connect popup."),
    )
    logo_url = models.CharField(
        _("logo"), max_length=500, blank=True, validators=[validate_logo_url],
        help_text=_("Shown to end users on the Connections page and the connect button: the "
                    "path of a static file (alloy_oauth/logos/github.svg) or an https URL of an "
                    "image, square, at least 48 px. Blank: the name's initial."),
    )

    auth_url = TemplatedURLField(
        _("auth URL"), max_length=500, blank=True,
        help_text=_("The provider's authorization endpoint, where end users grant access. "
                    "Like the other URLs, it may name connection parameters: "
                    "https://{shop}.myshopify.com/admin/oauth/authorize."),
    )
    token_url = TemplatedURLField(
        _("access token URL"), max_length=500, blank=True,
        help_text=_("The provider's token endpoint, where codes are exchanged for tokens."),
    )
    client_id = models.CharField(_("client ID"), max_length=255, blank=True)
    client_secret = EncryptedTextField(_("client secret"), blank=True, null=True)
    scope = models.TextField(
        _("scope"), blank=True, help_text=_("Scopes to request, separated by spaces or commas."),
    )

    refresh_url = TemplatedURLField(
        _("refresh URL"), max_length=500, blank=True,
        help_text=_("Leave blank to refresh at the access token URL."),
    )
    refresh_params = models.JSONField(
        _("extra refresh parameters"), default=dict, blank=True,
        help_text=_("JSON object added to the body of every refresh request."),
    )
    refresh_lead_time = models.PositiveIntegerField(
        _("refresh lead time"), null=True, blank=True,
        help_text=_("Seconds before expiry to refresh a token. Blank: the REFRESH_LEAD_TIME setting."),
    )
    default_expires_in = models.PositiveIntegerField(
        _("default token lifetime"), null=True, blank=True,
        help_text=_("Seconds to assume when the provider does not send expires_in."),
    )

    client_auth_method = models.CharField(
        _("client authentication"), max_length=32,
        choices=ClientAuthMethod.choices, default=ClientAuthMethod.CLIENT_SECRET_BASIC,
    )
    use_pkce = models.BooleanField(_("use PKCE (S256)"), default=True)
    scope_separator = models.CharField(
        _("scope separator"), max_length=1,
        choices=ScopeSeparator.choices, default=ScopeSeparator.SPACE,
    )
    authorization_params = models.JSONField(
        _("extra authorization parameters"), default=dict, blank=True,
        help_text=_('JSON object added to the authorization URL, e.g. {"access_type": "offline"}.'),
    )
    token_params = models.JSONField(
        _("extra token parameters"), default=dict, blank=True,
        help_text=_("JSON object added to the body of the code exchange."),
    )
    revocation_url = TemplatedURLField(
        _("revocation URL"), max_length=500, blank=True, help_text=_("RFC 7009 endpoint, optional."),
    )
    issuer = models.CharField(
        _("issuer"), max_length=500, blank=True,
        help_text=_("The provider's issuer identifier (RFC 8414/9207). When a callback carries "
                    "iss, it must be this."),
    )
    require_issuer = models.BooleanField(
        _("provider always sends iss"), default=False,
        help_text=_("Refuse callbacks without iss (RFC 9207): only if the provider sends it."),
    )
    keepalive_interval = models.PositiveIntegerField(
        _("keep-alive interval"), null=True, blank=True,
        help_text=_("Seconds: refresh credentials not refreshed for this long even if their "
                    "access token does not expire (providers revoke idle refresh tokens)."),
    )
    api_base_url = TemplatedURLField(
        _("API base URL"), max_length=500, blank=True,
        help_text=_("Relative URLs of credential.session() are resolved against it. It may "
                    "name connection parameters and metadata: "
                    "{metadata.instance_url}/services/data/v62.0."),
    )
    test_request_path = models.CharField(
        _("test request path"), max_length=500, blank=True,
        help_text=_("A GET request made with a new token when validating, e.g. /user; "
                    "for API keys, Basic and Bearer tokens, the check made before one is "
                    "stored."),
    )
    test_request_statuses = models.CharField(
        _("statuses of a valid test request"), max_length=100, blank=True,
        help_text=_("HTTP statuses of the test request that mean the secret is valid, "
                    "separated by commas: 200, 204. Blank: any status below 400."),
    )
    token_placement = models.CharField(
        _("token placement"), max_length=10, choices=TokenPlacement.choices,
        default=TokenPlacement.HEADER,
        help_text=_("Where each API request carries the token or key: a header, or a query "
                    "parameter (only ever sent to the API base URL's host)."),
    )
    token_header = models.CharField(
        _("header name"), max_length=100, default=auth_types.DEFAULT_HEADER, blank=True,
        help_text=_("The header that carries it: Authorization, X-Shopify-Access-Token, "
                    "X-Api-Key."),
    )
    token_template = models.CharField(
        _("header value"), max_length=200, default=auth_types.DEFAULT_TEMPLATE, blank=True,
        help_text=_("The header's value: {token_type} {token} (e.g. “Bearer abc…”; "
                    "“Basic …” for Basic), {token} alone, Token token={api_key}. An API key is "
                    "{api_key}; Basic has {username} and {password}."),
    )
    token_query_param = models.CharField(
        _("query parameter"), max_length=100, blank=True,
        help_text=_("With a query placement: the parameter that carries the token or key, "
                    "e.g. api_key."),
    )

    connection_params = models.JSONField(
        _("connection parameters"), default=list, blank=True,
        help_text=_('JSON list of values asked for before the authorization, used as {name} in '
                    'the URLs: [{"name": "shop", "label": "Shop name", "help": "…", '
                    '"pattern": "[a-z0-9][a-z0-9-]*"}], or "choices": ["com", "eu"] instead '
                    'of a pattern.'),
    )
    metadata_fields = models.JSONField(
        _("metadata fields"), default=dict, blank=True,
        help_text=_('JSON object of token response fields kept with each credential, in clear: '
                    '{"instance_url": "instance_url", "team_id": "team.id"}. Usable as '
                    '{metadata.key} in the API base URL.'),
    )
    callback_params = models.JSONField(
        _("callback parameters"), default=list, blank=True,
        help_text=_('JSON list of query parameters of the callback kept as metadata, in clear: '
                    '["realmId"].'),
    )
    allow_multiple_accounts = models.BooleanField(
        _("several accounts per end user"), default=False,
        help_text=_("End users may connect more than one account (two shops, two mailboxes)."),
    )
    account_label = models.CharField(
        _("account label"), max_length=200, blank=True,
        help_text=_("What tells an end user's accounts apart on the Connections page, from "
                    "connection parameters and metadata: {shop}, or {metadata.email}."),
    )

    validated_at = models.DateTimeField(_("validated at"), null=True, blank=True, editable=False)
    validation_error = models.TextField(_("validation error"), blank=True, editable=False)
    #: What the last validation found (no secret): checks, token lifetime, scopes, test request.
    validation_report = models.JSONField(_("validation report"), default=dict, blank=True,
                                         editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("connector")
        verbose_name_plural = _("connectors")

    def __str__(self) -> str:
        return self.name

    @property
    def logo_src(self) -> str:
        """The ``src`` of the logo: the https URL, or the static file's URL; ``""`` when there
        is none, or the static file is gone (a manifest storage raises then: the page must
        still show, with the initial instead)."""
        if not self.logo_url or self.logo_url.startswith("https://"):
            return self.logo_url
        try:
            return static(self.logo_url)
        except ValueError:
            return ""

    @property
    def logo_initial(self) -> str:
        """The first letter of the name: the logo of a connector without one."""
        return self.name[:1].upper()

    @property
    def callback_url(self) -> str:
        """What the operator registers at the provider (see :func:`callback_url`)."""
        return callback_url()

    @property
    def scopes(self) -> list[str]:
        return protocol.parse_scopes(self.scope)

    @property
    def is_live(self) -> bool:
        """Offered to end users (see :attr:`LIVE`): active, and validated since its last
        OAuth change (saving a change to an OAuth field clears ``validated_at``)."""
        return self.is_active and self.validated_at is not None

    @property
    def placement(self) -> auth_types.Placement:
        """Where this connector's API requests carry the token or key."""
        return auth_types.Placement(self.auth_type, self.token_placement, self.token_header,
                                    self.token_template, self.token_query_param)

    def api_url(self, path: str, base: str | None = None) -> str:
        """``path`` under ``base`` (default: ``api_base_url``), keeping the base's own path."""
        return (self.api_base_url if base is None else base).rstrip("/") + "/" + path.lstrip("/")

    @property
    def params(self) -> list[connection_params.Param]:
        """The declared connection parameters (see :mod:`alloy_oauth.connection_params`)."""
        return connection_params.declared(self.connection_params)

    @property
    def metadata_keys(self) -> list[str]:
        """The metadata a credential of this connector may hold: the metadata fields' keys
        and the callback parameters."""
        fields = self.metadata_fields if isinstance(self.metadata_fields, dict) else {}
        names = self.callback_params if isinstance(self.callback_params, list) else []
        return [*fields, *(name for name in names if isinstance(name, str))]

    def connection_values(self, config: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
        """``(values, errors)``: the values of ``config`` that can be this connector's
        connection parameters, and what is wrong with the others, by parameter name. Every
        declared parameter needs a value that matches its pattern or choices and fits its
        place in every URL that names it; ``values`` is complete when ``errors`` is empty."""
        params = self.params
        values, errors = connection_params.read_values(params, config)
        for field in self.URL_FIELDS:
            template = getattr(self, field)
            if errors or not connection_params.has_placeholders(template):
                continue
            try:
                connection_params.build_url(template, params, values, sample_metadata=True)
            except connection_params.ParameterError as exc:
                errors.setdefault(exc.name or params[0].name, exc.message)
        return {name: value for name, value in values.items() if name not in errors}, errors

    def url(self, field: str, config: dict[str, Any] | None = None,
            metadata: dict[str, Any] | None = None) -> str:
        """The URL ``field`` (one of :attr:`URL_FIELDS`) for one connection: its connection
        parameters filled in from ``config`` and, in the API base URL, its metadata from
        ``metadata``; ``""`` when the field is blank. Raises
        ``connection_params.ParameterError`` when a value is missing, does not match its
        parameter, does not fit its place, or makes a URL that may not carry OAuth traffic
        (plain http to a public host)."""
        template = getattr(self, field)
        if not template or not connection_params.has_placeholders(template):
            return template
        provider_host = None
        if field == "api_base_url" and template.startswith("{"):
            provider_host = urlsplit(self.url("token_url", config)).hostname
        url = connection_params.build_url(template, self.params, config or {}, metadata,
                                          provider_host=provider_host)
        problem = protocol.insecure_url_problem(url, allow_http=settings.DEBUG)
        if problem:
            raise connection_params.ParameterError(
                _("With this connection's values, the %(field)s %(problem)s.") % {
                    "field": self._meta.get_field(field).verbose_name, "problem": problem})
        return url

    @property
    def lead_time(self) -> int:
        """Seconds before expiry at which this connector's tokens are refreshed."""
        if self.refresh_lead_time is not None:
            return self.refresh_lead_time
        return app_settings.REFRESH_LEAD_TIME

    def oauth_client(self, token_url: str | None = None) -> protocol.ClientConfig:
        """How the protocol layer reaches this connector's token endpoint."""
        return protocol.ClientConfig(
            token_url=token_url or self.token_url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            auth_method=self.client_auth_method,
            timeout=app_settings.HTTP_TIMEOUT,
            allow_http=settings.DEBUG,
        )

    def token_values(
        self, token: protocol.TokenResponse, *, requested_scopes: list[str]
    ) -> dict[str, Any]:
        """The credential columns a token response sets.

        ``expires_at`` counts from when the request was sent, so it is never late; a missing
        ``expires_in`` falls back to ``default_expires_in``, else the expiry is unknown and the
        token is not scheduled for refresh, unless the connector has a keep-alive interval
        (providers revoke refresh tokens left unused). An ``expires_in`` that is no lifetime
        (negative, zero, not finite, absurdly large) is not "unknown": it falls back to
        ``default_expires_in``, else to the short ``protocol.FALLBACK_EXPIRES_IN``, so the
        credential stays on the refresh schedule. A response without ``refresh_token``
        leaves the stored one (and its expiry) alone (RFC 6749 §6), and one without ``scope``
        means the requested scopes (RFC 6749 §5.1).
        """
        if token.expires_in is not None:
            lifetime = token.expires_in
        elif token.invalid_expires_in is not None:
            lifetime = self.default_expires_in or protocol.FALLBACK_EXPIRES_IN
        else:
            lifetime = self.default_expires_in
        expires_at = token.issued_at + timedelta(seconds=lifetime) if lifetime else None
        due = [self.refresh_due_at(expires_at, lifetime)]
        if self.keepalive_interval:
            due.append(token.issued_at + timedelta(seconds=self.keepalive_interval))
        values: dict[str, Any] = {
            "access_token": token.access_token,
            "token_type": token.token_type,
            "scope": " ".join(token.scopes if token.scopes is not None else requested_scopes),
            "expires_at": expires_at,
            "next_refresh_at": min((when for when in due if when is not None), default=None),
            "token_response": token.extra,
        }
        if token.refresh_token:
            values["refresh_token"] = token.refresh_token
            values["refresh_token_expires_at"] = (
                token.issued_at + timedelta(seconds=token.refresh_token_expires_in)
                if token.refresh_token_expires_in else None
            )
        return values

    def refresh_due_at(self, expires_at: datetime | None, lifetime: int | None) -> datetime | None:
        """When a token expiring at ``expires_at`` is due: the lead time before, but never
        more than half its lifetime (a 5-minute token with a 5-minute lead time would be due
        as soon as it is issued, and refreshed at every sweep)."""
        if expires_at is None:
            return None
        lead = min(self.lead_time, lifetime / 2) if lifetime else self.lead_time
        return expires_at - timedelta(seconds=lead)


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
        """
        return credential_methods().access_token(self, min_valid=min_valid)

    async def aget_access_token(self, min_valid: int = 60) -> str:
        """:meth:`get_access_token` for async code (an async view, a consumer). The refresh
        is blocking database and HTTP work, so it runs where Django runs synchronous work for
        async code, as the ORM's own ``a…`` methods do (``sync_to_async``)."""
        return await sync_to_async(self.get_access_token)(min_valid=min_valid)

    def session(self, min_valid: int = 60) -> CredentialSession:
        """A ``requests.Session`` for the connector's API that handles the token itself
        (see :class:`alloy_oauth.session.CredentialSession`)."""
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
