"""Create or update the provider's client application and one end user (idempotent)."""

import argparse

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from oauth2_provider.models import get_application_model


class Command(BaseCommand):
    help = "Register a confidential client application and an end user at the built-in provider."

    def add_arguments(self, parser):
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--client-secret", required=True)
        parser.add_argument("--redirect-uri", action="append", required=True)
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--name", default="alloy_oauth test project")
        parser.add_argument("--service-client-id", default="",
                            help="Also register a client of the client credentials grant.")
        parser.add_argument("--service-client-secret", default="")
        parser.add_argument("--skip-authorization", action=argparse.BooleanOptionalAction,
                            default=True, help="Skip the consent page (tests) or show it (demo).")

    def handle(self, *args, **options):
        user, _ = get_user_model().objects.get_or_create(username=options["username"])
        user.set_password(options["password"])
        user.save()
        Application = get_application_model()
        app = Application.objects.filter(client_id=options["client_id"]).first() or Application(
            client_id=options["client_id"]
        )
        app.name = options["name"]
        app.user = user
        app.client_type = Application.CLIENT_CONFIDENTIAL
        app.authorization_grant_type = Application.GRANT_AUTHORIZATION_CODE
        app.client_secret = options["client_secret"]
        app.redirect_uris = " ".join(options["redirect_uri"])
        app.skip_authorization = options["skip_authorization"]
        app.algorithm = ""
        app.save()
        self.stdout.write(f"Provider application {app.client_id} ready for user {user.username}.")
        if options["service_client_id"]:
            service = Application.objects.filter(
                client_id=options["service_client_id"]).first() or Application(
                client_id=options["service_client_id"])
            service.name = options["name"] + " (service)"
            service.user = user
            service.client_type = Application.CLIENT_CONFIDENTIAL
            service.authorization_grant_type = Application.GRANT_CLIENT_CREDENTIALS
            service.client_secret = options["service_client_secret"]
            service.redirect_uris = ""
            service.algorithm = ""
            service.save()
            self.stdout.write(f"Provider service application {service.client_id} ready.")
