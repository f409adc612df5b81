"""Key rotation (manage.py alloy_oauth_rotate_keys) and values no key can decrypt."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from alloy_oauth import refresh, sql
from alloy_oauth.exceptions import TokenRefreshFailed
from alloy_oauth.fields import UNDECRYPTABLE, is_undecryptable
from alloy_oauth.models import AuthorizationRequest, Connector, Credential
from alloy_oauth.refresh.single import refresh_one

pytestmark = pytest.mark.django_db

OLD, NEW, OTHER = "old-key-0123456789abcdef", "new-key-abcdef0123456789", "unrelated-key-xyz"


@pytest.fixture
def written_with_old_key(settings, connector):
    settings.FERNET_KEYS = [OLD]
    connector.client_secret = "client-secret-value"
    connector.save()
    credentials = [
        Credential.objects.create(
            connector=connector, external_id=f"c{i}", access_token=f"access-{i}",
            refresh_token=f"refresh-{i}", token_response={"id_token": f"id-{i}"},
            next_refresh_at=timezone.now() - timedelta(seconds=1))
        for i in range(25)
    ]
    AuthorizationRequest.objects.create(
        state_hash="s" * 64, connector=connector, external_id="e", code_verifier="verifier",
        redirect_uri="https://app/cb", session_binding="b", expires_at=timezone.now())
    return credentials


def run(*args: str) -> str:
    out = StringIO()
    call_command("alloy_oauth_rotate_keys", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_rotate_then_drop_the_old_key(settings, written_with_old_key):
    settings.FERNET_KEYS = [NEW, OLD]
    with pytest.raises(CommandError, match="still under an old key"):
        run("--check")
    first = written_with_old_key[0].pk
    before = bytes(stored(Credential, "access_token", first))
    output = run("--batch-size", "7")
    # Re-encrypted under the new key with its original time, as MultiFernet.rotate() does.
    new_key, old_key = (Fernet(key) for key in
                        Credential._meta.get_field("access_token").fernet_keys)
    after = bytes(stored(Credential, "access_token", first))
    assert after != before
    assert new_key.extract_timestamp(after) == old_key.extract_timestamp(before)
    assert new_key.decrypt(after) == b"access-0"
    assert "alloy_oauth.Credential.access_token: 0 current, 25 re-encrypted, 0 undecryptable" in (
        output)
    assert "alloy_oauth.Connector.client_secret: 0 current, 1 re-encrypted" in output
    assert "alloy_oauth.AuthorizationRequest.code_verifier: 0 current, 1 re-encrypted" in output
    assert "1 current, 0 under an old key" in run("--check")  # nothing left under OLD
    assert "25 current, 0 re-encrypted" in run()  # idempotent

    settings.FERNET_KEYS = [NEW]  # the old key is gone: everything still decrypts
    for index, credential in enumerate(Credential.objects.order_by("pk")):
        assert (credential.access_token, credential.refresh_token) == (
            f"access-{index}", f"refresh-{index}")
        assert credential.token_response == {"id_token": f"id-{index}"}
    assert Connector.objects.get().client_secret == "client-secret-value"
    assert AuthorizationRequest.objects.get().code_verifier == "verifier"


def test_a_value_changed_meanwhile_is_not_overwritten(settings, written_with_old_key):
    """A refresh wrote new tokens between the read and the rewrite: they are kept."""
    settings.FERNET_KEYS = [NEW, OLD]
    credential = written_with_old_key[0]
    model_field = Credential._meta.get_field("access_token")
    stale = model_field.fernet.encrypt(b"access-0")  # the same plaintext, not what is stored
    written = sql.rewrite_encrypted_values("default", Credential, model_field,
                                           [(b"x", credential.pk, stale)])
    assert written == 0
    assert Credential.objects.get(pk=credential.pk).access_token == "access-0"


def stored(model, field_name: str, pk) -> bytes | None:
    """The column as stored, not as the field reads it."""
    batches = sql.encrypted_values("default", model, model._meta.get_field(field_name), 10**6)
    return dict(next(batches, [])).get(pk)


def test_empty_secrets_are_stored_as_null(settings, connector):
    """An OAuth credential's API key, user name and password are empty: nothing to encrypt,
    to decrypt on each read, or to re-encrypt on each rotation."""
    credential = Credential.objects.create(connector=connector, external_id="e",
                                           access_token="a", refresh_token="")
    for name in ("refresh_token", "api_key", "username", "password"):
        assert stored(Credential, name, credential.pk) is None, name
    assert stored(Credential, "access_token", credential.pk) is not None
    credential = Credential.objects.get(pk=credential.pk)
    assert (credential.refresh_token, credential.api_key, credential.password) == ("", "", "")

    credential.refresh_token = "r"
    credential.save()
    assert Credential.objects.get(pk=credential.pk).refresh_token == "r"
    credential.refresh_token = ""
    credential.save()
    assert stored(Credential, "refresh_token", credential.pk) is None


def test_rotation_turns_empty_values_written_encrypted_into_null(settings, connector):
    """Rows written before empty values were stored as NULL hold an encrypted "": rotating
    them writes NULL, which needs no key at all."""
    fixture_key = settings.FERNET_KEYS  # the connector's secret is under it
    settings.FERNET_KEYS = [OLD, *fixture_key]
    credential = Credential.objects.create(connector=connector, external_id="e",
                                           access_token="a")
    model_field = Credential._meta.get_field("api_key")
    encrypted_empty = model_field.fernet.encrypt(b"")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Credential._meta.db_table} SET api_key = %s WHERE id = %s",
                       [connection.Database.Binary(encrypted_empty), credential.pk])
    assert bytes(stored(Credential, "api_key", credential.pk)) == encrypted_empty

    settings.FERNET_KEYS = [NEW, OLD, *fixture_key]
    assert "alloy_oauth.Credential.api_key: 0 current, 1 re-encrypted" in run()
    assert stored(Credential, "api_key", credential.pk) is None
    settings.FERNET_KEYS = [NEW]
    assert Credential.objects.get(pk=credential.pk).api_key == ""


class TestUndecryptable:
    @pytest.fixture
    def lost_key(self, settings, written_with_old_key):
        settings.FERNET_KEYS = [OTHER]
        return written_with_old_key

    def test_loads_as_a_marker_not_an_exception(self, lost_key):
        credential = Credential.objects.get(pk=lost_key[0].pk)
        assert is_undecryptable(credential.access_token) and credential.undecryptable
        assert not credential.access_token  # empty and falsy: never mistaken for a token

    def test_check_lists_them(self, lost_key):
        out = StringIO()
        with pytest.raises(CommandError, match="cannot be decrypted"):
            call_command("alloy_oauth_rotate_keys", "--check", stdout=out)
        text = out.getvalue()
        assert "alloy_oauth.Credential.access_token: 0 current, 0 under an old key, " \
               "25 undecryptable" in text
        assert "undecryptable ids: " + ", ".join(str(c.pk) for c in lost_key) in text

    def test_rotation_goes_on_and_touches_none_of_them(self, lost_key, settings):
        with pytest.raises(CommandError):
            run()
        settings.FERNET_KEYS = [OLD]  # the key comes back: nothing was lost
        assert Credential.objects.get(pk=lost_key[3].pk).access_token == "access-3"

    def test_saving_one_is_refused(self, lost_key):
        credential = Credential.objects.get(pk=lost_key[0].pk)
        with pytest.raises(ValueError, match="could not be decrypted"):
            credential.save()
        credential.access_token = UNDECRYPTABLE
        with pytest.raises(ValueError):
            Credential.objects.filter(pk=credential.pk).update(access_token=UNDECRYPTABLE)

    def test_admin_pages_keep_working(self, lost_key, admin_client):
        listing = admin_client.get(reverse("admin:alloy_oauth_credential_changelist"))
        assert listing.status_code == 200
        detail = admin_client.get(reverse("admin:alloy_oauth_credential_change",
                                          args=[lost_key[0].pk]))
        assert "cannot be decrypted with FERNET_KEYS" in detail.content.decode()
        connector = admin_client.get(reverse("admin:alloy_oauth_connector_change",
                                             args=[lost_key[0].connector_id]))
        assert "type it again" in connector.content.decode()

    def test_the_sweep_flags_them_without_calling_the_provider(self, lost_key, responses):
        from alloy_oauth import tasks

        outcome = refresh_one(lost_key[0].pk)
        assert outcome.result is refresh.Result.FAILED
        credential = Credential.objects.get(pk=lost_key[0].pk)
        assert credential.status == "error" and "FERNET_KEYS" in credential.last_error
        assert len(responses.calls) == 0
        assert tasks.refresh_due_credentials()["enqueued"] == 24  # the sweep itself is fine

    def test_asking_for_a_token_fails_clearly(self, lost_key):
        credential = Credential.objects.get(pk=lost_key[0].pk)
        with pytest.raises(TokenRefreshFailed, match="cannot be decrypted"):
            credential.get_access_token()
