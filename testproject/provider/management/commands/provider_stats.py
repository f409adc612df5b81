"""Print, as JSON, what the provider knows about the grants of one client: per refresh-token
family (one family per authorization), how many refresh tokens were issued and how many are
still valid. A rotation issues one more; a detected reuse revokes the whole family."""

import json

from django.core.management.base import BaseCommand
from oauth2_provider.models import get_refresh_token_model


class Command(BaseCommand):
    help = "Refresh-token statistics of one client application (for the tests)."

    def add_arguments(self, parser):
        parser.add_argument("--client-id", required=True)

    def handle(self, *args, **options):
        RefreshToken = get_refresh_token_model()
        tokens = RefreshToken.objects.filter(application__client_id=options["client_id"])
        families: dict[str, dict[str, int]] = {}
        for family, revoked in tokens.values_list("token_family", "revoked"):
            entry = families.setdefault(str(family), {"issued": 0, "valid": 0})
            entry["issued"] += 1
            entry["valid"] += revoked is None
        self.stdout.write(json.dumps({"families": families}))
