"""The client credentials grant (RFC 6749 §4.4): the client asks for a token on its own
behalf, with its own authentication, and no end user. There is no refresh token (§4.4.3):
"refreshing" such a token is asking for a new one, which the refresh engine does through
this function on the same schedule, lease and batches as refreshes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.views.decorators.debug import sensitive_variables

from .client import ClientConfig, token_request
from .errors import ErrorKind, OAuthError
from .tokens import TokenResponse


@sensitive_variables()
def client_credentials_token(
    client: ClientConfig,
    *,
    scopes: list[str],
    scope_separator: str = " ",
    extra_params: Mapping[str, Any] | None = None,
) -> TokenResponse:
    """A new access token for the client itself (RFC 6749 §4.4.2), with the client's
    authentication method, the scopes joined by the connector's separator and its extra
    token parameters (an ``audience``, a ``resource``).

    A "dead grant" answer (``invalid_grant``) has no end user who could reconnect: it is the
    operator's to fix, like ``invalid_client``, so it comes back as ``ErrorKind.CLIENT``."""
    params = {"grant_type": "client_credentials"}
    if scopes:
        params["scope"] = scope_separator.join(scopes)
    try:
        return token_request(client, params, extra_params)
    except OAuthError as error:
        if error.kind is not ErrorKind.REAUTHORIZE:
            raise
        raise OAuthError(ErrorKind.CLIENT, error.message, error=error.error,
                         description=error.description, status=error.status) from None
