"""A form field for JSON typed by staff (a connector's extra parameters) that refuses, as a
field error, every value the parser or a database would fail on."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput, JSONString
from django.utils.translation import gettext_lazy


#: Limits of what a JSON field of the form accepts: far beyond any connector's extra
#: parameters, and small enough that the parser never recurses deeply nor works long.
MAX_JSON_LENGTH = 10_000  # characters
MAX_JSON_DEPTH = 10  # nested objects and lists


class _NotFinite(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 overflows to inf
        raise _NotFinite(text)
    return value


def _no_constant(name: str) -> float:
    raise _NotFinite(name)  # NaN, Infinity, -Infinity: Python's extensions to JSON


def _nesting_depth(text: str) -> int:
    """How deeply the objects and lists of JSON ``text`` nest, counted without parsing it
    (Python's parser recurses once per level: 100,000 ``[`` raise RecursionError)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _strings(value: Any) -> Iterator[str]:
    """Every string of a parsed JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _storable(text: str) -> bool:
    """Whether every database can store ``text``: PostgreSQL refuses NUL in JSON, and no
    database driver can encode an unpaired surrogate (``"\\ud800"``) as UTF-8."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class BoundedJSONField(forms.JSONField):
    """``forms.JSONField`` that makes a field error of every value the parser or a database
    would fail on, where ``forms.JSONField`` answers 500: more than :data:`MAX_JSON_LENGTH`
    characters or :data:`MAX_JSON_DEPTH` levels (checked before parsing), NaN and infinite
    numbers (PostgreSQL's ``jsonb`` and SQLite's JSON check refuse them), integers beyond
    Python's digit limit, NUL characters and unpaired surrogates.
    """

    default_error_messages = {
        "too_long": gettext_lazy(
            "Enter at most %(max)d characters of JSON (this is %(length)d)."),
        "too_deep": gettext_lazy("Nest objects and lists at most %(max)d levels deep."),
        "not_finite": gettext_lazy(
            "Numbers must be finite: NaN, Infinity and numbers too large for a float (such as "
            "1e999) are not JSON."),
        "unstorable": gettext_lazy(
            "Text may not contain NUL characters (\\u0000) or unpaired surrogates "
            "(\\ud800–\\udfff)."),
    }

    def to_python(self, value: Any) -> Any:
        if (self.disabled or value in self.empty_values or not isinstance(value, str)
                or isinstance(value, JSONString)):
            return super().to_python(value)
        if len(value) > MAX_JSON_LENGTH:
            raise ValidationError(self.error_messages["too_long"], code="too_long",
                                  params={"max": MAX_JSON_LENGTH, "length": len(value)})
        if _nesting_depth(value) > MAX_JSON_DEPTH:
            raise ValidationError(self.error_messages["too_deep"], code="too_deep",
                                  params={"max": MAX_JSON_DEPTH})
        try:
            converted = json.loads(value, cls=self.decoder, parse_float=_finite_float,
                                   parse_constant=_no_constant)
        except _NotFinite:
            raise ValidationError(self.error_messages["not_finite"], code="not_finite")
        except ValueError:  # JSONDecodeError, or an integer of more digits than Python reads
            raise ValidationError(self.error_messages["invalid"], code="invalid",
                                  params={"value": value})
        if not all(_storable(text) for text in _strings(converted)):
            raise ValidationError(self.error_messages["unstorable"], code="unstorable")
        return JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        # The form shown again with its errors parses what was typed once more.
        try:
            self.to_python(data)
        except ValidationError:
            return InvalidJSONInput(data)
        return super().bound_data(data, initial)
