"""``credential.session()``: a ``requests_oauthlib.OAuth2Session`` whose token is always the
credential's, fresh, kept by alloy_oauth's refresh engine."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from django.views.decorators.debug import sensitive_variables
from requests_oauthlib import OAuth2Session

from . import auth_types
from .exceptions import CredentialError
from .outcomes import Result
from .refresh.on_demand import raise_if_unusable, refresh_for_caller, secret_refused

__all__ = ["CredentialSession"]

if TYPE_CHECKING:
    from .models import Credential


#: Requests sent for one call at most: the first, the one after the forced refresh, and one
#: more when the token was rotated again by another process in between.
MAX_REQUESTS = 3


class CredentialSession(OAuth2Session):
    """An ``OAuth2Session`` (so code written for requests-oauthlib works unchanged: ``get()``,
    ``request()``, ``token``, ``access_token``, ``authorized``, ``register_compliance_hook``)
    whose token is the credential's, kept by the refresh engine:

    - every request carries the token (or the API key, the Basic pair, the bearer token) where
      the connector puts it: by default ``Authorization: <token_type> <access token>``, or
      another header from a template, or a query parameter (:mod:`alloy_oauth.auth_types`);
      an OAuth 2.0 token is refreshed first when it expires within ``min_valid`` seconds, through the engine's lease (never by
      requests-oauthlib's ``auto_refresh_url``/``token_updater``, which would refresh in
      every process at once: providers that rotate refresh tokens revoke the grant when one is
      used twice);
    - relative URLs are resolved against the connector's ``api_base_url`` (its path kept:
      ``"users"`` on ``https://api.example.com/v2`` is ``https://api.example.com/v2/users``),
      with this account's connection parameters and metadata filled in
      (``{metadata.instance_url}/services/data/v62.0``: the Salesforce org it belongs to);
    - for OAuth 2.0, a 401 answer forces one refresh (unless another process already
      refreshed, or the credential is in error or backing off after failures) and the
      request is sent once more; if that is refused too while other processes rotated the
      token yet again (providers that revoke the old access token at each refresh), it goes
      once more with the newest token, at most :data:`MAX_REQUESTS` requests in all and never
      another forced refresh;
    - for an entered secret (API key, Basic, bearer token), a 401 from the API base URL's
      host is returned as it is, and marks the credential ``reauth_required`` (event,
      ``credential_reauth_required``): nothing can renew the secret, a person must enter it
      again;
    - a credential that needs reconnecting raises ``ReauthorizationRequired``, one that cannot
      be refreshed now ``TokenRefreshFailed``;
    - ``token`` never holds the refresh token (only the engine may use it), and cannot be set;
      ``refresh_token()`` refreshes through the engine; ``fetch_token()`` and
      ``authorization_url()`` are alloy_oauth's connect flow's job and raise.

    Unlike ``OAuth2Session.request``, nothing here logs the token (requests-oauthlib logs it
    at DEBUG), and plain http is not refused here (the connector's URLs are checked when the
    operator saves them).

    The secret only goes to the API's host: a request to another host (an absolute URL
    elsewhere, when the connector has an API base URL) is sent without it, and a redirect to
    another host loses the header that carries it and its query parameter, as requests
    itself drops ``Authorization``.
    """

    def __init__(self, credential: Credential, *, min_valid: int = 60) -> None:
        connector = credential.connector
        super().__init__(client_id=connector.client_id, scope=connector.scopes or None)
        self.credential = credential
        self.min_valid = min_valid
        #: The connector's API base URL as written (a template, perhaps): this account's own
        #: is built when a relative URL needs it (:meth:`absolute_url`).
        self.base_url = connector.api_base_url

    # --- requests-oauthlib's token attributes, kept by the engine -----------------------------

    @property
    def token(self) -> dict[str, Any]:
        """The token as requests-oauthlib holds one (``access_token``, ``token_type``,
        ``expires_at``, ``expires_in``, ``scope``), valid for at least ``min_valid`` seconds."""
        if "credential" not in self.__dict__:  # OAuth2Session.__init__ asks before we are set
            return {}
        access_token = self.credential.get_access_token(min_valid=self.min_valid)
        token: dict[str, Any] = {"access_token": access_token,
                                 "token_type": self.credential.token_type,
                                 "scope": self.credential.scope.split()}
        if self.credential.expires_at is not None:
            token["expires_at"] = self.credential.expires_at.timestamp()
            token["expires_in"] = max(0, int(token["expires_at"] - time.time()))
        return token

    @token.setter
    def token(self, value: Any) -> None:
        if "credential" not in self.__dict__ and not value:  # OAuth2Session.__init__: {}
            return
        raise AttributeError("This session's token is the credential's, kept by alloy_oauth: "
                             "it cannot be set (see docs/refresh.md).")

    @property
    def access_token(self) -> str:
        return self.credential.get_access_token(min_valid=self.min_valid)

    @access_token.setter
    def access_token(self, value: Any) -> NoReturn:
        raise AttributeError("This session's token is the credential's, kept by alloy_oauth.")

    @property
    def authorized(self) -> bool:
        """Whether requests can be expected to succeed: the credential gives a token (or a
        Basic pair) now."""
        try:
            return bool(self._token()) or self.credential.connector.auth_type == auth_types.BASIC
        except CredentialError:
            return False

    @sensitive_variables()
    def _token(self) -> str:
        """The access token or API key a request carries, valid for ``min_valid`` seconds.
        A Basic pair is no single token (``get_access_token()`` refuses it): once the
        credential is known usable, :meth:`_send` reads it from the credential."""
        if self.credential.connector.auth_type == auth_types.BASIC:
            raise_if_unusable(self.credential)
            return ""
        return self.credential.get_access_token(min_valid=self.min_valid)

    def refresh_token(self, token_url: str | None = None, *args: Any, **kwargs: Any
                      ) -> dict[str, Any]:
        """Refresh now, through the engine (its lease, the connector's refresh URL and client
        authentication; ``token_url`` and the other arguments are ignored). Raises
        ``TokenRefreshFailed`` or ``ReauthorizationRequired`` when it cannot."""
        outcome = refresh_for_caller(self.credential, force=True, wait=True)
        self.credential.refresh_from_db()
        if outcome.result is not Result.REFRESHED:
            # get_access_token raises the right error, or hands out a token still valid
            # (another process refreshed meanwhile).
            self.credential.get_access_token(min_valid=0)
        return self.token

    def fetch_token(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError(
            "Tokens are obtained through alloy_oauth's connect flow (the connect button, "
            "alloy_oauth:authorize, headless.connect_url), not by this session.")

    def authorization_url(self, *args: Any, **kwargs: Any) -> NoReturn:
        self.fetch_token()

    # --- requests -----------------------------------------------------------------------------

    @sensitive_variables()
    def request(self, method: str, url: str | bytes, data: Any = None, headers: Any = None,
                withhold_token: bool = False, client_id: Any = None, client_secret: Any = None,
                files: Any = None, **kwargs: Any) -> requests.Response:
        url = self.absolute_url(url.decode() if isinstance(url, bytes) else url)
        if withhold_token:
            return requests.Session.request(self, method, url, data=data, headers=headers,
                                            files=files, **kwargs)
        headers = dict(headers or {})
        token = self._token()
        if not self.may_carry_secret(url):
            return requests.Session.request(self, method, url, data=data, headers=headers,
                                            files=files, **kwargs)
        version = self.credential.version
        response = self._send(method, url, token, headers, data, files, kwargs)
        if response.status_code != 401:
            return response
        if self.credential.connector.auth_type not in auth_types.OAUTH_TYPES:
            # Nothing renews an entered secret: the API's own host refusing it means it is
            # dead (a redirect's other host never saw it).
            if self.base_url and self.may_carry_secret(response.url):
                secret_refused(self.credential, version=version,
                               request=f"{method.upper()} {_safe_url(response.url)}")
            return response
        self.credential.refresh_from_db()
        if self.credential.version == version:
            # Refreshed now unless someone has since, or the credential is in error or
            # backing off after failures (then the refusal stands: no hammering).
            refresh_for_caller(self.credential, if_version=version, wait=True)
            self.credential.refresh_from_db()
        for _ in range(MAX_REQUESTS - 1):
            fresh = self.credential.get_access_token(min_valid=0)
            if fresh == token:  # nobody has a newer token: the refusal stands
                return response
            response.close()
            token = fresh
            response = self._send(method, url, token, headers, data, files, kwargs)
            if response.status_code != 401:
                return response
            self.credential.refresh_from_db()
        return response

    @sensitive_variables()
    def _send(self, method: str, url: str, token: str, headers: dict[str, str], data: Any,
              files: Any, kwargs: dict[str, Any]) -> requests.Response:
        credential = self.credential
        headers, params = auth_types.apply(credential.connector.placement, auth_types.Secret(
            token=token, token_type=credential.token_type, api_key=credential.api_key,
            username=credential.username, password=credential.password), headers)
        if params:
            url = _with_query(url, params)
        # requests-oauthlib's hooks for providers that bend the standard, as it runs them.
        for hook in self.compliance_hook["protected_request"]:
            url, headers, data = hook(url, headers, data)
        return requests.Session.request(self, method, url, headers=headers, data=data,
                                        files=files, **kwargs)

    def may_carry_secret(self, url: str) -> bool:
        """Whether a request to ``url`` may carry the secret: when the connector has an API
        base URL, only a request to its host (this account's, its parameters filled in)."""
        if not self.base_url:
            return True
        return auth_types.origin(url) == auth_types.origin(self.credential.url("api_base_url"))

    def rebuild_auth(self, prepared_request: requests.PreparedRequest,
                     response: requests.Response) -> None:
        """On a redirect to another host, drop every header and query parameter that carries
        the secret (requests only drops ``Authorization``)."""
        original_url = response.request.url or ""
        if self.should_strip_auth(original_url, prepared_request.url or ""):
            header_names, param_names = auth_types.secret_names(
                self.credential.connector.placement)
            for name in header_names:
                prepared_request.headers.pop(name, None)
            if param_names:
                prepared_request.url = _without_query(prepared_request.url or "", param_names)
        super().rebuild_auth(prepared_request, response)

    def absolute_url(self, url: str) -> str:
        """``url`` as it is when absolute, else under this account's API base URL (its
        connection parameters and metadata filled in, as ``connection_params`` allows: a
        ``ParameterError`` when they do not make one)."""
        if "://" in url or not self.base_url:
            return url
        return self.credential.api_url(url)


def _safe_url(url: str) -> str:
    """``url`` for a message: no user information, no query, no fragment (any may hold a
    secret)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


@sensitive_variables()
def _with_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` appended (the caller's own query left as it was written)."""
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit(parts._replace(query=query))


def _without_query(url: str, names: set[str]) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    return urlunsplit(parts._replace(query=urlencode(query)))
