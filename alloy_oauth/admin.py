"""Operator UI: connectors (with Validate credential), their end users' credentials, webhook
endpoints and their deliveries, registered here (the module Django's admin discovers); each
page is in a module of its own: ``admin_connectors``, ``admin_credential_pages``,
``admin_webhooks``, and what they share in ``admin_base``.

No page renders a token, a client secret or a webhook secret, whatever the operator's
permissions (see :class:`alloy_oauth.admin_base.SecretsHiddenFromViewers`).
"""

from __future__ import annotations

from django.contrib import admin

from .admin_connectors import ConnectorAdmin
from .admin_credential_pages import CredentialAdmin
from .admin_webhooks import WebhookDeliveryAdmin, WebhookEndpointAdmin
from .models import Connector, Credential, WebhookDelivery, WebhookEndpoint

admin.site.register(Connector, ConnectorAdmin)
admin.site.register(Credential, CredentialAdmin)
admin.site.register(WebhookEndpoint, WebhookEndpointAdmin)
admin.site.register(WebhookDelivery, WebhookDeliveryAdmin)
