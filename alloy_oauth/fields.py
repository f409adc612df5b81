"""Model fields."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from fernet_fields import EncryptedTextField


class EncryptedJSONField(EncryptedTextField):
    """A JSON value stored as Fernet-encrypted text (``FERNET_KEYS``, like every secret here)."""

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True)

    def to_python(self, value: Any) -> Any:
        # The database (after decryption), forms and fixtures hand over JSON text; model code
        # hands over the value itself.
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def value_to_string(self, obj: Any) -> str:
        return json.dumps(self.value_from_object(obj), cls=DjangoJSONEncoder, sort_keys=True)
