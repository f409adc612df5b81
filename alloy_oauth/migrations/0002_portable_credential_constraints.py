"""One credential per owner and connector, enforced the same way on every database.

0001's unique constraints had conditions, which MySQL/MariaDB do not support (Django skipped
them there). They become unconditional ones, on ``user`` and on ``external_key`` (a stored
column: ``external_id``, or NULL when blank): NULLs are distinct in unique indexes everywhere.
"""

import django.db.models.functions.comparison
from django.conf import settings
from django.db import migrations, models
from django.db.models import Count, F
from django.db.models.functions import Collate

import alloy_oauth.models


def binary_collation(connection):
    """A MySQL/MariaDB collation that tells case and trailing spaces apart."""
    return "utf8mb4_nopad_bin" if connection.mysql_is_mariadb else "utf8mb4_0900_bin"


def refuse_shared_owners(apps, schema_editor):
    """Where 0001's constraints were not enforced (MySQL/MariaDB), two credentials may share
    an owner. Name them and stop, before any change to the table (MySQL cannot roll DDL
    back), rather than fail on the new constraint; delete nothing."""
    connection = schema_editor.connection
    credentials = apps.get_model("alloy_oauth", "Credential").objects.using(connection.alias)
    external_id = (Collate("external_id", binary_collation(connection))
                   if connection.vendor == "mysql" else F("external_id"))
    owners = {"user": credentials.filter(user__isnull=False).values("connector", owner=F("user")),
              "external_id": credentials.exclude(external_id="").values(
                  "connector", owner=external_id)}
    shared = [
        f"connector {group['connector']}, {kind} {group['owner']!r}: {group['count']} credentials"
        for kind, rows in owners.items()
        for group in rows.annotate(count=Count("id")).filter(count__gt=1).order_by("connector")
    ]
    if shared:
        raise RuntimeError(
            "Several credentials share one owner and connector, which is no longer allowed. "
            "Keep one of each (delete the others in the admin's Credentials list), then run "
            "migrate again. " + "; ".join(shared[:20]) + ("; …" if len(shared) > 20 else "")
        )


def case_sensitive_external_id(apps, schema_editor):
    """MySQL/MariaDB compare with the column's collation, by default blind to case and (PAD
    SPACE) to trailing spaces: 'cust-1' would find, and be refused beside, 'CUST-1'."""
    connection = schema_editor.connection
    if connection.vendor != "mysql":
        return
    collation = binary_collation(connection)
    table = schema_editor.quote_name("alloy_oauth_credential")
    schema_editor.execute(
        f"ALTER TABLE {table}"
        f" MODIFY external_id varchar(255) COLLATE {collation} NOT NULL,"
        f" MODIFY external_key varchar(255) COLLATE {collation}"
        " GENERATED ALWAYS AS (NULLIF(external_id, '')) STORED"
    )


class Migration(migrations.Migration):

    dependencies = [
        ("alloy_oauth", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(refuse_shared_owners, migrations.RunPython.noop),
        migrations.RemoveConstraint(
            model_name="credential",
            name="alloy_oauth_cred_one_per_user",
        ),
        migrations.RemoveConstraint(
            model_name="credential",
            name="alloy_oauth_cred_one_per_external_id",
        ),
        migrations.AddField(
            model_name="credential",
            name="external_key",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.comparison.NullIf(
                    "external_id", models.Value("")),
                output_field=models.CharField(max_length=255, null=True),
            ),
        ),
        migrations.AlterField(
            model_name="credential",
            name="user",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=alloy_oauth.models.cascade_without_nulling,
                related_name="alloy_oauth_credentials", to=settings.AUTH_USER_MODEL,
                verbose_name="user"),
        ),
        # MySQL refuses DDL inside the transaction RunPython would open.
        migrations.RunPython(case_sensitive_external_id, migrations.RunPython.noop,
                             atomic=False),
        migrations.AddConstraint(
            model_name="credential",
            constraint=models.UniqueConstraint(
                fields=("connector", "user"), name="alloy_oauth_cred_one_per_user"),
        ),
        migrations.AddConstraint(
            model_name="credential",
            constraint=models.UniqueConstraint(
                fields=("connector", "external_key"),
                name="alloy_oauth_cred_one_per_external_id"),
        ),
    ]
