"""``credential.session()``: a ``requests.Session`` that always carries a fresh token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests
from django.views.decorators.debug import sensitive_variables

from . import refresh

if TYPE_CHECKING:
    from .models import Credential


#: Requests sent for one call at most: the first, the one after the forced refresh, and one
#: more when the token was rotated again by another process in between.
MAX_REQUESTS = 3


class CredentialSession(requests.Session):
    """Sends ``Authorization: <token_type> <access token>`` on every request.

    - relative URLs are resolved against the connector's ``api_base_url`` (its path kept:
      ``"users"`` on ``https://api.example.com/v2`` is ``https://api.example.com/v2/users``);
    - the token is refreshed before a request when it expires within ``min_valid`` seconds;
    - a 401 answer forces one refresh (unless another process already refreshed, or the
      credential is in error or backing off after failures) and the request is sent once
      more; if that is refused too while other processes rotated the token yet again
      (providers that revoke the old access token at each refresh), it goes once more with
      the newest token, at most :data:`MAX_REQUESTS` requests in all and never another
      forced refresh;
    - a credential that needs reconnecting raises ``ReauthorizationRequired``, one that cannot
      be refreshed now ``TokenRefreshFailed``.

    requests drops the Authorization header itself when a redirect leaves the host.
    """

    def __init__(self, credential: Credential, *, min_valid: int = 60) -> None:
        super().__init__()
        self.credential = credential
        self.min_valid = min_valid
        self.base_url = credential.connector.api_base_url

    @sensitive_variables()
    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        url = self.absolute_url(url.decode() if isinstance(url, bytes) else url)
        headers = dict(kwargs.pop("headers", None) or {})
        token = self.credential.get_access_token(min_valid=self.min_valid)
        version = self.credential.version
        response = self._send(method, url, token, headers, args, kwargs)
        if response.status_code != 401:
            return response
        self.credential.refresh_from_db()
        if self.credential.version == version:
            # Refreshed now unless someone has since, or the credential is in error or
            # backing off after failures (then the refusal stands: no hammering).
            refresh.refresh_for_caller(self.credential, if_version=version, wait=True)
            self.credential.refresh_from_db()
        for _ in range(MAX_REQUESTS - 1):
            fresh = self.credential.get_access_token(min_valid=0)
            if fresh == token:  # nobody has a newer token: the refusal stands
                return response
            response.close()
            token = fresh
            response = self._send(method, url, token, headers, args, kwargs)
            if response.status_code != 401:
                return response
            self.credential.refresh_from_db()
        return response

    @sensitive_variables()
    def _send(self, method: str, url: str, token: str, headers: dict[str, str], args: Any,
              kwargs: Any) -> requests.Response:
        headers["Authorization"] = f"{self.credential.token_type} {token}"
        return super().request(method, url, *args, headers=headers, **kwargs)

    def absolute_url(self, url: str) -> str:
        if "://" in url or not self.base_url:
            return url
        return self.credential.connector.api_url(url)
