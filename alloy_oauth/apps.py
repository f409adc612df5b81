from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AlloyOAuthConfig(AppConfig):
    name = "alloy_oauth"
    verbose_name = _("OAuth connectors")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        import logging

        from . import auth_types, checks, credential_methods, keys, tasks
        from .webhooks import events

        for name in auth_types.URL_LOGGERS:  # keys sent as query parameters stay out of logs
            logging.getLogger(name).addFilter(auth_types.QUERY_SECRET_FILTER)

        checks.register()
        events.connect_receivers(enqueue=tasks.enqueue_webhook_delivery)
        #: What Credential's token methods call (see alloy_oauth.models.credential.credential_methods).
        self.credential_methods = credential_methods

        def keys_changed(setting: str, **kwargs: object) -> None:
            if setting in ("FERNET_KEYS", "SECRET_KEY", "FERNET_USE_HKDF"):
                keys.reload_keys()

        setting_changed.connect(keys_changed, weak=False, dispatch_uid="alloy_oauth.keys")
