# Empty secrets are stored as NULL from now on (alloy_oauth.fields.EncryptedTextField with
# null=True). Values already stored stay readable; key rotation turns each empty one it
# re-encrypts into NULL.

import alloy_oauth.fields
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('alloy_oauth', '0009_auth_types'),
    ]

    operations = [
        migrations.AlterField(
            model_name='authorizationrequest',
            name='code_verifier',
            field=alloy_oauth.fields.EncryptedTextField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='connector',
            name='client_secret',
            field=alloy_oauth.fields.EncryptedTextField(blank=True, null=True, verbose_name='client secret'),
        ),
        migrations.AlterField(
            model_name='credential',
            name='access_token',
            field=alloy_oauth.fields.EncryptedTextField(blank=True, default='', null=True, verbose_name='access token'),
        ),
        migrations.AlterField(
            model_name='credential',
            name='api_key',
            field=alloy_oauth.fields.EncryptedTextField(blank=True, default='', null=True, verbose_name='API key'),
        ),
        migrations.AlterField(
            model_name='credential',
            name='password',
            field=alloy_oauth.fields.EncryptedTextField(blank=True, default='', null=True, verbose_name='password'),
        ),
        migrations.AlterField(
            model_name='credential',
            name='refresh_token',
            field=alloy_oauth.fields.EncryptedTextField(blank=True, default='', null=True, verbose_name='refresh token'),
        ),
        migrations.AlterField(
            model_name='credential',
            name='username',
            field=alloy_oauth.fields.EncryptedTextField(blank=True, default='', null=True, verbose_name='user name'),
        ),
        migrations.AlterField(
            model_name='webhookendpoint',
            name='previous_secret',
            field=alloy_oauth.fields.EncryptedTextField(blank=True, default='', editable=False, null=True, verbose_name='previous signing secret'),
        ),
    ]
