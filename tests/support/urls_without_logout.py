"""tests.support.urls without a URL named "logout": the account bar shows the name only."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="admin/login.html"),
         name="login"),
    path("oauth/", include("alloy_oauth.urls")),
]
