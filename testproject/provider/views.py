from django.http import HttpRequest, JsonResponse
from django.views import View
from oauth2_provider.oauth2_backends import get_oauthlib_core


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
        return JsonResponse({"username": oauth_request.user.get_username()})
