"""Connectors (operator configuration), credentials (end users' tokens), pending authorizations,
the audit trail, and webhook endpoints with their deliveries. Every secret is stored with
``fernet_fields.EncryptedTextField``. One module per model family:

- :mod:`.connector`: :class:`Connector`;
- :mod:`.credential`: :class:`Credential` and its audit trail, :class:`CredentialEvent`;
- :mod:`.authorization_request`: :class:`AuthorizationRequest`;
- :mod:`.webhooks`: :class:`WebhookEndpoint`, :class:`WebhookDelivery`;
- :mod:`.site_urls`: this site's absolute URLs (the callback URL).

Everything is importable from here (``from alloy_oauth.models import Connector``).
"""

from .authorization_request import AuthorizationRequest
from .connector import Connector
from .credential import Credential, CredentialEvent, cascade_without_nulling
from .site_urls import absolute_url, callback_url
from .webhooks import WebhookDelivery, WebhookEndpoint

# Public (docs/api.md). AuthorizationRequest and the functions above are the app's own: its
# views, admin and headless links import them from here, and migration 0002 names
# ``alloy_oauth.models.cascade_without_nulling``.
__all__ = ["Connector", "Credential", "CredentialEvent", "WebhookEndpoint", "WebhookDelivery"]
