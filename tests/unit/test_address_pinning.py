"""DNS rebinding: the webhook URL policy's address rule is applied when connecting, to the
address actually connected to, for webhook deliveries and Fill from issuer.

The servers are real https servers on 127.0.0.1 (a certificate made here for the names
below); a fake resolver answers those names, first with a public address (what the check
before the request sees), then with 127.0.0.1 (what a second, unchecked resolution would
connect to)."""

from __future__ import annotations

import datetime
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from alloy_oauth import discovery, protocol
from alloy_oauth.models import Credential, WebhookDelivery, WebhookEndpoint
from alloy_oauth.protocol import connections
from alloy_oauth.signals import credential_revoked, send
from alloy_oauth.webhooks import delivery, events

from tests.support.document_server import DocumentServer
from tests.support.local_server import LocalServer

SECRET = "whsec-test-0123456789abcdefghijkl"
OAUTH = "/.well-known/oauth-authorization-server"
PUBLIC = "93.184.216.34"
#: The names the certificate is for; any other name fails TLS verification.
CERTIFIED = ["hooks.example", "rebind.example"]
LOOPBACK_REFUSED = {"WEBHOOK_ALLOWED_NETWORKS": [], "HTTP_TIMEOUT": 2}
LOOPBACK_ALLOWED = {"WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"], "HTTP_TIMEOUT": 2}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for :data:`CERTIFIED` and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alloy-oauth test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in CERTIFIED]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def trusted(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The transport trusts the test certificate (as REQUESTS_CA_BUNDLE would make it)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    connections.environment.cache_clear()
    yield
    connections.environment.cache_clear()


def tls(server: Any, certificate: tuple[Path, Path]) -> Any:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    return server


def https_url(server: Any, host: str) -> str:
    return f"https://{host}:{server.httpd.server_address[1]}"


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Host name → its answers, one per lookup, the last one from then on: an address, or a
    tuple of addresses; other names (and IP addresses) resolve as usual."""
    answers: dict[str, list[Any]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in answers:
            return real(host, port, *args, **kwargs)
        queue = answers[host]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))
                for address in (answer if isinstance(answer, tuple) else (answer,))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture
def documents(certificate: tuple[Path, Path], trusted: None) -> Iterator[DocumentServer]:
    with tls(DocumentServer(), certificate) as server:
        yield server


@pytest.fixture
def receiver(certificate: tuple[Path, Path], trusted: None) -> Iterator[LocalServer]:
    with tls(LocalServer(secret=SECRET), certificate) as server:
        yield server


def metadata(issuer: str) -> dict[str, str]:
    return {"issuer": issuer, "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token"}


def pending_delivery(connector: Any, url: str) -> WebhookDelivery:
    """One pending delivery of a revocation to ``url``."""
    endpoint = WebhookEndpoint.objects.create(url=url + "/hook", secret=SECRET,
                                              events=[events.REVOKED])
    send(credential_revoked, Credential.objects.create(connector=connector, external_id="alice",
                                                       access_token="access-alice-secret"))
    return WebhookDelivery.objects.get(endpoint=endpoint)


# --- rebinding is refused -------------------------------------------------------------------


def test_discovery_refuses_a_name_that_rebinds_to_loopback(documents, resolver, settings):
    settings.ALLOY_OAUTH = LOOPBACK_REFUSED
    resolver["rebind.example"] = [PUBLIC, "127.0.0.1"]
    url = https_url(documents, "rebind.example")
    documents.routes[OAUTH] = metadata(url)
    with pytest.raises(discovery.DiscoveryError) as refused:
        discovery.discover(url)
    assert "was not connected to: its host points to 127.0.0.1, which is not a public " \
        "address" in str(refused.value)
    assert documents.requested == []


def test_a_webhook_to_a_name_that_rebinds_to_loopback_is_not_sent(connector, receiver, resolver,
                                                                   settings):
    settings.ALLOY_OAUTH = LOOPBACK_REFUSED
    resolver["rebind.example"] = [PUBLIC, "127.0.0.1"]
    pending = pending_delivery(connector, https_url(receiver, "rebind.example"))
    assert delivery.attempt(pending.pk).result == "retry"
    row = WebhookDelivery.objects.get(pk=pending.pk)
    assert "points to 127.0.0.1, which is not a public address" in row.last_error
    assert SECRET not in row.last_error
    assert receiver.requests == []


def test_one_refused_address_refuses_the_host(documents, resolver, settings):
    settings.ALLOY_OAUTH = LOOPBACK_ALLOWED
    resolver["hooks.example"] = [("127.0.0.1", "10.0.0.1")]
    url = https_url(documents, "hooks.example") + OAUTH
    with pytest.raises(protocol.OAuthError, match="points to 10.0.0.1"):
        protocol.send_request("GET", url, timeout=2, allow_http=False,
                              address_policy=delivery.address_problem)
    assert documents.requested == []


def test_an_address_that_refuses_the_connection_is_followed_by_the_next(documents, resolver,
                                                                         settings):
    settings.ALLOY_OAUTH = LOOPBACK_ALLOWED
    resolver["hooks.example"] = [("127.0.0.2", "127.0.0.1")]  # nothing listens on 127.0.0.2
    url = https_url(documents, "hooks.example") + OAUTH
    documents.routes[OAUTH] = {"issuer": "x"}
    assert protocol.send_request("GET", url, timeout=2, allow_http=False,
                                 address_policy=delivery.address_problem).status == 200


def test_a_kept_alive_connection_to_a_refused_address_is_not_reused(documents, resolver,
                                                                      settings):
    """A connection opened by a request without the policy (a provider call to the same
    host) is checked again before a request with the policy uses it."""
    documents.httpd.RequestHandlerClass.protocol_version = "HTTP/1.1"  # keep-alive
    resolver["hooks.example"] = ["127.0.0.1"]
    url = https_url(documents, "hooks.example") + OAUTH
    documents.routes[OAUTH] = {"issuer": "x"}
    assert protocol.send_request("GET", url, timeout=2, allow_http=False).status == 200
    settings.ALLOY_OAUTH = LOOPBACK_REFUSED
    with pytest.raises(protocol.OAuthError, match="not a public address"):
        protocol.send_request("GET", url, timeout=2, allow_http=False,
                              address_policy=delivery.address_problem)
    assert documents.requested == [OAUTH]


def test_a_request_with_the_policy_is_not_sent_through_a_proxy(monkeypatch, settings):
    """A proxy would resolve the name itself: the check would cover nothing."""
    settings.ALLOY_OAUTH = LOOPBACK_REFUSED
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    connections.environment.cache_clear()
    try:
        with pytest.raises(protocol.OAuthError, match="through a proxy.*NO_PROXY"):
            protocol.send_request("GET", "https://hooks.example/", timeout=2, allow_http=False,
                                  what="webhook", address_policy=delivery.address_problem)
    finally:
        connections.environment.cache_clear()


# --- what is allowed still works --------------------------------------------------------------


def test_discovery_of_an_allowed_host(documents, resolver, settings):
    settings.ALLOY_OAUTH = LOOPBACK_ALLOWED
    resolver["hooks.example"] = ["127.0.0.1"]
    url = https_url(documents, "hooks.example")
    documents.routes[OAUTH] = metadata(url)
    assert discovery.discover(url).fields["token_url"] == f"{url}/token"


def test_a_webhook_to_an_allowed_host_is_delivered(connector, receiver, resolver, settings):
    settings.ALLOY_OAUTH = LOOPBACK_ALLOWED
    resolver["hooks.example"] = ["127.0.0.1"]
    pending = pending_delivery(connector, https_url(receiver, "hooks.example"))
    assert delivery.attempt(pending.pk).result == "succeeded"
    [request] = receiver.requests
    assert request["verified"] is True


def test_tls_still_verifies_the_host_name_not_the_address(documents, resolver, settings):
    """The socket goes to the approved address; the certificate must still name the host."""
    settings.ALLOY_OAUTH = LOOPBACK_ALLOWED
    resolver["uncertified.example"] = ["127.0.0.1"]
    url = https_url(documents, "uncertified.example")
    documents.routes[OAUTH] = metadata(url)
    with pytest.raises(discovery.DiscoveryError, match="uncertified.example broke before"):
        discovery.discover(url)
    assert documents.requested == []


def test_the_deadline_still_ends_the_request(documents, resolver, settings):
    settings.ALLOY_OAUTH = {**LOOPBACK_ALLOWED, "HTTP_TIMEOUT": 1}
    resolver["hooks.example"] = ["127.0.0.1"]
    url = https_url(documents, "hooks.example")
    documents.routes[OAUTH] = ("sleep", 3)
    started = time.monotonic()
    with pytest.raises(discovery.DiscoveryError, match="did not answer within 1 seconds"):
        discovery.discover(url)
    assert time.monotonic() - started < 2
