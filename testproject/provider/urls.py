from django.contrib.auth.views import LoginView
from django.urls import include, path
from oauth2_provider.views import AuthorizationView

from . import views

urlpatterns = [
    path("login/", LoginView.as_view(template_name="provider/login.html"), name="provider-login"),
    # The provider's consent page sends visitors who are not signed in to its own login page.
    path("o/authorize/", AuthorizationView.as_view(login_url="/provider/login/"),
         name="provider-authorize"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("api/me/", views.MeView.as_view(), name="provider-me"),
    path("api/key/", views.ApiKeyView.as_view(), name="provider-api-key"),
    path("api/basic/", views.BasicView.as_view(), name="provider-basic"),
    # The same server per tenant (see views.TENANTS): the account is in the URL.
    path("t/<slug:tenant>/o/authorize/", views.TenantAuthorizationView.as_view(),
         name="provider-tenant-authorize"),
    path("t/<slug:tenant>/o/token/", views.TenantTokenView.as_view(),
         name="provider-tenant-token"),
    path("t/<slug:tenant>/o/revoke_token/", views.TenantRevokeTokenView.as_view(),
         name="provider-tenant-revoke"),
    path("t/<slug:tenant>/api/me/", views.TenantMeView.as_view(), name="provider-tenant-me"),
]
