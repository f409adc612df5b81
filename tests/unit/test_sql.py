"""alloy_oauth/sql.py: the statements the ORM cannot write, each checked against what the
ORM itself reads and writes, and each Django internal they rely on checked to exist, on
every database and every Django version of the tox matrix (a change there fails here, not
in production)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Q
from django.db.models.sql import Query
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from alloy_oauth import sql
from alloy_oauth.models import Credential, CredentialEvent
from alloy_oauth.refresh import leases, records


@pytest.fixture
def credential(connector, django_user_model) -> Credential:
    now = timezone.now()
    return Credential.objects.create(
        connector=connector, user=django_user_model.objects.create_user("enduser"),
        access_token="old-access", refresh_token="old-refresh", scope="read",
        token_response={"id_token": "x", "n": [1, 2]},
        expires_at=now + timedelta(seconds=120), next_refresh_at=now - timedelta(seconds=1))


def test_the_django_internals_they_use_are_there():
    """What sql.py builds its statements with, beyond Django's documented API."""
    query = Credential.objects.filter(pk=1).query
    for name in ("alias_map", "is_sliced", "combinator", "where"):
        assert hasattr(query, name), f"Query.{name} is gone: update alloy_oauth/sql.py"
    assert callable(getattr(query, "is_empty", None)) and isinstance(query, Query)
    for name in ("compile", "get_converters", "apply_converters"):
        assert callable(getattr(SQLCompiler, name, None)), (
            f"SQLCompiler.{name} is gone: update alloy_oauth/sql.py")
    field = Credential._meta.get_field("access_token")
    assert callable(getattr(field, "get_col", None)) and callable(field.cast_db_type)


class TestLeaseAndRead:
    def test_reads_the_credential_and_its_connector_as_the_orm_does(self, credential):
        lease, leased = leases.acquire_one(credential.pk, Q())
        assert lease.credential_id == credential.pk
        read = Credential.objects.select_related("connector").get(pk=credential.pk)
        for model, ours, orms in ((Credential, leased, read),
                                  (type(read.connector), leased.connector, read.connector)):
            for field in model._meta.concrete_fields:
                value, expected = getattr(ours, field.attname), getattr(orms, field.attname)
                assert (value, type(value)) == (expected, type(expected)), field.name
        assert leased.access_token == "old-access"
        assert leased.connector.client_secret == read.connector.client_secret != ""
        assert leases.acquire_one(credential.pk, Q()) is None

    def test_reads_foreign_keys_through_their_targets_converters(self, credential,
                                                                 monkeypatch):
        # A user model whose primary key converts what it loads (hashids, custom key types).
        from django.contrib.auth import get_user_model

        monkeypatch.setattr(get_user_model()._meta.pk, "from_db_value",
                            lambda value, expression, connection: ("converted", value),
                            raising=False)
        _, leased = leases.acquire_one(credential.pk, Q())
        assert leased.user_id == Credential.objects.get(pk=credential.pk).user_id == (
            "converted", credential.user_id)

    def test_takes_many_in_one_statement_with_its_text_independent_of_their_number(
            self, credential, connector):
        others = [Credential.objects.create(connector=connector, external_id=f"e{i}",
                                            access_token=f"a{i}", refresh_token=f"r{i}")
                  for i in range(3)]
        ids = [credential.pk, *(other.pk for other in others)]
        from django.test.utils import CaptureQueriesContext

        token = leases.new_token()
        with CaptureQueriesContext(connection) as queries:
            leased = leases.acquire(ids, Q(), token)
        assert sorted(c.pk for c in leased) == sorted(ids)
        assert {c.refresh_token for c in leased} == {"old-refresh", "r0", "r1", "r2"}
        if sql.update_can_return(connection):
            [statement] = queries.captured_queries
            if connection.vendor == "postgresql":
                assert "= ANY(" in statement["sql"]
        assert Credential.objects.filter(lease_token=token).count() == 4


class TestWriteWithEvents:
    """records.write_with_events: on PostgreSQL one CTE per kind of write; elsewhere the ORM.
    Either way the rows end as an ORM update would leave them."""

    def write(self, credential: Credential, **fence) -> records.Write:
        now = timezone.now()
        return records.Write(
            credential.pk, fence or {"lease_token": "", "version": credential.version},
            {"access_token": "new-access", "refresh_token": "new-refresh", "token_type": "MAC",
             "token_response": {"id_token": "y"}, "expires_at": now + timedelta(hours=1),
             "next_refresh_at": None, "failure_count": 0, "last_error": "",
             "version": credential.version + 1, "updated_at": now},
            CredentialEvent.Kind.REFRESHED, "Refreshed.", now)

    def test_writes_what_the_orm_reads_back_and_the_event(self, credential, connector):
        other = Credential.objects.create(connector=connector, external_id="other",
                                          access_token="a", refresh_token="r")
        writes = [self.write(credential), self.write(other)]
        assert records.write_with_events(writes) == {credential.pk, other.pk}
        for write in writes:
            row = Credential.objects.get(pk=write.credential_id)
            for name, value in write.values.items():
                assert getattr(row, name) == value, name
            [event] = row.events.all()
            assert (event.kind, event.detail, event.created_at) == ("refreshed", "Refreshed.",
                                                                    write.now)

    def test_a_fence_that_no_longer_holds_writes_nothing(self, credential):
        assert records.write_with_events([self.write(credential, version=99)]) == set()
        assert Credential.objects.get(pk=credential.pk).access_token == "old-access"
        assert CredentialEvent.objects.count() == 0

    def test_statements_whose_text_is_independent_of_their_number(self, credential,
                                                                  connector):
        from django.test.utils import CaptureQueriesContext

        others = [Credential.objects.create(connector=connector, external_id=f"e{i}",
                                            access_token="a", refresh_token="r")
                  for i in range(5)]
        written = []
        for group in ([credential], others[:2], others[2:]):
            with CaptureQueriesContext(connection) as queries:
                records.write_with_events([self.write(c) for c in group])
            written.append([q["sql"] for q in queries.captured_queries
                            if not q["sql"].startswith(("SAVEPOINT", "RELEASE", "BEGIN",
                                                        "COMMIT"))])
        if connection.vendor == "postgresql":
            # One CTE each: a VALUES row for one credential, arrays unnested for several,
            # whose text is the same for 2 or 3 rows. (What CaptureQueriesContext shows has
            # the values in; the text is what comes before them.)
            assert [len(statements) for statements in written] == [1, 1, 1]
            one, two, three = (statements[0] for statements in written)
            assert one.startswith("WITH v") and "VALUES (" in one and "unnest(" not in one
            assert two.split("unnest(")[0] == three.split("unnest(")[0]
        else:  # an UPDATE per row and one INSERT of the events, in one transaction
            assert [[statement.split(" ", 1)[0] for statement in statements]
                    for statements in written] == [["UPDATE", "INSERT"],
                                                   ["UPDATE"] * 2 + ["INSERT"],
                                                   ["UPDATE"] * 3 + ["INSERT"]]


class TestEncryptedValues:
    def test_reads_ciphertext_in_batches_and_rewrites_only_what_is_unchanged(self,
                                                                             connector):
        for i in range(5):
            Credential.objects.create(connector=connector, external_id=f"e{i}",
                                      access_token=f"a{i}", refresh_token=f"r{i}")
        field = Credential._meta.get_field("access_token")
        batches = list(sql.encrypted_values("default", Credential, field, 2))
        assert [len(batch) for batch in batches] == [2, 2, 1]
        pk, stored = batches[0][0]
        assert field.fernet.decrypt(bytes(stored)) == b"a0"
        fresh = field.fernet.encrypt(b"a0")
        assert sql.rewrite_encrypted_values("default", Credential, field,
                                            [(fresh, pk, bytes(stored))]) == 1
        assert sql.rewrite_encrypted_values("default", Credential, field,
                                            [(fresh, pk, bytes(stored))]) == 0  # changed
        assert Credential.objects.get(pk=pk).access_token == "a0"
