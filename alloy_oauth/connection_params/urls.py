"""Connector URLs for one connection: checking the templates the operator wrote, and building
each account's URLs so that no value leaves its slot.

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

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from django.utils.translation import gettext as _

from .params import Param, ParameterError, checked_values
from .templates import METADATA_PREFIX, PLACEHOLDER, Template, has_placeholders, parse

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
        parsed = parse(template)
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
        parsed = parse(template)
        # (The fixed-tail rule is template_problem's business, not this one's.)
        every_name = {name for name, _slot in parsed.names()}
        return _fill(parsed, every_name, {}, {}, provider_host=None, sample=True)
    except ParameterError:
        return template


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
    parsed = parse(template)
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


def _fill(parsed: Template, choice_names: set[str], values: Mapping[str, str | None],
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
    query = PLACEHOLDER.sub(lambda m: quote(value_of(m.group(1), "query"), safe=""),
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
    pieces = PLACEHOLDER.split(template)
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
        names = PLACEHOLDER.findall(segment)
        for name in names:
            if not _PATH_VALUE.fullmatch(value_of(name, "path")):
                raise ParameterError(_("The value of %(name)s cannot be part of a URL path "
                                       "(letters, digits and . _ ~ - only).") % {"name": name},
                                     name=name)
        filled = PLACEHOLDER.sub(lambda m: value_of(m.group(1), "path"), segment)
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
