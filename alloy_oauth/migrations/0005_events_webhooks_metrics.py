"""Events out of the process: webhook endpoints and their deliveries, when a credential
started failing (``failing_since``, for the ``recovered`` event), the ``recovered`` event kind,
and two indexes for the health summary and the metrics: credentials by connector and status,
events by kind and time. On PostgreSQL, creating the two indexes blocks writes to the
credential and event tables while they are built (seconds per million rows): migrate in a
quiet moment on a large table.
"""

import alloy_oauth.fields
import django.db.models.deletion
import django.utils.timezone
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('alloy_oauth', '0004_portable_credential_constraints'),
    ]

    operations = [
        migrations.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event_id', models.UUIDField(default=uuid.uuid4, editable=False, verbose_name='event ID')),
                ('event', models.CharField(max_length=50, verbose_name='event')),
                ('payload', models.JSONField(verbose_name='payload')),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('succeeded', 'Delivered'), ('failed', 'Failed'), ('dropped', 'Dropped')], default='pending', max_length=10, verbose_name='status')),
                ('attempts', models.PositiveIntegerField(default=0, verbose_name='attempts')),
                ('response_code', models.PositiveIntegerField(blank=True, null=True, verbose_name='last response code')),
                ('last_error', models.TextField(blank=True, verbose_name='last error')),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True, verbose_name='next attempt')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created at')),
                ('delivered_at', models.DateTimeField(blank=True, null=True, verbose_name='delivered at')),
            ],
            options={
                'verbose_name': 'webhook delivery',
                'verbose_name_plural': 'webhook deliveries',
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='WebhookEndpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('url', models.URLField(help_text='Receives a signed POST per event. https, and not a private address unless listed in WEBHOOK_ALLOWED_NETWORKS.', max_length=500, verbose_name='URL')),
                ('description', models.CharField(blank=True, max_length=200, verbose_name='description')),
                ('secret', alloy_oauth.fields.EncryptedTextField(verbose_name='signing secret')),
                ('previous_secret', alloy_oauth.fields.EncryptedTextField(blank=True, default='', editable=False, verbose_name='previous signing secret')),
                ('previous_secret_expires_at', models.DateTimeField(blank=True, editable=False, null=True, verbose_name='previous secret signs until')),
                ('events', models.JSONField(default=list, verbose_name='events')),
                ('is_active', models.BooleanField(default=True, verbose_name='active')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('updated_at', models.DateTimeField(auto_now=True, verbose_name='updated at')),
            ],
            options={
                'verbose_name': 'webhook endpoint',
                'verbose_name_plural': 'webhook endpoints',
                'ordering': ['url'],
            },
        ),
        migrations.AddField(
            model_name='credential',
            name='failing_since',
            field=models.DateTimeField(blank=True, null=True, verbose_name='failing since'),
        ),
        migrations.AlterField(
            model_name='credentialevent',
            name='kind',
            field=models.CharField(choices=[('connected', 'Connected'), ('refreshed', 'Refreshed'), ('refresh_failed', 'Refresh failed'), ('reauth_required', 'Reconnection required'), ('revoked', 'Revoked'), ('recovered', 'Recovered')], max_length=20, verbose_name='event'),
        ),
        migrations.AddIndex(
            model_name='credential',
            index=models.Index(fields=['connector', 'status'], name='alloy_oauth_cred_health'),
        ),
        migrations.AddIndex(
            model_name='credentialevent',
            index=models.Index(fields=['kind', 'created_at'], name='alloy_oauth_event_recent'),
        ),
        migrations.AddField(
            model_name='webhookdelivery',
            name='connector',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='alloy_oauth.connector', verbose_name='connector'),
        ),
        migrations.AddField(
            model_name='webhookendpoint',
            name='connectors',
            field=models.ManyToManyField(blank=True, help_text='Only events of these connectors. None selected: every connector.', related_name='+', to='alloy_oauth.connector', verbose_name='connectors'),
        ),
        migrations.AddField(
            model_name='webhookdelivery',
            name='endpoint',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='alloy_oauth.webhookendpoint', verbose_name='endpoint'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(fields=['endpoint', 'status'], name='alloy_oauth_hook_queue'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(fields=['status', 'next_attempt_at'], name='alloy_oauth_hook_due'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(fields=['created_at'], name='alloy_oauth_hook_age'),
        ),
        migrations.AddConstraint(
            model_name='webhookdelivery',
            constraint=models.UniqueConstraint(fields=('endpoint', 'event_id'), name='alloy_oauth_hook_once_per_event'),
        ),
    ]
