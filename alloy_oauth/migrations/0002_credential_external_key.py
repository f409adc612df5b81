"""``Credential.external_key``: ``external_id``, or NULL when blank, kept by the database, for
an unconditional unique constraint (0004). Credentials are deleted before their user without
first setting ``user_id`` to NULL (what CASCADE does on MySQL/MariaDB, refused by the
has-an-owner check).

On MySQL/MariaDB, which cannot roll DDL back, each of 0002-0004 is one step that can be run
again if it fails.
"""

import django.db.models.functions.comparison
from django.conf import settings
from django.db import migrations, models

import alloy_oauth.models


class Migration(migrations.Migration):

    dependencies = [
        ("alloy_oauth", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
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
    ]
