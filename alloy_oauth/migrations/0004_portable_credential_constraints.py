"""One credential per owner and connector, enforced the same way on every database.

0001's unique constraints had conditions, which MySQL/MariaDB do not support (Django skipped
them there). They become unconditional ones, on ``user`` and on ``external_key`` (0002):
NULLs are distinct in unique indexes everywhere. On PostgreSQL the indexes are rebuilt.
"""

from django.db import migrations, models
from django.db.models import Count, F


def refuse_shared_owners(apps, schema_editor):
    """Where 0001's constraints were not enforced (MySQL/MariaDB), two credentials may share
    an owner: name them and stop rather than fail on the new constraint; delete nothing."""
    credentials = apps.get_model("alloy_oauth", "Credential").objects.using(
        schema_editor.connection.alias)
    shared = [
        f"connector {group['connector']}, {kind} {group['owner']!r}: {group['count']} credentials"
        for kind, owner in (("user", "user"), ("external_id", "external_key"))
        for group in credentials.filter(**{f"{owner}__isnull": False})
        .values("connector", owner=F(owner)).annotate(count=Count("id"))
        .filter(count__gt=1).order_by("connector")
    ]
    if shared:
        raise RuntimeError(
            "Several credentials share one owner and connector, which is no longer allowed. "
            "Keep one of each (delete the others in the admin's Credentials list), then run "
            "migrate again. " + "; ".join(shared[:20]) + ("; …" if len(shared) > 20 else "")
        )


class Migration(migrations.Migration):

    dependencies = [("alloy_oauth", "0003_case_sensitive_external_id")]

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
