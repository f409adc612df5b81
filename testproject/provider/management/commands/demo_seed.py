"""Seed the demo (idempotent): an operator, an end user, the provider's client application
and the connector to it, and an API key connector to its API. Run by testproject/demo.py (make demo)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone

from alloy_oauth.models import Connector

OPERATOR = ("operator", "operator-pw")
END_USER = ("alice", "alice-pw")
CLIENT_ID = "alloy-oauth-demo"


class Command(BaseCommand):
    help = "Create or update the demo's users, provider application and connector."

    def add_arguments(self, parser):
        parser.add_argument("--provider-url", required=True,
                            help="Where the provider is reached, e.g. http://localhost:8000")
        parser.add_argument("--client-secret", required=True)
        parser.add_argument("--lead-time", type=int, default=60)

    def handle(self, *args, provider_url, client_secret, lead_time, **options):
        User = get_user_model()
        operator, _ = User.objects.get_or_create(username=OPERATOR[0])
        operator.is_staff = operator.is_superuser = True
        operator.set_password(OPERATOR[1])
        operator.save()
        # As name=value strings: call_command passes required options as two words, and a
        # generated secret that begins with "-" would then be taken for an option.
        call_command(
            "provider_setup", f"--client-id={CLIENT_ID}", f"--client-secret={client_secret}",
            "--redirect-uri=http://127.0.0.1/oauth/callback/", f"--username={END_USER[0]}",
            f"--password={END_USER[1]}", "--name=alloy_oauth demo", "--no-skip-authorization",
            stdout=self.stdout,
        )
        base = provider_url.rstrip("/") + "/provider"
        Connector.objects.update_or_create(slug="demo-provider", defaults={
            "name": "Demo Provider",
            "auth_url": f"{base}/o/authorize/",
            "token_url": f"{base}/o/token/",
            "revocation_url": f"{base}/o/revoke_token/",
            "api_base_url": f"{base}/api/",
            "test_request_path": "me/",
            "client_id": CLIENT_ID,
            "client_secret": client_secret,
            "scope": "read write",
            "refresh_lead_time": lead_time,
            "is_active": True,
            # Live at once (offered to end users): this configuration is the demo's own
            # provider's, which test_demo connects through. Validate credential re-checks it.
            "validated_at": timezone.now(),
            "validation_report": {"warning": "Set up by demo_seed, not validated in the "
                                             "admin: press “Validate credential” to check it."},
        })
        # An API key connector: end users enter the key in the connect popup (docs/auth-types.md).
        Connector.objects.update_or_create(slug="demo-api-key", defaults={
            "name": "Demo API (API key)",
            "auth_type": Connector.AuthType.API_KEY,
            "api_base_url": f"{base}/api/",
            "test_request_path": "key/",
            "token_header": "X-Api-Key",
            "token_template": "{api_key}",
            "is_active": True,
        })
        self.stdout.write(f"Demo data ready. The demo API's key (to enter when connecting "
                          f"Demo API): {settings.PROVIDER_API_KEY}")
