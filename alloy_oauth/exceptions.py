"""Exceptions host code may catch when it asks a credential for a token."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["CredentialError", "NoAccessToken", "ReauthorizationRequired", "TokenRefreshFailed"]

if TYPE_CHECKING:
    from .models import Credential


class CredentialError(Exception):
    """Base class: the credential cannot give a usable access token right now.

    ``str()`` is a sentence that names the connector and never contains a secret.
    """

    def __init__(self, credential: Credential, message: str) -> None:
        super().__init__(message)
        self.credential = credential


class ReauthorizationRequired(CredentialError):
    """The grant is gone (refresh token rejected, revoked, or never issued): the end user
    must connect again (``alloy_oauth:authorize``)."""


class TokenRefreshFailed(CredentialError):
    """The token has (nearly) expired and could not be refreshed now; it may work later
    (provider down, rate limited) or need the operator (``credential.status == "error"``)."""


class NoAccessToken(TypeError):
    """``get_access_token()`` was asked of a credential whose type has no single token to
    hand out: an HTTP Basic credential (a user name and password). Send its requests with
    ``credential.session()``, or read ``credential.username`` and ``credential.password``.

    A mistake in the calling code, not a state of the credential: it is no
    :class:`CredentialError`, so code that catches those to ask the end user to reconnect
    does not hide it. ``str()`` names the connector and never contains a secret."""

    def __init__(self, credential: Credential, message: str) -> None:
        super().__init__(message)
        self.credential = credential
