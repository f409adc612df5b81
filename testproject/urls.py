from pathlib import Path

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.templatetags.static import static
from django.views.generic import RedirectView, TemplateView

RECIPES = Path(__file__).resolve().parent.parent / "docs" / "providers.md"


def provider_recipes(request: HttpRequest) -> HttpResponse:
    """docs/providers.md as text: the connector form's "provider recipes" link."""
    return HttpResponse(RECIPES.read_text(encoding="utf-8"),
                        content_type="text/plain; charset=utf-8")


urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("docs/providers.md", provider_recipes, name="provider_recipes"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("oauth/", include("alloy_oauth.urls")),
    path("provider/", include("testproject.provider.urls")),
]
