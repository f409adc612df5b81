"""The connector: one OAuth 2.0 app registration at a third party (or an API key, Basic or
Bearer connection), as the operator configures it in the admin."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.templatetags.static import static
from django.utils.translation import gettext_lazy as _

from .. import auth_types, connection_params, protocol
from ..conf import app_settings
from ..fields import EncryptedTextField, TemplatedURLField, validate_logo_url
from .site_urls import callback_url


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
