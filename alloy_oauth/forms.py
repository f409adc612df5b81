"""The operator's forms: the connector (write-only client secret, URL and JSON validation) and
the webhook endpoint (write-only signing secret, the webhook URL policy)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from . import auth_types, connection_params, connector_auth, protocol
from .bounded_json import BoundedJSONField
from .validation import OAUTH_FIELDS
from .fields import is_undecryptable
from .models import Connector, Credential, WebhookEndpoint
from .webhooks import EVENT_TYPES
from .webhooks.delivery import url_problem

_RESERVED_PARAMS = {
    "authorization_params": protocol.RESERVED_AUTHORIZATION_PARAMS,
    "token_params": protocol.RESERVED_TOKEN_PARAMS,
    "refresh_params": protocol.RESERVED_TOKEN_PARAMS,
}
_JSON_EXAMPLES = {
    "authorization_params": '{"access_type": "offline", "prompt": "consent"}',
    "token_params": '{"audience": "https://api.example.com"}',
    "refresh_params": '{"scope": "offline_access"}',
}
#: The stored client secret is sent to these: changing one needs the secret typed again, so a
#: staff user who cannot read it cannot have it sent elsewhere.
SECRET_DESTINATIONS = ("token_url", "refresh_url", "revocation_url")


def _formfield(field: models.Field, **kwargs: Any) -> forms.Field | None:
    if isinstance(field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    if isinstance(field, models.JSONField):
        kwargs.setdefault("form_class", BoundedJSONField)
    return field.formfield(**kwargs)


def _values_allowed(spec: Any) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """What a ``connection_params`` value lets end users put in the URLs (labels and help
    texts aside)."""
    return [(param.name, param.pattern, param.choices)
            for param in connection_params.declared(spec or [])]


class CopyableInput(forms.TextInput):
    """A read-only text input with a Copy button (the callback URL)."""

    template_name = "alloy_oauth/widgets/copyable.html"


class HostConfirmation(forms.CheckboxInput):
    """The tick box that confirms the API base URL's new host. Hidden, and empty, until the
    form asks for it (:attr:`confirms` set); then its value is the host it confirms, so a tick
    given for another host (the URL edited again before saving) confirms nothing."""

    confirms = ""

    @property
    def is_hidden(self) -> bool:
        return not self.confirms

    def format_value(self, value: Any) -> str | None:
        return self.confirms or None

    def get_context(self, name: str, value: Any, attrs: Any) -> dict[str, Any]:
        context = super().get_context(name, bool(self.confirms) and value == self.confirms,
                                      attrs)
        context["widget"]["type"] = "checkbox" if self.confirms else "hidden"
        return context

    def value_from_datadict(self, data: Any, files: Any, name: str) -> str:
        return data.get(name, "")


def _api_host(url: str) -> tuple[Any, str]:
    """Where an API base URL sends secrets, as compared (scheme, host and port, the default
    port written out) and as shown (``https://api.example.com``); a URL that starts with a
    placeholder (``{metadata.instance_url}/services``) is its own host."""
    parts = urlsplit(url)
    if not parts.netloc:
        shown = url.split("/", 1)[0]
        return shown, shown
    return auth_types.origin(url), f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class ConnectorForm(forms.ModelForm):
    #: Set by the admin from the request (see :func:`alloy_oauth.models.callback_url`).
    callback_url_value = ""

    callback_url = forms.CharField(
        label=gettext_lazy("Callback URL"),
        required=False,
        disabled=True,
        help_text=gettext_lazy("Register this URL as the redirect URI at the provider."),
        widget=CopyableInput(attrs={"readonly": True, "size": 60, "class": "vTextField"}),
    )
    client_secret = forms.CharField(
        label=gettext_lazy("Client secret"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    #: Asked for when the API base URL moves to another host while credentials are stored
    #: (:meth:`_confirm_api_host`).
    confirm_api_host = forms.CharField(label=gettext_lazy("New API host confirmed"),
                                       required=False, widget=HostConfirmation)

    class Meta:
        model = Connector
        fields = "__all__"
        formfield_callback = _formfield

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        connector_auth.prepare(self)
        # The stored secret never enters the form, so it can never be rendered back.
        self.initial.pop("client_secret", None)
        self.fields["callback_url"].initial = self.callback_url_value or self.instance.callback_url
        if self.instance.pk and is_undecryptable(self.instance.client_secret):
            self.fields["client_secret"].help_text = _(
                "The stored secret cannot be decrypted with FERNET_KEYS: type it again."
            )
        elif self.instance.pk and self.instance.client_secret:
            self.fields["client_secret"].help_text = _(
                "A secret is stored. Leave blank to keep it; type a new one to replace it."
            )
        else:
            self.fields["client_secret"].help_text = _("No secret is stored yet.")

    def clean_client_secret(self) -> str:
        value = self.cleaned_data.get("client_secret") or ""
        if not value and self.instance.pk:
            if is_undecryptable(self.instance.client_secret):
                raise forms.ValidationError(_(
                    "The stored secret cannot be decrypted with FERNET_KEYS: type it again."))
            return self.instance.client_secret
        return value

    def clean_scope(self) -> str:
        value = self.cleaned_data.get("scope", "")
        if value.strip() and not protocol.parse_scopes(value):
            raise forms.ValidationError(
                _("Enter at least one scope (separated by spaces or commas), or leave it blank.")
            )
        return value.strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        moved = [name for name in SECRET_DESTINATIONS if name in self.changed_data]
        if self.instance.pk and self.instance.client_secret and moved and not (
            self.data.get(self.add_prefix("client_secret"))
        ):
            self.add_error("client_secret", _(
                "You changed the %(fields)s: type the client secret again. The saved secret is "
                "only ever sent to the addresses it was saved with."
            ) % {"fields": _(" and the ").join(
                str(Connector._meta.get_field(name).verbose_name) for name in moved)})
        if (self.instance.pk and self.instance.client_secret and not moved
                and _values_allowed(cleaned.get("connection_params"))
                != _values_allowed(self.instance.connection_params)
                and not self.data.get(self.add_prefix("client_secret"))
                and any(connection_params.has_placeholders(url or "") for url in (
                    *(cleaned.get(name) for name in SECRET_DESTINATIONS),
                    *(getattr(self.instance, name) for name in SECRET_DESTINATIONS)))):
            # New patterns or choices make new hosts for the URLs the secret is sent to.
            self.add_error("client_secret", _(
                "You changed the values the connection parameters allow: type the client secret "
                "again. The saved secret is only ever sent to the addresses it was saved "
                "with."))
        self._clean_connection_params(cleaned)
        connector_auth.clean(self, cleaned)
        self._confirm_api_host(cleaned)
        for name in Connector.URL_FIELDS:
            url = cleaned.get(name)
            problem = url and protocol.insecure_url_problem(
                connection_params.sample_url(url), allow_http=settings.DEBUG)
            if problem:
                self.add_error(name, _("This URL %(problem)s.") % {"problem": problem})
        if cleaned.get("require_issuer") and not cleaned.get("issuer"):
            self.add_error("issuer", _(
                "Enter the issuer (the value the provider sends as “iss”), or untick “provider "
                "always sends iss”."))
        for name, reserved in _RESERVED_PARAMS.items():
            value = cleaned.get(name)
            if value is None or name not in cleaned:
                continue
            if not isinstance(value, dict):
                self.add_error(name, _("Enter a JSON object, e.g. %(example)s.")
                               % {"example": _JSON_EXAMPLES[name]})
            elif clash := sorted(set(value) & reserved):
                self.add_error(name, _("Remove %(names)s: the OAuth flow sets these "
                                       "parameters itself.") % {"names": ", ".join(clash)})
        return cleaned

    def _confirm_api_host(self, cleaned: dict[str, Any]) -> None:
        """Every stored credential's secret (access token, API key, password) goes to the API
        base URL's host: moving it to another one needs the operator's explicit tick, which
        names the host and how many credentials. Not when no credential holds a secret, nor
        when the URL is set for the first time (it only narrows where secrets go) or cleared
        (then only host code's absolute URLs say where requests go)."""
        before, after = self.instance.api_base_url, cleaned.get("api_base_url")
        if not (self.instance.pk and before and after):
            return
        (old_key, old), (new_key, new) = _api_host(before), _api_host(after)
        if old_key == new_key:
            return
        count = self.instance.credentials.exclude(status=Credential.Status.REVOKED).count()
        if not count or cleaned.get("confirm_api_host") == new:
            return
        field = self.fields["confirm_api_host"]
        field.widget.confirms = new
        field.label = ngettext(
            "Yes, send the stored credential's secret to %(host)s",
            "Yes, send the stored secrets of %(count)d credentials to %(host)s",
            count) % {"count": count, "host": new}
        # (The page shows the bound field's label, which cleaning has made already.)
        self["confirm_api_host"].label = field.label
        self.add_error("confirm_api_host", ngettext(
            "The API base URL now points to another host: %(new)s instead of %(old)s. From now "
            "on, the credential stored for this connector sends its secret (access token, API "
            "key or password) to %(new)s with every API request. If that host belongs to the "
            "API, tick the box below and press Save.",
            "The API base URL now points to another host: %(new)s instead of %(old)s. From now "
            "on, each of the %(count)d credentials stored for this connector sends its secret "
            "(access token, API key or password) to %(new)s with every API request. If that "
            "host belongs to the API, tick the box below and press Save.",
            count) % {"count": count, "new": new, "old": old})

    def _clean_connection_params(self, cleaned: dict[str, Any]) -> None:
        """The shapes of connection_params, metadata_fields and callback_params, and every
        ``{placeholder}`` of the URLs and the account label declared where it may be used
        (see :mod:`alloy_oauth.connection_params`)."""
        for name, empty in (("connection_params", list), ("metadata_fields", dict),
                            ("callback_params", list)):
            if name in cleaned and cleaned[name] is None:  # (left blank)
                cleaned[name] = empty()
        spec = cleaned.get("connection_params", [])
        problems = connection_params.spec_problems(spec) if "connection_params" in cleaned else []
        for problem in problems:
            self.add_error("connection_params", problem)
        params = connection_params.declared(spec) if not problems else []
        fields = cleaned.get("metadata_fields", {})
        names = cleaned.get("callback_params", [])
        metadata_problems = connection_params.metadata_spec_problems(
            fields if "metadata_fields" in cleaned else {},
            names if "callback_params" in cleaned else [])
        for name, found in metadata_problems.items():
            for problem in found:
                self.add_error(name, problem)
        if problems or metadata_problems or "connection_params" not in cleaned:
            return  # (the templates are judged against declarations that are sound)
        keys = [*fields, *names]
        for name in Connector.URL_FIELDS:
            url = cleaned.get(name)
            problem = url and connection_params.template_problem(
                url, params, keys, allow_metadata=name == "api_base_url")
            if problem:
                self.add_error(name, problem)
        label = cleaned.get("account_label") or ""
        problem = connection_params.label_problem(label, params, keys)
        if problem:
            self.add_error("account_label", problem)

    def save(self, commit: bool = True) -> Connector:
        if self.instance.pk and any(name in self.changed_data for name in OAUTH_FIELDS):
            self.instance.validated_at = None
        return super().save(commit=commit)


#: A webhook secret shorter than this is refused (it is the receiver's only proof).
MIN_WEBHOOK_SECRET_LENGTH = 24
#: How long deliveries are signed with the replaced secret too, after a new one is saved.
WEBHOOK_SECRET_OVERLAP = timedelta(hours=24)


class WebhookEndpointForm(forms.ModelForm):
    secret = forms.CharField(
        label=gettext_lazy("Signing secret"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    events = forms.MultipleChoiceField(
        label=gettext_lazy("Events"), widget=forms.CheckboxSelectMultiple,
        choices=list(EVENT_TYPES.items()),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "is_active", "secret", "events", "connectors"]
        formfield_callback = _formfield
        widgets = {"connectors": forms.CheckboxSelectMultiple}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial.pop("secret", None)  # never rendered back
        if not self.instance.pk:
            self.initial.setdefault("events", list(EVENT_TYPES))
        hint = _("At least %(length)d random characters, e.g. from python -c \"import secrets; "
                 "print(secrets.token_urlsafe(32))\"; give the same to your receiver.") % {
            "length": MIN_WEBHOOK_SECRET_LENGTH}
        if self.instance.pk and is_undecryptable(self.instance.secret):
            self.fields["secret"].help_text = _(
                "The stored secret cannot be decrypted with FERNET_KEYS: type a new one.")
        elif self.instance.pk and self.instance.secret:
            self.fields["secret"].help_text = _(
                "A secret is stored. Leave blank to keep it; type a new one to replace it "
                "(deliveries are signed with both for %(hours)d hours, so the receiver can "
                "switch).") % {"hours": WEBHOOK_SECRET_OVERLAP.total_seconds() // 3600}
        else:
            self.fields["secret"].help_text = hint

    def clean_url(self) -> str:
        url = self.cleaned_data.get("url", "")
        problem = url and url_problem(url)
        if problem:
            raise forms.ValidationError(_("This URL %(problem)s.") % {"problem": problem})
        return url

    def clean_secret(self) -> str:
        value = self.cleaned_data.get("secret") or ""
        stored = self.instance.secret if self.instance.pk else ""
        if not value:
            if stored and not is_undecryptable(stored):
                return stored
            raise forms.ValidationError(_("Enter the signing secret."))
        if len(value) < MIN_WEBHOOK_SECRET_LENGTH:
            raise forms.ValidationError(_("Use at least %(length)d characters.") % {
                "length": MIN_WEBHOOK_SECRET_LENGTH})
        return value

    def save(self, commit: bool = True) -> WebhookEndpoint:
        stored = WebhookEndpoint.objects.filter(pk=self.instance.pk).first() if (
            self.instance.pk) else None
        if (stored is not None and stored.secret and not is_undecryptable(stored.secret)
                and stored.secret != self.cleaned_data["secret"]):
            # Replaced: the old one signs too for a while (a receiver switching over).
            self.instance.previous_secret = stored.secret
            self.instance.previous_secret_expires_at = timezone.now() + WEBHOOK_SECRET_OVERLAP
        return super().save(commit=commit)
