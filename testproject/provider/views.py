import base64
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import Http404, HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.models import get_access_token_model
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauth2_provider.views import AuthorizationView, RevokeTokenView, TokenView


class MeView(View):
    """A protected API endpoint: who the bearer token belongs to.

    An invalid or expired token gets 401 with ``WWW-Authenticate: Bearer
    error="invalid_token"`` (RFC 6750 §3.1), as most APIs answer.
    """

    def get(self, request: HttpRequest) -> JsonResponse:
        valid, oauth_request = get_oauthlib_core().verify_request(request, scopes=[])
        if not valid:
            response = JsonResponse({"error": "invalid_token"}, status=401)
            response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        if oauth_request.user is None:  # a client credentials token: the client itself
            return JsonResponse({"client_id": oauth_request.client.client_id})
        return JsonResponse({"username": oauth_request.user.get_username()})


class ApiKeyView(View):
    """A protected API endpoint for API keys: the ``PROVIDER_API_KEY`` setting in the
    ``X-Api-Key`` header or the ``api_key`` query parameter; 401 otherwise."""

    def get(self, request: HttpRequest) -> JsonResponse:
        given = request.headers.get("X-Api-Key") or request.GET.get("api_key", "")
        if not given or not hmac.compare_digest(given, settings.PROVIDER_API_KEY):
            return JsonResponse({"error": "invalid_api_key"}, status=401)
        return JsonResponse({"key": "valid"})


class BasicView(View):
    """A protected API endpoint for HTTP Basic: the provider's users and passwords."""

    def get(self, request: HttpRequest) -> JsonResponse:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            username = password = ""
        user = (authenticate(request, username=username, password=password)
                if scheme.lower() == "basic" else None)
        if user is None:
            response = JsonResponse({"error": "invalid_credentials"}, status=401)
            response["WWW-Authenticate"] = 'Basic realm="provider"'
            return response
        return JsonResponse({"username": user.get_username()})


# --- tenants: URLs that depend on the connection ---------------------------------------------
#
# The same authorization server under /provider/t/<tenant>/…, as Microsoft's single-tenant
# endpoints, Zoho's data centres or a self-hosted instance put the account in the URL. A tenant
# adds what such providers add: a value in the callback's query (QuickBooks' realmId), fields
# of the token response that API calls need (Salesforce's instance_url, Slack's team.id), a
# field sent only at the code exchange (Slack's authed_user) and the refresh token's lifetime in
# Intuit's spelling (x_refresh_token_expires_in).

#: The tenants that exist; any other answers 404.
TENANTS = {"acme": "Acme Corporation", "globex": "Globex"}
#: The refresh token lifetime the tenants announce (100 days, as Intuit does).
REFRESH_TOKEN_LIFETIME = 100 * 24 * 3600


def realm_of(tenant: str, user: Any) -> str:
    """The id a tenant sends in the callback's query as ``realm`` (QuickBooks' realmId)."""
    return f"{tenant}-realm-{user.pk}"


def _known(tenant: str) -> None:
    if tenant not in TENANTS:
        raise Http404("No such tenant.")


class TenantAuthorizationView(AuthorizationView):
    """The consent page of one tenant: sends the browser back with ``realm`` added to the
    query, beside ``code`` and ``state``."""

    login_url = "/provider/login/"

    def dispatch(self, request: HttpRequest, *args: Any, tenant: str = "", **kwargs: Any):
        _known(tenant)
        response = super().dispatch(request, *args, **kwargs)
        location = response.get("Location", "") if response.status_code in (301, 302) else ""
        if request.user.is_authenticated and "code=" in urlsplit(location).query:
            response["Location"] = location + "&" + urlencode(
                {"realm": realm_of(tenant, request.user)})
        return response


@method_decorator(csrf_exempt, name="dispatch")
class TenantTokenView(TokenView):
    """The token endpoint of one tenant: the usual answer, plus the tenant's fields."""

    def post(self, request: HttpRequest, *args: Any, tenant: str = "", **kwargs: Any):
        _known(tenant)
        response = super().post(request, *args, **kwargs)
        if response.status_code != 200:
            return response
        body = json.loads(response.content)
        body.update(
            instance_url=request.build_absolute_uri("/").rstrip("/"),
            tenant={"id": tenant, "name": TENANTS[tenant]},
            x_refresh_token_expires_in=REFRESH_TOKEN_LIFETIME,
        )
        if request.POST.get("grant_type") == "authorization_code":
            token = get_access_token_model().objects.get(
                token_checksum=hashlib.sha256(body["access_token"].encode()).hexdigest())
            body["authed_user"] = {"id": f"U{token.user_id}"}
        response.content = json.dumps(body)
        return response


@method_decorator(csrf_exempt, name="dispatch")
class TenantRevokeTokenView(RevokeTokenView):
    def post(self, request: HttpRequest, *args: Any, tenant: str = "", **kwargs: Any):
        _known(tenant)
        return super().post(request, *args, **kwargs)


class TenantMeView(MeView):
    """The tenant's API: who the token belongs to, and which tenant answered."""

    def get(self, request: HttpRequest, tenant: str = "") -> JsonResponse:
        _known(tenant)
        response = super().get(request)
        if response.status_code == 200:
            response.content = json.dumps({**json.loads(response.content), "tenant": tenant})
        return response
