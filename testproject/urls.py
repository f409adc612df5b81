from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.templatetags.static import static
from django.views.generic import RedirectView, TemplateView

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("oauth/", include("alloy_oauth.urls")),
    path("provider/", include("testproject.provider.urls")),
]
