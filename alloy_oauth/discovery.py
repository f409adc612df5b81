"""Fill from issuer: a connector's settings read from the provider's discovery document
(RFC 8414 authorization server metadata, or OpenID Connect Discovery 1.0).

The operator gives the issuer, or any URL of the provider; the documents are looked for, in
this order, at

1. ``https://host/.well-known/oauth-authorization-server/path`` (RFC 8414 §3: the well-known
   part goes between the host and the issuer's path);
2. ``https://host/path/.well-known/openid-configuration`` (OpenID Connect Discovery §4);
3. ``https://host/path/.well-known/oauth-authorization-server`` (the issuer with the
   well-known part appended, where servers mounted under a prefix, django-oauth-toolkit's
   among them, answer too);
4. ``https://host/.well-known/openid-configuration/path`` (RFC 8414 §5's form for OpenID
   Connect);

first for the URL as given, then, when it has a path, for its origin alone (the operator may
have pasted the authorization URL). A document counts only if it is a JSON object whose
``issuer`` is the issuer its URL was made from (RFC 8414 §3.3; a trailing ``/`` aside): another
issuer's endpoints are never filled in.

Every request goes through :func:`alloy_oauth.protocol.send_request` (bounded, https unless
loopback or DEBUG, no redirect followed), and only to a host that the webhook URL policy
allows (public addresses, or ``WEBHOOK_ALLOWED_NETWORKS``): staff cannot make the server
fetch documents from its own network. The rule is applied when connecting too, to the
address connected to, so a host name that resolves to another address the second time (DNS
rebinding) gains nothing; and such a request is not sent through a proxy. The first
transport failure (a timeout, a refused connection) ends the search: the host is not asked
again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.utils.translation import gettext as _

from . import protocol
from .conf import app_settings
from .webhooks.delivery import address_problem, url_problem


OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
#: Longest URL the form takes (the Connector's URL fields).
MAX_URL_LENGTH = 500
#: The document's endpoints and the connector fields they fill.
ENDPOINTS = {
    "authorization_endpoint": "auth_url",
    "token_endpoint": "token_url",
    "revocation_endpoint": "revocation_url",
}


class DiscoveryError(Exception):
    """No usable discovery document; ``str()`` says why, for the operator."""


@dataclass(frozen=True)
class Discovery:
    """What a discovery document says, as connector form values."""

    #: Where the document was found.
    document_url: str
    #: Connector field → value, for the fields the document decides.
    fields: dict[str, Any]
    #: Sentences for the operator: what was decided and what the document left open.
    notes: list[str] = field(default_factory=list)


def discover(url: str) -> Discovery:
    """Find and read the discovery document for ``url`` (an issuer, or any URL of the
    provider). Raises :class:`DiscoveryError` with a message for the operator."""
    issuers = _issuers(url)
    problem = url_problem(issuers[0])
    if problem:
        raise DiscoveryError(_("This URL %(problem)s.") % {"problem": problem})
    tried: list[str] = []
    for issuer in issuers:
        for document_url in _document_urls(issuer):
            document, outcome = _fetch(document_url)
            if document is None:
                tried.append(outcome)
                continue
            found = str(document.get("issuer", ""))
            if found.rstrip("/") != issuer.rstrip("/"):
                tried.append(_("%(url)s names the issuer “%(found)s”, not %(issuer)s: "
                               "its endpoints were not used") % {
                    "url": document_url, "found": found[:200], "issuer": issuer})
                continue
            return Discovery(document_url, *_settings(document))
    raise DiscoveryError(_("No discovery document was found for %(url)s. %(tried)s.") % {
        "url": url, "tried": "; ".join(tried)})


def _issuers(url: str) -> list[str]:
    """The issuers to look for: ``url`` without query, fragment or trailing ``/`` (or, for the
    URL of a well-known document, the issuer it stands for), then its origin."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise DiscoveryError(_("Enter a URL of at most %(max)d characters.") % {
            "max": MAX_URL_LENGTH})
    problem = protocol.insecure_url_problem(url, allow_http=settings.DEBUG)
    if problem:
        raise DiscoveryError(_("This URL %(problem)s.") % {"problem": problem})
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    for well_known in (OAUTH_WELL_KNOWN, OIDC_WELL_KNOWN):
        before, marker, after = path.partition(well_known)
        if marker:  # the document's own URL: the issuer it was made from
            path = before + after
    origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return [origin + path, origin] if path else [origin]


def _document_urls(issuer: str) -> list[str]:
    parts = urlsplit(issuer)
    origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    path = parts.path
    urls = [origin + OAUTH_WELL_KNOWN + path, issuer + OIDC_WELL_KNOWN]
    if path:
        urls += [issuer + OAUTH_WELL_KNOWN, origin + OIDC_WELL_KNOWN + path]
    return urls


def _fetch(url: str) -> tuple[dict[str, Any] | None, str]:
    """The JSON object at ``url``, or ``None`` and what was found instead. A transport
    failure ends the whole search (:class:`DiscoveryError`)."""
    try:
        answer = protocol.send_request(
            "GET", url, timeout=app_settings.HTTP_TIMEOUT, allow_http=settings.DEBUG,
            what="discovery", headers={"Accept": "application/json"},
            address_policy=address_problem)
    except protocol.OAuthError as exc:
        raise DiscoveryError(_("%(url)s: %(problem)s") % {"url": url, "problem": exc.message})
    if answer.status != 200:
        return None, _("%(url)s answered HTTP %(status)d") % {"url": url, "status": answer.status}
    if answer.body is None:
        return None, _("%(url)s answered with more than %(size)d bytes") % {
            "url": url, "size": protocol.MAX_RESPONSE_BYTES}
    try:
        document = json.loads(answer.body)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        return None, _("%(url)s answered with something other than a JSON object "
                       "(%(type)s)") % {"url": url,
                                        "type": answer.content_type[:100] or _("no type")}
    return document, ""


def _settings(document: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The connector form values and notes a discovery document makes."""
    fields: dict[str, Any] = {"issuer": str(document["issuer"])}
    notes: list[str] = []
    for key, name in ENDPOINTS.items():
        value = document.get(key)
        if value is None:
            continue
        problem = _endpoint_problem(value)
        if problem:
            raise DiscoveryError(_("The document's %(key)s %(problem)s.") % {
                "key": key, "problem": problem})
        fields[name] = value
    for key in ("authorization_endpoint", "token_endpoint"):
        if key not in document:
            raise DiscoveryError(_("The document names no %(key)s.") % {"key": key})
    if "revocation_url" not in fields:
        notes.append(_("No revocation endpoint is listed: the revocation URL was left as it "
                       "was."))

    # RFC 9207: only a provider that says it sends iss may have callbacks without it refused.
    sends_iss = document.get("authorization_response_iss_parameter_supported") is True
    fields["require_issuer"] = sends_iss
    notes.append(_("The provider sends iss with its authorization responses (RFC 9207): "
                   "callbacks without it are refused.") if sends_iss else _(
                   "The provider does not say it sends iss (RFC 9207): callbacks are not "
                   "required to carry it."))

    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list):
        fields["use_pkce"] = "S256" in methods
        if not fields["use_pkce"]:
            notes.append(_("PKCE with S256 is not listed (code_challenge_methods_supported: "
                           "%(methods)s): PKCE was turned off.") % {
                "methods": ", ".join(map(str, methods)) or "—"})
    else:
        notes.append(_("The document does not say whether PKCE is supported: the PKCE setting "
                       "was left as it was."))

    # RFC 8414 §2: when the list is left out, client_secret_basic is the default.
    auth_methods = document.get("token_endpoint_auth_methods_supported", [
        protocol.CLIENT_SECRET_BASIC])
    usable = [method for method in (protocol.CLIENT_SECRET_BASIC, protocol.CLIENT_SECRET_POST)
              if isinstance(auth_methods, list) and method in auth_methods]
    if usable:
        fields["client_auth_method"] = usable[0]
    else:
        notes.append(_("The token endpoint takes neither client_secret_basic nor "
                       "client_secret_post (it lists %(methods)s): client authentication was "
                       "left as it was.") % {"methods": ", ".join(map(str, auth_methods))
                                             if isinstance(auth_methods, list) else "—"})
    scopes = document.get("scopes_supported")
    if isinstance(scopes, list) and scopes:
        notes.append(_("Scopes the provider lists: %(scopes)s.") % {
            "scopes": " ".join(map(str, scopes[:50]))})
    return fields, notes


def _endpoint_problem(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        return _("is not a URL of at most %(max)d characters") % {"max": MAX_URL_LENGTH}
    if "{" in value or "}" in value:  # it would read as a connection parameter
        return _("contains { or }")
    return protocol.insecure_url_problem(value, allow_http=settings.DEBUG)
