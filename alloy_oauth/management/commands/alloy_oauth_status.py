"""manage.py alloy_oauth_status: how each connector's credentials are doing, for an operator
or a cron job / monitoring check (non-zero exit when a threshold is crossed)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from alloy_oauth import health
from alloy_oauth.models import Connector, Credential

#: option → (what it bounds, per connector, as a sentence)
THRESHOLDS = {
    "max_backlog": "due credentials",
    "max_overdue": "seconds the oldest due credential has waited",
    "max_failures": "failed refreshes in the last hour",
    "max_reauth": "credentials that need reconnecting",
    "max_error": "credentials in error",
}


class Command(BaseCommand):
    help = (
        "Print, per connector, credentials by status, the due backlog, the oldest overdue "
        "credential and the failed refreshes of the last hour. Exits with status 1 when a "
        "--max-… threshold is crossed (for cron and monitoring)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--connector", metavar="SLUG", action="append",
                            help="Only this connector (repeatable).")
        parser.add_argument("--json", action="store_true",
                            help="One JSON document instead of the table.")
        parser.add_argument("--max-backlog", type=int, metavar="N",
                            help="Fail when a connector has more than N due credentials.")
        parser.add_argument("--max-overdue", type=float, metavar="SECONDS",
                            help="Fail when a connector's oldest due credential has waited "
                                 "more than SECONDS.")
        parser.add_argument("--max-failures", type=int, metavar="N",
                            help="Fail when a connector had more than N failed refreshes "
                                 "(refresh_failed and reauth_required events) in the last hour.")
        parser.add_argument("--max-reauth", type=int, metavar="N",
                            help="Fail when more than N credentials of a connector need "
                                 "reconnecting.")
        parser.add_argument("--max-error", type=int, metavar="N",
                            help="Fail when more than N credentials of a connector are in error.")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        rows = health.connector_health(now)
        if options["connector"]:
            unknown = set(options["connector"]) - set(
                Connector.objects.filter(slug__in=options["connector"])
                .values_list("slug", flat=True))
            if unknown:
                raise CommandError(f"No connector with slug {', '.join(sorted(unknown))}.")
            rows = [row for row in rows if row.slug in options["connector"]]
        problems = [problem for row in rows for problem in self.crossed(row, options, now)]
        if options["json"]:
            self.stdout.write(json.dumps({
                "checked_at": now.isoformat(),
                "connectors": [self.as_dict(row, now) for row in rows],
                "problems": problems,
            }, indent=2))
        else:
            self.table(rows, now)
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"{len(problems)} threshold(s) crossed.", returncode=1)

    def crossed(self, row: health.ConnectorHealth, options: dict[str, Any], now: Any) -> list[str]:
        values = {
            "max_backlog": row.due,
            "max_overdue": round(row.overdue_seconds(now)),
            "max_failures": row.failures_last_hour,
            "max_reauth": row.by_status[Credential.Status.REAUTH_REQUIRED],
            "max_error": row.by_status[Credential.Status.ERROR],
        }
        return [
            f"{row.slug}: {values[name]} {what} (more than {options[name]:g})"
            for name, what in THRESHOLDS.items()
            if options[name] is not None and values[name] > options[name]
        ]

    def as_dict(self, row: health.ConnectorHealth, now: Any) -> dict[str, Any]:
        return {
            "connector": row.slug,
            "name": row.name,
            "credentials": row.by_status,
            "due": row.due,
            "oldest_overdue_seconds": round(row.overdue_seconds(now)) if row.due else None,
            "oldest_overdue_credential": row.oldest_due_credential,
            "failures_last_hour": row.failures_last_hour,
        }

    def table(self, rows: list[health.ConnectorHealth], now: Any) -> None:
        statuses = list(Credential.Status.values)
        header = ["connector", *statuses, "due", "oldest overdue", "failures (1 h)"]
        lines = [header]
        for row in rows:
            oldest = (f"{round(row.overdue_seconds(now))} s (credential "
                      f"{row.oldest_due_credential})" if row.due else "—")
            lines.append([row.slug, *(str(row.by_status[status]) for status in statuses),
                          str(row.due), oldest, str(row.failures_last_hour)])
        widths = [max(len(line[index]) for line in lines) for index in range(len(header))]
        for line in lines:
            self.stdout.write("  ".join(cell.ljust(width)
                                        for cell, width in zip(line, widths, strict=True)).rstrip())
        if not rows:
            self.stdout.write("No connector.")
