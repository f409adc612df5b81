"""Models: encryption at rest, ownership rules, deleting connectors, lookups."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.db import IntegrityError, connection, models, transaction
from django.db.models import ProtectedError

from alloy_oauth import protocol
from alloy_oauth.models import Connector, Credential

from tests.support.migrations import at_migration, migrate_to_latest, old_connector

pytestmark = pytest.mark.django_db


def make_credential(connector, **fields) -> Credential:
    values = {"access_token": "access-secret-1", "refresh_token": "refresh-secret-1"}
    values.update(fields)
    return Credential.objects.create(connector=connector, **values)


def raw_row(table: str, pk: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])  # noqa: S608
        row = cursor.fetchone()
    return b"|".join(bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode()
                     for v in row)


class TestEncryption:
    def test_secrets_are_encrypted_at_rest(self, connector, django_user_model):
        user = django_user_model.objects.create_user("u")
        credential = make_credential(connector, user=user,
                                     token_response={"id_token": "id-token-secret"})
        row = raw_row("alloy_oauth_credential", credential.pk)
        for secret in (b"access-secret-1", b"refresh-secret-1", b"id-token-secret"):
            assert secret not in row
        assert b"client-secret-value" not in raw_row("alloy_oauth_connector", connector.pk)
        credential.refresh_from_db()
        assert credential.access_token == "access-secret-1"
        assert credential.token_response == {"id_token": "id-token-secret"}
        connector.refresh_from_db()
        assert connector.client_secret == "client-secret-value"

    def test_token_fields_refuse_lookups(self, connector):
        from django.core.exceptions import FieldError

        with pytest.raises(FieldError):
            list(Credential.objects.filter(access_token="x"))


class TestOwnership:
    def test_an_owner_is_required(self, connector):
        with pytest.raises(IntegrityError), transaction.atomic():
            make_credential(connector)

    def test_one_credential_per_user_and_connector(self, connector, django_user_model):
        user = django_user_model.objects.create_user("u")
        make_credential(connector, user=user)
        with pytest.raises(IntegrityError), transaction.atomic():
            make_credential(connector, user=user)

    def test_one_credential_per_external_id_and_connector(self, connector, make_connector):
        make_credential(connector, external_id="cust-42")
        make_credential(make_connector(), external_id="cust-42")
        with pytest.raises(IntegrityError), transaction.atomic():
            make_credential(connector, external_id="cust-42")

    def test_external_ids_differing_in_case_or_spaces_are_different_owners(self, connector):
        # MySQL/MariaDB's default collations would make these one owner (migration 0002).
        owners = ["cust-1", "CUST-1", "cust-1 "]
        credentials = [make_credential(connector, external_id=owner) for owner in owners]
        for owner, credential in zip(owners, credentials):
            assert list(Credential.objects.for_owner(external_id=owner)) == [credential]

    def test_for_owner(self, connector, django_user_model):
        alice = django_user_model.objects.create_user("alice")
        bob = django_user_model.objects.create_user("bob")
        mine = make_credential(connector, user=alice)
        make_credential(connector, user=bob)
        external = make_credential(connector, external_id="cust-1")
        assert list(Credential.objects.for_owner(user=alice)) == [mine]
        assert list(Credential.objects.for_owner(external_id="cust-1")) == [external]
        assert Credential.objects.for_owner(user=alice).get(connector__slug="example") == mine
        with pytest.raises(ValueError):
            Credential.objects.for_owner()
        with pytest.raises(ValueError):
            Credential.objects.for_owner(user=alice, external_id="cust-1")

    def test_str_never_shows_a_token(self, connector):
        credential = make_credential(connector, external_id="cust-1")
        assert str(credential) == "Example — cust-1"
        assert "secret" not in repr(credential)


class TestDeletion:
    def test_connector_with_credentials_cannot_be_deleted(self, connector):
        make_credential(connector, external_id="cust-1")
        with pytest.raises(ProtectedError):
            connector.delete()
        assert Credential.objects.count() == 1

    def test_connector_without_credentials_can_be_deleted(self, connector):
        connector.delete()
        assert not Connector.objects.exists()

    def test_deleting_a_user_deletes_their_tokens(self, connector, django_user_model):
        user = django_user_model.objects.create_user("u")
        make_credential(connector, user=user)
        user.delete()
        assert not Credential.objects.exists()


class TestTokenValues:
    ISSUED = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def token(self, **fields) -> protocol.TokenResponse:
        return protocol.TokenResponse(access_token="at", token_type="Bearer",
                                      issued_at=self.ISSUED, **fields)

    def test_expiry_and_schedule(self, connector):
        values = connector.token_values(self.token(expires_in=3600), requested_scopes=["a"])
        assert values["expires_at"] == self.ISSUED + timedelta(seconds=3600)
        assert values["next_refresh_at"] == self.ISSUED + timedelta(seconds=3300)
        assert values["scope"] == "a"
        assert "refresh_token" not in values

    def test_connector_lead_time_and_default_lifetime(self, connector, settings):
        connector.default_expires_in = 600
        settings.ALLOY_OAUTH = {"REFRESH_LEAD_TIME": 100}
        values = connector.token_values(self.token(), requested_scopes=[])
        assert values["next_refresh_at"] == self.ISSUED + timedelta(seconds=500)
        connector.refresh_lead_time = 30
        values = connector.token_values(self.token(), requested_scopes=[])
        assert values["next_refresh_at"] == self.ISSUED + timedelta(seconds=570)

    def test_unknown_expiry(self, connector):
        values = connector.token_values(self.token(), requested_scopes=[])
        assert values["expires_at"] is None and values["next_refresh_at"] is None

    def test_granted_scopes_win(self, connector):
        values = connector.token_values(self.token(scopes=["b", "c"]), requested_scopes=["a"])
        assert values["scope"] == "b c"


def test_oauth_client(connector, settings):
    client = connector.oauth_client()
    assert (client.token_url, client.client_id, client.client_secret, client.auth_method) == (
        connector.token_url, "client-id", "client-secret-value", "client_secret_basic")
    assert client.allow_http is False and client.timeout == 10
    settings.DEBUG = True
    settings.ALLOY_OAUTH = {"HTTP_TIMEOUT": 2.5}
    client = connector.oauth_client()
    assert client.allow_http is True and client.timeout == 2.5


def test_scopes_property(connector):
    connector.scope = "read,write  admin"
    assert connector.scopes == ["read", "write", "admin"]


class TestMigrations:
    def test_the_models_and_migrations_agree(self):
        from django.core.management import call_command

        call_command("makemigrations", "alloy_oauth", "--check", "--dry-run", verbosity=0)

    @pytest.mark.django_db(transaction=True)
    def test_the_portable_constraints_migration_keeps_every_credential(self, django_user_model):
        user = django_user_model.objects.create_user("u")
        rows = {"user": dict(user_id=user.pk), "external": dict(external_id="cust-1"),
                "other case": dict(external_id="CUST-1")}
        with at_migration("0001_initial") as old:
            connector = old_connector(old)
            ids = {name: old.get_model("alloy_oauth", "Credential").objects.create(
                connector_id=connector.pk, access_token=f"token of {name}", **owner).pk
                for name, owner in rows.items()}
            migrate_to_latest()

        for name, pk in ids.items():
            assert Credential.objects.get(pk=pk).access_token == f"token of {name}"
        assert Credential.objects.get(pk=ids["external"]).external_key == "cust-1"
        assert Credential.objects.get(pk=ids["user"]).external_key is None
        for owner in ({"user": user}, {"external_id": "cust-1"}):
            with pytest.raises(IntegrityError), transaction.atomic():
                Credential.objects.create(connector_id=connector.pk, access_token="t", **owner)

    @pytest.mark.django_db(transaction=True)
    def test_external_ids_become_case_sensitive_from_any_character_set(self):
        with at_migration("0002_credential_external_key") as old:
            if connection.vendor == "mysql":  # a table made with Django's old default, utf8
                with connection.cursor() as cursor:
                    cursor.execute("ALTER TABLE alloy_oauth_credential "
                                   "CONVERT TO CHARACTER SET utf8mb3")
            connector = old_connector(old)
            credentials = old.get_model("alloy_oauth", "Credential")
            for owner in ("cust-1", "CUST-1 "):
                credentials.objects.create(connector_id=connector.pk, external_id=owner,
                                           access_token=f"token of {owner}")
            migrate_to_latest()
        for owner in ("cust-1", "CUST-1 "):
            assert Credential.objects.get(external_id=owner).access_token == f"token of {owner}"
        assert not Credential.objects.filter(external_id="CUST-1").exists()

    @pytest.mark.django_db(transaction=True)
    def test_shared_owners_stop_the_migration_and_nothing_is_lost(self, django_user_model):
        user = django_user_model.objects.create_user("u")
        with at_migration("0003_case_sensitive_external_id") as old:
            credentials = old.get_model("alloy_oauth", "Credential")
            # As on MySQL/MariaDB, where 0001's conditional constraints were never created.
            unique = [constraint for constraint in credentials._meta.constraints
                      if isinstance(constraint, models.UniqueConstraint)]
            with connection.schema_editor() as editor:
                for constraint in unique:
                    editor.remove_constraint(credentials, constraint)
            connector = old_connector(old)
            owners = [dict(user_id=user.pk), dict(user_id=user.pk), dict(external_id="cust-1"),
                      dict(external_id="cust-1"), dict(external_id="CUST-1")]
            for number, owner in enumerate(owners):
                credentials.objects.create(connector_id=connector.pk,
                                           access_token=f"token {number}", **owner)

            with pytest.raises(RuntimeError) as refused:
                migrate_to_latest()
            message = str(refused.value)
            assert f"connector {connector.pk}, user {user.pk}: 2 credentials" in message
            assert f"connector {connector.pk}, external_id 'cust-1': 2 credentials" in message
            assert "CUST-1" not in message
            assert sorted(credentials.objects.values_list("access_token", flat=True)) == [
                f"token {number}" for number in range(5)]

            pks = list(credentials.objects.order_by("pk").values_list("pk", flat=True))
            credentials.objects.filter(pk__in=[pks[1], pks[3]]).delete()
            with connection.schema_editor() as editor:  # 0001's schema again
                for constraint in unique:
                    editor.add_constraint(credentials, constraint)
            migrate_to_latest()
        assert Credential.objects.count() == 3
