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
]
