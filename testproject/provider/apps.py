from django.apps import AppConfig


class ProviderConfig(AppConfig):
    """A small OAuth 2.0 authorization server (django-oauth-toolkit) that plays the third
    party for the demo and the end-to-end tests."""

    name = "testproject.provider"
    label = "provider"
    verbose_name = "Demo OAuth provider"
