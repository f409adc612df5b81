"""Connectors reach end users only when live: active and validated (docs/admin.md). Active
connectors that were offered before this rule, without a validation, stay offered: they are
marked validated now, with a report that says so (press "Validate credential" to check them).
A validation may check values not saved yet: its pending authorization keeps them (``draft``,
encrypted), with no connector for a new one."""

from django.utils import timezone

import alloy_oauth.fields
import django.db.models.deletion
from django.db import migrations, models


GRANDFATHERED = {"grandfathered": True, "warning": (
    "Offered to end users before validation was required (migration 0007); not validated "
    "since. Press “Validate credential” to check it.")}


def keep_offering(apps, schema_editor):
    Connector = apps.get_model("alloy_oauth", "Connector")
    Connector.objects.filter(is_active=True, validated_at__isnull=True).update(
        validated_at=timezone.now(), validation_report=GRANDFATHERED)


class Migration(migrations.Migration):

    dependencies = [
        ('alloy_oauth', '0007_connector_logo'),
    ]

    operations = [
        migrations.AddField(
            model_name='authorizationrequest',
            name='draft',
            field=alloy_oauth.fields.EncryptedJSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name='authorizationrequest',
            name='connector',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='authorization_requests', to='alloy_oauth.connector'),
        ),
        migrations.AlterField(
            model_name='connector',
            name='is_active',
            field=models.BooleanField(default=True, help_text='Untick to stop offering this connector to end users. An active connector is offered once it has passed “Validate credential” (see “Live” in the list).', verbose_name='active'),
        ),
        migrations.RunPython(keep_offering, migrations.RunPython.noop),
    ]
