"""The placeholder syntax: URL templates split where their slots are, the names a template
uses, and the account label (a text template filled with the same names)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.utils.translation import gettext as _

from .params import NAME, Param, ParameterError

#: The placeholder of a metadata value: ``{metadata.key}``.
METADATA_PREFIX = "metadata."
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_ORIGIN_PLACEHOLDER = re.compile(r"\{metadata\.([A-Za-z_][A-Za-z0-9_]{0,63})\}(?=[/?]|$)")


def has_placeholders(template: str) -> bool:
    return "{" in template or "}" in template


@dataclass(frozen=True)
class Template:
    """A URL template split where its slots are. ``origin`` is the metadata key standing for
    the whole origin, if any; otherwise ``scheme``, ``userinfo``, ``host`` and ``port`` are
    the template's own."""

    origin: str | None
    scheme: str
    userinfo: str
    host: str
    port: str
    path: str
    query: str
    fragment: str

    def names(self) -> list[tuple[str, str]]:
        """Every placeholder with its slot: ``(name, "origin" | "host" | "path" | "query")``."""
        found = [(METADATA_PREFIX + self.origin, "origin")] if self.origin else []
        for slot, text in (("host", self.host), ("path", self.path), ("query", self.query)):
            found += [(name, slot) for name in PLACEHOLDER.findall(text)]
        return found


def parse(template: str) -> Template:
    """Split ``template``; raise :class:`ParameterError` for a placeholder out of place."""
    origin = None
    text = template
    if template.startswith("{"):
        match = _ORIGIN_PLACEHOLDER.match(template)
        if match is None:
            raise ParameterError(_(
                "Only a {metadata.…} placeholder may stand for the whole origin, at the very "
                "start of the API base URL and followed by / or the end."))
        origin = match.group(1)
        text = "https://origin.invalid" + template[match.end():]
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ParameterError(_("This is not a valid URL.")) from None
    userinfo, _at, hostport = parts.netloc.rpartition("@")
    host, port = hostport, ""
    if ":" in hostport and not hostport.endswith("]"):
        host, port = hostport.rsplit(":", 1)
    if has_placeholders(parts.scheme) or has_placeholders(userinfo) or has_placeholders(port):
        raise ParameterError(_("A placeholder may not stand in the scheme, user name, password "
                               "or port."))
    if has_placeholders(parts.fragment):
        raise ParameterError(_("A placeholder may not stand in the fragment."))
    for pair in parts.query.split("&"):
        if has_placeholders(pair.partition("=")[0]):
            raise ParameterError(_("A placeholder may stand in a query parameter's value, not "
                                   "in its name."))
    parsed = Template(origin, parts.scheme, userinfo, host, port, parts.path, parts.query,
                       parts.fragment)
    for slot_text in (parsed.host, parsed.path, parsed.query):
        leftover = PLACEHOLDER.sub("", slot_text)
        if has_placeholders(leftover):
            raise ParameterError(_("A { or } does not belong to a placeholder."))
        for name in PLACEHOLDER.findall(slot_text):
            key = name.removeprefix(METADATA_PREFIX)
            if not NAME.fullmatch(key):
                raise ParameterError(_("{%(name)s} is not a placeholder: write {name} or "
                                       "{metadata.key}.") % {"name": name})
    if "[" in parsed.host and has_placeholders(parsed.host):
        raise ParameterError(_("A placeholder may not stand in an IP address."))
    return parsed


def placeholders(template: str) -> list[str]:
    """The names a template uses: parameter names, and ``metadata.key`` for metadata.
    Raises :class:`ParameterError` for a malformed template."""
    if not has_placeholders(template):
        return []
    return [name for name, _slot in parse(template).names()]


def label(template: str, config: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    """``account_label`` filled in: ``{name}`` with the connection parameter, ``{metadata.key}``
    with the metadata; a missing value is left empty. Text, not a URL: templates escape it."""
    if not template:
        return ""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith(METADATA_PREFIX):
            found = metadata.get(name.removeprefix(METADATA_PREFIX))
        else:
            found = config.get(name)
        return "" if found is None or isinstance(found, (dict, list)) else str(found)

    return PLACEHOLDER.sub(value, template).strip()


def label_problem(template: str, params: Sequence[Param],
                  metadata_keys: Iterable[str]) -> str | None:
    """What is wrong with an ``account_label`` (``None``: nothing): every placeholder must
    name a connection parameter or a metadata key."""
    leftover = PLACEHOLDER.sub("", template)
    if has_placeholders(leftover):
        return _("A { or } does not belong to a placeholder.")
    names = {param.name for param in params}
    keys = set(metadata_keys)
    for name in PLACEHOLDER.findall(template):
        if name.startswith(METADATA_PREFIX):
            if name.removeprefix(METADATA_PREFIX) not in keys:
                return _("{%(name)s} is not a metadata field or callback parameter of this "
                         "connector.") % {"name": name}
        elif name not in names:
            return _("{%(name)s} is not a declared connection parameter.") % {"name": name}
    return None
