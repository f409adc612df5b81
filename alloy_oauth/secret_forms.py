"""Forms where a person enters the secret of an API key, Basic or Bearer connector: the
operator in the admin, the end user in the connect popup. The fields are write-only (never
filled back in, not even after an error) and the values are checked with the connector's
test request before anything is stored."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from . import entered_secrets
from .models import Connector

#: The fields of connection parameters asked for with the secret: ``param_shop``.
PARAM_PREFIX = "param_"
#: Longest secret accepted (far beyond any real key, small enough to bound the request).
MAX_SECRET_LENGTH = 4096


def _secret_input() -> forms.PasswordInput:
    return forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"})


class EnteredSecretForm(forms.Form):
    """The fields of the connector's type, required, and the test request's verdict."""

    api_key = forms.CharField(label=_("API key"), max_length=MAX_SECRET_LENGTH,
                              widget=_secret_input())
    username = forms.CharField(label=_("User name"), max_length=MAX_SECRET_LENGTH,
                               widget=forms.TextInput(attrs={"autocomplete": "off"}))
    password = forms.CharField(label=_("Password"), max_length=MAX_SECRET_LENGTH, strip=False,
                               widget=_secret_input())
    access_token = forms.CharField(label=_("Bearer token"), max_length=MAX_SECRET_LENGTH,
                                   widget=_secret_input())

    def __init__(self, connector: Connector, *args: Any,
                 config: dict[str, Any] | None = None, ask: dict[str, str] | None = None,
                 **kwargs: Any) -> None:
        """``config``: the connection parameter values known already; ``ask``: those of the
        connector's parameters the person gives here (name → value so far), as fields
        ``param_<name>`` before the secret's."""
        super().__init__(*args, **kwargs)
        self.connector = connector
        self.config = dict(config or {})
        keep = entered_secrets.fields_of(connector)
        for name in list(self.fields):
            if name not in keep:
                del self.fields[name]
        self.asked = [param for param in connector.params if param.name in (ask or {})]
        for param in self.asked:
            field: forms.Field = (
                forms.ChoiceField(choices=[(choice, choice) for choice in param.choices])
                if param.choices else forms.CharField(max_length=MAX_SECRET_LENGTH))
            field.label, field.help_text = param.label, param.help
            field.initial = (ask or {})[param.name]
            self.fields[PARAM_PREFIX + param.name] = field
        self.order_fields([PARAM_PREFIX + param.name for param in self.asked])

    @sensitive_variables()
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.asked:
            given = {param.name: cleaned.get(PARAM_PREFIX + param.name, "")
                     for param in self.asked}
            self.config, errors = self.connector.connection_values({**self.config, **given})
            for name, error in errors.items():
                self.add_error(PARAM_PREFIX + name if name in given else None, error)
        if self.errors:
            return cleaned
        problem = entered_secrets.check(self.connector, self.secret_values(), self.config)
        if problem:
            raise ValidationError(_("Not stored: %(problem)s") % {"problem": problem},
                                  code="refused")
        return cleaned

    @sensitive_variables()
    def secret_values(self) -> dict[str, str]:
        return {name: self.cleaned_data.get(name, "")
                for name in entered_secrets.fields_of(self.connector)}
