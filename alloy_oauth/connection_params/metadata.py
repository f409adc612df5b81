"""Metadata: values the provider returned when an account was connected (in the token
response, or as callback parameters), picked out as the connector says and kept in clear, so
never a secret."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from django.utils.translation import gettext as _

from .params import NAME

logger = logging.getLogger(__name__)

#: Longest metadata value kept (longer ones are left out: metadata is for identifiers).
MAX_METADATA_LENGTH = 500
#: Deepest dotted path into a token response.
MAX_PATH_DEPTH = 10


def metadata_spec_problems(fields: Any, callback_params: Any) -> dict[str, list[str]]:
    """What is wrong with ``metadata_fields`` (a JSON object of ``{"key": "dotted.path"}``)
    and ``callback_params`` (a JSON list of names), by field name. A key is an identifier;
    a path may not end in a field that holds a secret (``access_token``, ``…_token``,
    ``…secret…``, ``…password…``): metadata is stored and shown in clear."""
    problems: dict[str, list[str]] = {"metadata_fields": [], "callback_params": []}
    if not isinstance(fields, dict):
        problems["metadata_fields"].append(_(
            'Enter a JSON object, e.g. {"instance_url": "instance_url", "team_id": "team.id"}.'))
        fields = {}
    for key, path in fields.items():
        if not NAME.fullmatch(key):
            problems["metadata_fields"].append(_(
                "%(key)s: a key is made of letters, digits and _, not starting with a digit.")
                % {"key": key})
        segments = path.split(".") if isinstance(path, str) else []
        if (not segments or len(segments) > MAX_PATH_DEPTH or not all(segments)
                or len(path) > 200):
            problems["metadata_fields"].append(_(
                "%(key)s: enter a dotted path into the token response, such as team.id.")
                % {"key": key})
        elif is_secret_field(segments[-1]):
            problems["metadata_fields"].append(_(
                "%(key)s: %(field)s holds a secret; metadata is stored and shown in clear.")
                % {"key": key, "field": segments[-1]})
    names = callback_params
    if not isinstance(names, list):
        problems["callback_params"].append(_('Enter a JSON list of names, e.g. ["realmId"].'))
        names = []
    for name in names:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            problems["callback_params"].append(_(
                "Each name is made of letters, digits and _, not starting with a digit."))
        elif name in PROTOCOL_CALLBACK_PARAMS:
            problems["callback_params"].append(_(
                "%(name)s is a parameter of the OAuth response itself.") % {"name": name})
        elif name in fields:
            problems["callback_params"].append(_(
                "%(name)s is also a metadata field: give it another name.") % {"name": name})
    if len(set(n for n in names if isinstance(n, str))) != len(names):
        problems["callback_params"].append(_("A name is listed twice."))
    return {field: found for field, found in problems.items() if found}


#: The callback's own parameters, never kept as metadata (``code`` and ``state`` are secrets).
PROTOCOL_CALLBACK_PARAMS = frozenset({
    "code", "state", "error", "error_description", "error_uri", "iss", "session_state",
})


def is_secret_field(name: str) -> bool:
    name = name.lower()
    return (name.endswith("token") or "secret" in name or "password" in name
            or name in ("code", "code_verifier", "assertion"))


def token_metadata(fields: Any, response: Mapping[str, Any], *,
                   secrets: Iterable[str | None] = ()) -> dict[str, Any]:
    """The metadata a token response carries: for each ``{"key": "dotted.path"}`` of
    ``fields``, the value at that path if it is a short text, a number or a flag. A path may
    go into a JWT (``id_token.email``: the claims of an ID token received from the token
    endpoint itself, which OpenID Connect Core §3.1.3.7 lets a client trust on the strength
    of TLS). Objects, lists and a value equal to one of ``secrets`` are never kept."""
    found: dict[str, Any] = {}
    secret_values = {value for value in secrets if value}
    for key, path in (fields.items() if isinstance(fields, dict) else ()):
        if not isinstance(path, str) or not NAME.fullmatch(str(key)):
            continue
        value = _at_path(response, path.split(".")[:MAX_PATH_DEPTH])
        value = metadata_value(value)
        if value is None:
            continue
        if isinstance(value, str) and value in secret_values:
            logger.warning("Metadata field %s holds a token: not kept.", key)
            continue
        found[key] = value
    return found


def callback_metadata(names: Any, query: Mapping[str, Any]) -> dict[str, Any]:
    """The callback query parameters named in ``names`` (``callback_params``) that came, each
    sent once and a short text. ``query`` is a ``QueryDict`` or a mapping of lists."""
    found: dict[str, Any] = {}
    for name in names if isinstance(names, list) else ():
        if not isinstance(name, str) or name in PROTOCOL_CALLBACK_PARAMS:
            continue
        values = query.getlist(name) if hasattr(query, "getlist") else query.get(name) or []
        if len(values) == 1 and (value := metadata_value(values[0])) is not None:
            found[name] = value
    return found


def metadata_value(value: Any) -> Any:
    """``value`` if it can be kept as metadata (short printable text, a finite number, a
    flag), else ``None``."""
    if isinstance(value, bool) or (isinstance(value, int) and abs(value) < 2**63):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and value and len(value) <= MAX_METADATA_LENGTH \
            and value.isprintable():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # an unpaired surrogate: no database stores it
            return None
        return value
    return None


def _at_path(value: Any, segments: list[str]) -> Any:
    for segment in segments:
        if isinstance(value, str) and value.count(".") == 2:
            value = _jwt_claims(value)
        if not isinstance(value, dict) or segment not in value:
            return None
        value = value[segment]
    return value


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT (its payload, not verified: see :func:`token_metadata`)."""
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        return None
    return claims if isinstance(claims, dict) else None
