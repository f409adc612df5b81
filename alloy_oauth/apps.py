from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AlloyOAuthConfig(AppConfig):
    name = "alloy_oauth"
    verbose_name = _("OAuth connectors")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks

        checks.register()
