"""Key rotation on many credentials (PostgreSQL by default), measured against a baseline.

    python bench/rotate_keys.py                 # 100,000 credentials
    python bench/rotate_keys.py --credentials 5000 --database sqlite

Writes N credentials (three encrypted values each) under an old key, rotates to a new key with
the same code as ``manage.py alloy_oauth_rotate_keys``, drops the old key and decrypts every
value again. Prints values re-encrypted per second, against a bare loop of
``MultiFernet.rotate`` over the same tokens in the same run (no database), and the process's
peak memory before and after. Uses a throw-away database.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from throwaway_db import throwaway_database

OLD = "bench-old-key-0123456789abcdef0123456789"
NEW = "bench-new-key-9876543210fedcba9876543210"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--credentials", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    database_url = (
        os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/").rstrip("/")
        + "/alloy_oauth_rotate_bench" if args.database == "postgres"
        else "sqlite:////tmp/alloy_oauth_rotate_bench.sqlite3")
    with throwaway_database(database_url) as connection:
        from cryptography.fernet import Fernet, MultiFernet
        from django.conf import settings

        from alloy_oauth import keys
        from alloy_oauth.models import Connector, Credential

        settings.FERNET_KEYS = [OLD]
        keys.reload_keys()
        connector = Connector.objects.create(name="Bench", slug="bench", client_id="c",
                                             auth_url="https://p.example/a",
                                             token_url="https://p.example/t")
        started = time.perf_counter()
        batch = []
        for number in range(args.credentials):
            batch.append(Credential(connector=connector, external_id=f"user-{number}",
                                    access_token=f"access-{number}",
                                    refresh_token=f"refresh-{number}",
                                    token_response={"n": number}))
            if len(batch) == 2000:
                Credential.objects.bulk_create(batch)
                batch = []
        Credential.objects.bulk_create(batch)
        print(f"{args.credentials} credentials written under the old key "
              f"in {time.perf_counter() - started:.1f} s ({connection.vendor})")

        settings.FERNET_KEYS = [NEW, OLD]
        keys.reload_keys()
        field = Credential._meta.get_field("access_token")
        every = MultiFernet([Fernet(key) for key in field.fernet_keys])
        sample = _raw_tokens(connection, args.credentials)
        started = time.perf_counter()
        for token in sample:
            every.rotate(token)
        bare = len(sample) / (time.perf_counter() - started)

        before = peak_mb()
        started = time.perf_counter()
        reports = keys.scan(rotate=True, batch_size=args.batch_size)
        elapsed = time.perf_counter() - started
        rotated = sum(report.rotated for report in reports)
        after = peak_mb()

        settings.FERNET_KEYS = [NEW]  # drop the old key
        keys.reload_keys()
        started = time.perf_counter()
        for credential in Credential.objects.iterator(chunk_size=2000):
            assert credential.access_token == f"access-{credential.external_id[5:]}"
            assert credential.refresh_token == f"refresh-{credential.external_id[5:]}"
            assert credential.token_response == {"n": int(credential.external_id[5:])}
        verify = time.perf_counter() - started

        rate = rotated / elapsed
        print(f"rotated {rotated} values in {elapsed:.1f} s: {rate:,.0f} values/s "
              f"({rate / 3:,.0f} credentials/s); bare MultiFernet.rotate loop: {bare:,.0f}/s; "
              f"ratio {rate / bare:.2f}")
        print(f"peak memory: {before:.0f} MB before the rotation, {after:.0f} MB after")
        print(f"with the old key dropped, all {args.credentials} credentials decrypted again "
              f"in {verify:.1f} s")


def _raw_tokens(connection, limit: int) -> list[bytes]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token FROM alloy_oauth_credential LIMIT %s", [limit])
        return [bytes(row[0]) for row in cursor.fetchall()]


if __name__ == "__main__":
    main()
