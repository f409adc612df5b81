from django.http import HttpRequest, JsonResponse
from oauth2_provider.views.generic import ProtectedResourceView


class MeView(ProtectedResourceView):
    """A protected API endpoint: who the bearer token belongs to."""

    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"username": request.resource_owner.get_username()})
