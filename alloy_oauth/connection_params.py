"""Connection parameters and metadata: connector URLs that depend on the connection.

A connector's URLs may name *connection parameters*, values collected before the
authorization starts (``https://{shop}.myshopify.com/admin/oauth/authorize``), and its API
base URL may also name *metadata*, values the provider returned when the account was
connected (``{metadata.instance_url}/services/data/v62.0``). This module parses those
templates, checks values, builds the URLs and picks the metadata out of a token response; the
flow, the refresh engine, the revocation and the API session call it, and the protocol layer
only ever receives finished URLs. It knows no model: it works on the connector's JSON.

Parameter values come from end users (and metadata from providers), so a value can never
reach beyond its own slot, whatever its parameter's pattern allows:

- in the host, a value is DNS labels (letters, digits, hyphens, dots), and the host keeps the
  fixed tail the operator wrote: after its last placeholder, a dot and at least two labels
  (``{shop}.myshopify.com``), unless every placeholder of the host is a parameter with a list
  of choices (``accounts.zoho.{region}``): then the operator wrote every host it can become;
- in the path, a value is one segment of unreserved characters (never ``/``, ``.`` or ``..``);
- in the query, a value is percent-encoded, so it stays the value of its own parameter;
- nothing may stand in the scheme, the user info, the port, a query parameter's name or the
  fragment;
- a metadata value may stand for the whole origin at the very start of the API base URL
  (Salesforce's ``instance_url``): it must then be an http(s) origin and nothing more, whose
  host lies within the domain of the connector's token URL (:func:`within_domain_of`).

Each parameter value must also match its parameter's pattern in full, or be one of its
choices. Every URL built is parsed again and must have the scheme, port and host it was built
with.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

#: What a parameter or metadata key may be called (it appears as ``{name}`` in URLs).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: The placeholder of a metadata value: ``{metadata.key}``.
METADATA_PREFIX = "metadata."
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_ORIGIN_PLACEHOLDER = re.compile(r"\{metadata\.([A-Za-z_][A-Za-z0-9_]{0,63})\}(?=[/?]|$)")
#: Names the authorize URL uses itself: no parameter may be called so.
RESERVED_NAMES = frozenset({
    "next", "popup", "flow", "ticket", "link", "credential", "csrfmiddlewaretoken", "metadata",
})
#: Longest parameter value accepted (a DNS name has at most 253 characters).
MAX_VALUE_LENGTH = 255
#: Longest metadata value kept (longer ones are left out: metadata is for identifiers).
MAX_METADATA_LENGTH = 500
#: Deepest dotted path into a token response.
MAX_PATH_DEPTH = 10

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_VALUE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
#: What follows the last placeholder of a host: a dot and at least two labels.
_FIXED_TAIL = re.compile(rf"(?:\.{_LABEL}){{2,}}\.?")
#: RFC 3986's unreserved characters: a path value stays one segment.
_PATH_VALUE = re.compile(r"[A-Za-z0-9._~-]+")
_PORT = re.compile(r"[0-9]{0,5}")
#: Sample values that fill a template to check its shape.
_SAMPLE = {"host": "example.com", "path": "example", "query": "example",
           "origin": "https://example.com"}


class ParameterError(ValueError):
    """A template, a value or metadata that cannot make a URL. ``name`` is the parameter (or
    ``metadata.key``) at fault, when one is; ``str()`` is a sentence for people that never
    quotes the value."""

    def __init__(self, message: str, *, name: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.name = name


class InvalidValues(ParameterError):
    """Values for a connector's parameters that cannot be used: ``errors`` maps each
    parameter's name to what is wrong with its value."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(" ".join(self.errors.values()), name=next(iter(self.errors), ""))


# --- what the operator declared -------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One entry of ``Connector.connection_params``."""

    name: str
    label: str
    help: str = ""
    pattern: str | None = None
    choices: tuple[str, ...] = ()

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this parameter (``None``: nothing)."""
        if not isinstance(value, str) or not value:
            return _("Enter %(label)s.") % {"label": self.label}
        if len(value) > MAX_VALUE_LENGTH or not value.isprintable() or not value.isascii():
            return _("%(label)s is not valid.") % {"label": self.label}
        if self.choices:
            if value not in self.choices:
                return _("Choose one of the values offered for %(label)s.") % {
                    "label": self.label}
        elif self.pattern is None or re.fullmatch(self.pattern, value) is None:
            return _("%(label)s is not in the expected form.") % {"label": self.label}
        return None


def declared(value: Any) -> list[Param]:
    """The parameters of a connector's ``connection_params`` JSON. An entry that is not what
    :func:`spec_problems` accepts is left out (its placeholders then count as undeclared, and
    nothing is built with them): the form refuses such entries, code may not."""
    params = []
    for item in value if isinstance(value, list) else ():
        if not spec_problems([item]):
            params.append(Param(
                name=item["name"], label=item.get("label") or item["name"],
                help=item.get("help") or "", pattern=item.get("pattern"),
                choices=tuple(item.get("choices") or ()),
            ))
    return params


def spec_problems(value: Any) -> list[str]:
    """What is wrong with a ``connection_params`` JSON value: a list of objects, each with a
    ``name`` (an identifier, not one the authorize URL uses itself, not repeated), an optional
    ``label`` and ``help`` (text), and either a ``pattern`` (a regular expression the whole
    value must match) or ``choices`` (a list of strings)."""
    if not isinstance(value, list):
        return [_('Enter a JSON list of objects, e.g. [{"name": "shop", "label": "Shop", '
                  '"pattern": "[a-z0-9][a-z0-9-]*"}].')]
    problems: list[str] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, dict):
            problems.append(_("Each parameter is a JSON object."))
            continue
        name = item.get("name")
        label = name if isinstance(name, str) else "?"
        unknown = sorted(set(item) - {"name", "label", "help", "pattern", "choices"})
        if unknown:
            problems.append(_("Parameter %(name)s: unknown keys %(keys)s.") % {
                "name": label, "keys": ", ".join(map(str, unknown))})
        if not isinstance(name, str) or not NAME.fullmatch(name):
            problems.append(_("Each parameter needs a name made of letters, digits and _, "
                              "not starting with a digit."))
        elif name.lower() in RESERVED_NAMES:
            problems.append(_("Parameter %(name)s: the authorize URL uses this name itself.")
                            % {"name": name})
        elif name in seen:
            problems.append(_("Parameter %(name)s is declared twice.") % {"name": name})
        else:
            seen.add(name)
        for key in ("label", "help"):
            if key in item and not isinstance(item[key], str):
                problems.append(_("Parameter %(name)s: %(key)s is text.") % {
                    "name": label, "key": key})
        if ("pattern" in item) == ("choices" in item):
            problems.append(_("Parameter %(name)s needs either a pattern or choices.") % {
                "name": label})
        elif "pattern" in item:
            problem = pattern_problem(item["pattern"])
            if problem:
                problems.append(_("Parameter %(name)s: %(problem)s") % {
                    "name": label, "problem": problem})
        else:
            choices = item["choices"]
            if (not isinstance(choices, list) or not choices
                    or not all(isinstance(c, str) and c and len(c) <= MAX_VALUE_LENGTH
                               and c.isprintable() and c.isascii() for c in choices)
                    or len(set(choices)) != len(choices)):
                problems.append(_("Parameter %(name)s: choices is a list of different, "
                                  "non-empty strings.") % {"name": label})
    return problems


def pattern_problem(pattern: Any) -> str | None:
    """Why ``pattern`` cannot be a parameter's pattern (``None``: it can). It is matched
    against the whole value (``re.fullmatch``), so it needs no anchors. Repetition inside
    repetition, or alternatives inside repetition (``(a+)+``, ``(a|ab)*``), is refused: such
    a pattern can take exponential time on a value an end user chose."""
    if not isinstance(pattern, str) or not pattern or len(pattern) > 500:
        return _("the pattern is a regular expression of 1 to 500 characters.")
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return _("the pattern is not a valid regular expression (%(error)s).") % {
            "error": getattr(exc, "msg", type(exc).__name__)}
    if _nested_repetition(pattern):
        return _("the pattern repeats a repetition or alternatives (such as (a+)+ or "
                 "(a|b)*), which can take exponential time; use a character class, such as "
                 "[a-z0-9.-]+.")
    return None


def _nested_repetition(pattern: str) -> bool:
    try:
        from re import _parser  # type: ignore[attr-defined]  # (Python 3.11+)
    except ImportError:  # pragma: no cover - a Python without it checks nothing here
        return False

    repeats = {_parser.MAX_REPEAT, _parser.MIN_REPEAT,
               getattr(_parser, "POSSESSIVE_REPEAT", _parser.MAX_REPEAT)}

    def walk(items: Any, inside: bool) -> bool:
        for op, av in items:
            if op in repeats:
                low, high, body = av
                repeated = high is _parser.MAXREPEAT or high > 1
                if repeated and inside:
                    return True
                if walk(body, inside or repeated):
                    return True
            elif op is _parser.BRANCH:
                if inside:
                    return True
                if any(walk(branch, inside) for branch in av[1]):
                    return True
            elif op is _parser.SUBPATTERN:
                if walk(av[-1], inside):
                    return True
            elif op in (_parser.ASSERT, _parser.ASSERT_NOT):
                if walk(av[1], inside):
                    return True
        return False

    return walk(_parser.parse(pattern), False)


# --- templates ------------------------------------------------------------------------------


def has_placeholders(template: str) -> bool:
    return "{" in template or "}" in template


@dataclass(frozen=True)
class _Template:
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
            found += [(name, slot) for name in _PLACEHOLDER.findall(text)]
        return found


def _parse(template: str) -> _Template:
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
    parsed = _Template(origin, parts.scheme, userinfo, host, port, parts.path, parts.query,
                       parts.fragment)
    for slot_text in (parsed.host, parsed.path, parsed.query):
        leftover = _PLACEHOLDER.sub("", slot_text)
        if has_placeholders(leftover):
            raise ParameterError(_("A { or } does not belong to a placeholder."))
        for name in _PLACEHOLDER.findall(slot_text):
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
    return [name for name, _slot in _parse(template).names()]


def template_problem(
    template: str, params: Sequence[Param], metadata_keys: Iterable[str] = (), *,
    allow_metadata: bool = False,
) -> str | None:
    """What is wrong with a URL template the operator wrote (``None``: nothing): a
    placeholder out of place or undeclared, metadata outside the API base URL, a host that
    would not keep a fixed tail, a choice that does not fit its slot, or a URL that is not
    one even with sample values filled in."""
    if not has_placeholders(template):
        return None
    try:
        parsed = _parse(template)
    except ParameterError as exc:
        return exc.message
    by_name = {param.name: param for param in params}
    metadata_keys = set(metadata_keys)
    for name, _slot in parsed.names():
        if name.startswith(METADATA_PREFIX):
            if not allow_metadata:
                return _("{%(name)s}: metadata is known only once an account is connected, so "
                         "it may appear in the API base URL only.") % {"name": name}
            if name.removeprefix(METADATA_PREFIX) not in metadata_keys:
                return _("{%(name)s} is not a metadata field or callback parameter of this "
                         "connector.") % {"name": name}
        elif name not in by_name:
            return _("{%(name)s} is not a declared connection parameter.") % {"name": name}
    samples = {param.name: param.choices[0] if param.choices else None for param in params}
    try:
        # Every choice in every slot it is used in, the other placeholders filled with samples.
        choice_names = {param.name for param in params if param.choices}
        url = _fill(parsed, choice_names, samples, {}, provider_host=None, sample=True)
        for param in params:
            for choice in param.choices[1:]:
                _fill(parsed, choice_names, {**samples, param.name: choice}, {},
                      provider_host=None, sample=True)
    except ParameterError as exc:
        return exc.message
    from django.core.validators import URLValidator
    from django.core.exceptions import ValidationError

    try:
        URLValidator()(url)
    except ValidationError:
        return _("With values filled in, this is not a valid URL.")
    return None


def sample_url(template: str) -> str:
    """``template`` with sample values in its slots (``template`` itself if it has none, or
    if it is malformed): for checks of its scheme and host."""
    if not has_placeholders(template):
        return template
    try:
        parsed = _parse(template)
        # (The fixed-tail rule is template_problem's business, not this one's.)
        every_name = {name for name, _slot in parsed.names()}
        return _fill(parsed, every_name, {}, {}, provider_host=None, sample=True)
    except ParameterError:
        return template


# --- values ---------------------------------------------------------------------------------


def checked_values(params: Sequence[Param], raw: Mapping[str, Any],
                   names: Iterable[str] | None = None) -> dict[str, str]:
    """The values of ``params`` (of those named in ``names``, by default all) in ``raw``,
    each matching its pattern or one of its choices; raises :class:`InvalidValues` naming
    each one missing or wrong. Surrounding spaces are dropped."""
    values, errors = read_values(params, raw, names)
    if errors:
        raise InvalidValues(errors)
    return values


def read_values(params: Sequence[Param], raw: Mapping[str, Any],
                names: Iterable[str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """``(values, errors)``: the good values of ``params`` in ``raw``, and what is wrong with
    the others (missing ones included)."""
    wanted = set(names) if names is not None else None
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for param in params:
        if wanted is not None and param.name not in wanted:
            continue
        value = raw.get(param.name)
        value = value.strip() if isinstance(value, str) else value
        problem = param.problem(value)
        if problem:
            errors[param.name] = problem
        else:
            values[param.name] = value
    return values, errors


def build_url(
    template: str,
    params: Sequence[Param],
    config: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    *,
    provider_host: str | None = None,
    sample_metadata: bool = False,
) -> str:
    """``template`` with the connection's values in their slots: the parameters' (each must
    match its pattern or choices) and, for ``{metadata.key}``, the metadata's. An origin slot
    needs ``provider_host``, the host of the connector's token URL. Raises
    :class:`ParameterError` when a value is missing, wrong or does not fit its slot.
    ``sample_metadata``: metadata are not known yet (before the authorization), only the
    parameters are checked; sample metadata fill their slots."""
    if not has_placeholders(template):
        return template
    parsed = _parse(template)
    used = [name for name, _slot in parsed.names() if not name.startswith(METADATA_PREFIX)]
    declared_names = {param.name for param in params}
    for name in used:
        if name not in declared_names:
            raise ParameterError(_("{%(name)s} is not a declared connection parameter.")
                                 % {"name": name}, name=name)
    values = checked_values(params, config, used)
    choice_names = {param.name for param in params if param.choices}
    return _fill(parsed, choice_names, values, metadata or {}, provider_host=provider_host,
                 sample=sample_metadata)


def _fill(parsed: _Template, choice_names: set[str], values: Mapping[str, str | None],
          metadata: Mapping[str, Any], *, provider_host: str | None, sample: bool = False,
          ) -> str:
    """The URL of ``parsed`` with ``values`` (``choice_names``: the parameters whose values
    are the operator's choices); ``sample`` fills what has no value with a sample."""

    def value_of(name: str, slot: str) -> str:
        if name.startswith(METADATA_PREFIX):
            value = metadata.get(name.removeprefix(METADATA_PREFIX))
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                value = None  # (a float or a flag names no host, path or query value)
            value = None if value is None else str(value)
        else:
            value = values.get(name)
        if value is None and sample:
            value = _SAMPLE[slot]
        if value is None or value == "":
            what = name.removeprefix(METADATA_PREFIX) if name.startswith(METADATA_PREFIX) else name
            raise ParameterError(
                _("The provider did not send %(name)s when this account was connected.")
                % {"name": what} if name.startswith(METADATA_PREFIX)
                else _("No value for %(name)s.") % {"name": name}, name=name)
        return value

    if parsed.origin is not None:
        name = METADATA_PREFIX + parsed.origin
        scheme, netloc = _origin(value_of(name, "origin"), name, provider_host, sample=sample)
        host = urlsplit(f"{scheme}://{netloc}").hostname or ""
        port = urlsplit(f"{scheme}://{netloc}").port
    else:
        scheme = parsed.scheme
        host = _fill_host(parsed.host, value_of, choice_names)
        netloc = (parsed.userinfo + "@" if parsed.userinfo else "") + host + (
            ":" + parsed.port if parsed.port else "")
        port = int(parsed.port) if parsed.port and _PORT.fullmatch(parsed.port) else None
    path = _fill_path(parsed.path, value_of)
    query = _PLACEHOLDER.sub(lambda m: quote(value_of(m.group(1), "query"), safe=""),
                             parsed.query)
    url = urlunsplit((scheme, netloc, path, query, parsed.fragment))
    # Built, then read again as the protocol layer and requests will read it: the scheme,
    # the port and the host must be the ones built.
    try:
        again = urlsplit(url)
        same = (again.scheme == scheme
                and (again.hostname or "") == host.strip("[]").lower()
                and again.port == port)
    except ValueError:
        same = False
    if not same or not url.isprintable() or " " in url:
        raise ParameterError(_("A value does not fit its place in the URL."))
    return url


def _fill_host(template: str, value_of: Any, choice_names: set[str]) -> str:
    pieces = _PLACEHOLDER.split(template)
    names = pieces[1::2]
    if not names:
        return template
    for name in names:
        if name not in choice_names and not _FIXED_TAIL.fullmatch(pieces[-1]):
            raise ParameterError(_(
                "In the host, a placeholder must be followed by a fixed domain of at least two "
                "labels (as in {shop}.myshopify.com), unless all its parameters are lists of "
                "choices."), name=name)
    built = []
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            built.append(piece)
            continue
        value = value_of(piece, "host")
        if not _HOST_VALUE.fullmatch(value) or len(value) > 253:
            raise ParameterError(_("The value of %(name)s cannot be part of a host name (letters, "
                                   "digits, hyphens and dots only).") % {"name": piece},
                                 name=piece)
        built.append(value)
    host = "".join(built)
    if len(host) > 253 or not _HOSTNAME.fullmatch(host) or _is_ip_address(host):
        raise ParameterError(_("With its values, the URL's host is not a valid host name."),
                             name=names[0])
    return host


def _fill_path(template: str, value_of: Any) -> str:
    segments = []
    for segment in template.split("/"):
        if not has_placeholders(segment):
            segments.append(segment)
            continue
        names = _PLACEHOLDER.findall(segment)
        for name in names:
            if not _PATH_VALUE.fullmatch(value_of(name, "path")):
                raise ParameterError(_("The value of %(name)s cannot be part of a URL path "
                                       "(letters, digits and . _ ~ - only).") % {"name": name},
                                     name=name)
        filled = _PLACEHOLDER.sub(lambda m: value_of(m.group(1), "path"), segment)
        if filled in (".", ".."):
            raise ParameterError(_("The value of %(name)s cannot be . or ..") % {
                "name": names[0]}, name=names[0])
        segments.append(filled)
    return "/".join(segments)


def _origin(value: str, name: str, provider_host: str | None, *,
            sample: bool) -> tuple[str, str]:
    """``(scheme, netloc)`` of a metadata value standing for the whole origin."""
    problem = _("The provider's %(name)s is not an http(s) origin (such as "
                "https://api.example.com).") % {"name": name.removeprefix(METADATA_PREFIX)}
    if not value.isprintable() or " " in value:
        raise ParameterError(problem, name=name)
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is no port
    except ValueError:
        raise ParameterError(problem, name=name) from None
    if (parts.scheme not in ("http", "https") or not host or parts.username is not None
            or parts.password is not None or parts.path not in ("", "/") or parts.query
            or parts.fragment or "[" in parts.netloc
            or not (_HOSTNAME.fullmatch(host) or _is_ip_address(host))):
        raise ParameterError(problem, name=name)
    if not sample and (provider_host is None or not within_domain_of(host, provider_host)):
        raise ParameterError(_(
            "The provider's %(name)s names a host outside the domain of the connector's token "
            "URL.") % {"name": name.removeprefix(METADATA_PREFIX)}, name=name)
    return parts.scheme, parts.netloc


def within_domain_of(host: str, provider_host: str) -> bool:
    """Whether ``host`` lies within the domain of ``provider_host`` (the token URL's host):
    that host without its first label when it has three labels or more
    (``login.salesforce.com`` → ``salesforce.com``, ``accounts.zoho.com.au`` →
    ``zoho.com.au``), else the host itself; an IP address or ``localhost`` only matches
    itself. Without a public suffix list this is a rule of thumb: a token URL at
    ``example.co.uk`` would admit all of ``co.uk``."""
    host, provider_host = host.lower().rstrip("."), provider_host.lower().rstrip(".")
    if host == provider_host:
        return True
    if _is_ip_address(host) or _is_ip_address(provider_host):
        return False
    labels = provider_host.split(".")
    domain = ".".join(labels[1:]) if len(labels) >= 3 else provider_host
    return host == domain or host.endswith("." + domain)


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return bool(re.fullmatch(r"[0-9.]+", host))  # (inet_aton's forms: 127.1, 2130706433)
    return True


# --- metadata -------------------------------------------------------------------------------


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

    return _PLACEHOLDER.sub(value, template).strip()


def label_problem(template: str, params: Sequence[Param],
                  metadata_keys: Iterable[str]) -> str | None:
    """What is wrong with an ``account_label`` (``None``: nothing): every placeholder must
    name a connection parameter or a metadata key."""
    leftover = _PLACEHOLDER.sub("", template)
    if has_placeholders(leftover):
        return _("A { or } does not belong to a placeholder.")
    names = {param.name for param in params}
    keys = set(metadata_keys)
    for name in _PLACEHOLDER.findall(template):
        if name.startswith(METADATA_PREFIX):
            if name.removeprefix(METADATA_PREFIX) not in keys:
                return _("{%(name)s} is not a metadata field or callback parameter of this "
                         "connector.") % {"name": name}
        elif name not in names:
            return _("{%(name)s} is not a declared connection parameter.") % {"name": name}
    return None
