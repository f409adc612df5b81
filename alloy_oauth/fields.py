"""Model fields: Fernet-encrypted text and JSON that survive a lost key, and URLs that may
name connection parameters.

The values are encrypted by django-fernet-fields-v2 (``FERNET_KEYS``: the first key
encrypts, all of them decrypt). A value that no configured key can decrypt (the key it was
written with has been dropped) loads as :data:`UNDECRYPTABLE` instead of raising, so list
pages, the sweep and the engine keep working and can say what is wrong; writing it back is
refused, so the ciphertext is never replaced by nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

import fernet_fields
from cryptography.fernet import InvalidToken
from django import forms
from django.contrib.staticfiles import finders
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from . import connection_params


class Undecryptable(str):
    """A stored value that no key of ``FERNET_KEYS`` can decrypt. Empty, and falsy."""

    def __repr__(self) -> str:
        return "<undecryptable>"


UNDECRYPTABLE = Undecryptable("")


def is_undecryptable(value: Any) -> bool:
    return isinstance(value, Undecryptable)


class EncryptedTextField(fernet_fields.EncryptedTextField):
    """``fernet_fields.EncryptedTextField`` that loads an undecryptable value as
    :data:`UNDECRYPTABLE` and refuses to save it.

    With ``null=True``, an empty value is stored as NULL and loads as ``""``: there is nothing
    secret in it, and every encrypted value costs a decryption per read and a rewrite per key
    rotation (an OAuth credential's API key, user name and password columns are all empty)."""

    def from_db_value(self, value: Any, expression: Any, connection: Any, *args: Any) -> Any:
        if value is None and self.null:
            return ""
        try:
            return super().from_db_value(value, expression, connection, *args)
        except InvalidToken:
            return UNDECRYPTABLE

    def get_db_prep_save(self, value: Any, connection: Any) -> Any:
        if is_undecryptable(value):
            raise ValueError(
                f"{self.model.__name__}.{self.name} could not be decrypted with FERNET_KEYS; "
                "saving it would replace the stored value. Restore the key, or set a new value."
            )
        if value == "" and self.null:
            return None
        return super().get_db_prep_save(value, connection)


class EncryptedJSONField(EncryptedTextField):
    """A JSON value stored as Fernet-encrypted text."""

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True)

    def to_python(self, value: Any) -> Any:
        # The database (after decryption), forms and fixtures hand over JSON text; model code
        # hands over the value itself.
        if isinstance(value, str) and not is_undecryptable(value):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def value_to_string(self, obj: Any) -> str:
        return json.dumps(self.value_from_object(obj), cls=DjangoJSONEncoder, sort_keys=True)


def validate_url_template(value: str) -> None:
    """A URL, or a URL template whose placeholders (``{shop}``, ``{metadata.key}``) stand
    where :mod:`alloy_oauth.connection_params` allows them and that is a URL once they are
    filled in. Whether each placeholder is declared is the connector form's business (it
    sees the other fields)."""
    if connection_params.has_placeholders(value):
        try:
            connection_params.placeholders(value)
        except connection_params.ParameterError as exc:
            raise ValidationError(exc.message, code="invalid_template") from None
        value = connection_params.sample_url(value)
    URLValidator()(value)


class TemplatedURLFormField(forms.URLField):
    """``forms.URLField`` that takes URL templates: a template that starts with its origin
    (``{metadata.instance_url}/…``) is not given a scheme in front."""

    default_validators = [validate_url_template]

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip().startswith("{"):
            return forms.CharField.to_python(self, value)
        return super().to_python(value)


class TemplatedURLField(models.URLField):
    """A connector's URL: a URL, or a template naming connection parameters (and, in the API
    base URL, metadata) that :mod:`alloy_oauth.connection_params` fills in per credential."""

    default_validators = [validate_url_template]

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(**{"form_class": TemplatedURLFormField, **kwargs})


#: A logo given as a static file: a relative path of plain names, an image extension.
STATIC_LOGO_PATH = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*"
                              r"\.(svg|png|webp|gif|jpe?g)")


def validate_logo_url(value: str) -> None:
    """A connector's logo: an https URL, or the path of a static file that exists
    (``alloy_oauth/logos/github.svg``). Shown with ``<img>`` only, never inlined, so an SVG's
    scripts never run on the page. (A path has no scheme, no leading "/" and no "." or ".."
    segment: the regular expression allows none.) Migrations name this function: keep it."""
    if value.startswith("https://"):
        URLValidator(schemes=["https"], message=_("Enter an https URL of an image."))(value)
        return
    if not STATIC_LOGO_PATH.fullmatch(value):
        raise ValidationError(_(
            "Enter an https URL, or the path of a static image such as "
            "alloy_oauth/logos/github.svg (.svg, .png, .webp, .gif or .jpg)."), code="invalid")
    if not finders.find(value):
        raise ValidationError(_("There is no static file %(path)s."), code="missing",
                              params={"path": value})
