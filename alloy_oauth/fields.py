"""Model fields: Fernet-encrypted text and JSON that survive a lost key.

The values are encrypted by django-fernet-fields-v2 (``FERNET_KEYS``: the first key
encrypts, all of them decrypt). A value that no configured key can decrypt (the key it was
written with has been dropped) loads as :data:`UNDECRYPTABLE` instead of raising, so list
pages, the sweep and the engine keep working and can say what is wrong; writing it back is
refused, so the ciphertext is never replaced by nothing.
"""

from __future__ import annotations

import json
from typing import Any

import fernet_fields
from cryptography.fernet import InvalidToken
from django.core.serializers.json import DjangoJSONEncoder


class Undecryptable(str):
    """A stored value that no key of ``FERNET_KEYS`` can decrypt. Empty, and falsy."""

    def __repr__(self) -> str:
        return "<undecryptable>"


UNDECRYPTABLE = Undecryptable("")


def is_undecryptable(value: Any) -> bool:
    return isinstance(value, Undecryptable)


class EncryptedTextField(fernet_fields.EncryptedTextField):
    """``fernet_fields.EncryptedTextField`` that loads an undecryptable value as
    :data:`UNDECRYPTABLE` and refuses to save it."""

    def from_db_value(self, value: Any, expression: Any, connection: Any, *args: Any) -> Any:
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
