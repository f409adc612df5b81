"""manage.py alloy_oauth_refresh: refresh credentials now, through the same engine as the
workers (so it is safe to run while they run)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import QuerySet
from django.utils import timezone

from alloy_oauth.management import progress
from alloy_oauth.models import Connector, Credential
from alloy_oauth.outcomes import Result
from alloy_oauth.refresh.single import refresh_one

SUMMARY = {
    Result.REFRESHED: "refreshed",
    Result.REAUTH_REQUIRED: "reauth required",
    Result.FAILED: "failed",
    Result.RETRY: "failed",
}


class Command(BaseCommand):
    help = (
        "Refresh OAuth credentials now: the due ones (default), a connector's, or the given "
        "ones. Prints a summary: refreshed / skipped / reauth required / failed."
    )

    def add_arguments(self, parser: Any) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--due", action="store_true",
                           help="Credentials whose refresh time has come (the default).")
        which.add_argument("--connector", metavar="SLUG",
                           help="The active credentials of one connector.")
        which.add_argument("--credential", metavar="ID", type=int, action="append",
                           help="One credential (repeatable).")
        parser.add_argument("--force", action="store_true",
                            help="Refresh even if not due, credentials in error included "
                                 "(with --connector or --credential).")
        parser.add_argument("--dry-run", action="store_true",
                            help="List what would be refreshed; send nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["force"] and not (options["connector"] or options["credential"]):
            raise CommandError("--force refreshes what you name: add --connector or --credential.")
        credentials = self.selection(options)
        ids = list(credentials.values_list("pk", flat=True))
        if options["dry_run"]:
            self.list(credentials)
            return
        counts: Counter[str] = Counter()
        for done, credential_id in enumerate(ids, start=1):
            try:
                outcome = refresh_one(
                    credential_id, force=options["force"], wait=True
                )
            except Credential.DoesNotExist:
                counts["skipped"] += 1
                continue
            counts[SUMMARY.get(outcome.result, "skipped")] += 1
            if outcome.result in (Result.FAILED, Result.RETRY, Result.REAUTH_REQUIRED):
                self.progress_line(f"credential {credential_id}: {outcome.message}")
            progress.show("", done, len(ids))
        self.stdout.write(", ".join(
            f"{label}: {counts[label]}"
            for label in ("refreshed", "skipped", "reauth required", "failed")
        ))
        if counts["failed"]:
            raise CommandError(f"{counts['failed']} credential(s) could not be refreshed.")

    def selection(self, options: dict[str, Any]) -> QuerySet[Credential]:
        statuses = [Credential.Status.ACTIVE]
        if options["force"]:
            statuses.append(Credential.Status.ERROR)
        if options["credential"]:
            found = Credential.objects.filter(pk__in=options["credential"])
            missing = set(options["credential"]) - set(found.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"No credential with id {', '.join(map(str, sorted(missing)))}.")
            return found.order_by("pk")
        if options["connector"]:
            if not Connector.objects.filter(slug=options["connector"]).exists():
                raise CommandError(f"No connector with slug {options['connector']!r}.")
            return Credential.objects.filter(
                connector__slug=options["connector"], status__in=statuses
            ).order_by("pk")
        return Credential.objects.due()

    def list(self, credentials: QuerySet[Credential]) -> None:
        now = timezone.now()
        rows = credentials.select_related("connector", "user")
        for credential in rows:
            expires = (
                f"expires in {int((credential.expires_at - now).total_seconds())} s"
                if credential.expires_at else "no expiry"
            )
            self.stdout.write(f"{credential.pk}\t{credential}\t{credential.status}\t{expires}")
        self.stdout.write(f"{len(rows)} credential(s) selected (dry run; nothing was sent).")

    def progress_line(self, text: str) -> None:
        progress.clear_line()
        self.stderr.write(text)
