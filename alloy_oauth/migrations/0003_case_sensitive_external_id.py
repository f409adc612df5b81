"""MySQL/MariaDB compare with the column's collation, by default blind to case and (PAD
SPACE) to trailing spaces: 'cust-1' would find, and be refused beside, 'CUST-1'. Give
``external_id`` (and ``external_key``) a binary collation there, as in 0001 on every other
database. The collation lives in the database only: a later migration that alters
``external_id`` must set it again.
"""

from django.db import migrations


def case_sensitive_external_id(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "mysql":
        return
    collation = "utf8mb4_nopad_bin" if connection.mysql_is_mariadb else "utf8mb4_0900_bin"
    table = schema_editor.quote_name("alloy_oauth_credential")
    # CHARACTER SET too: a table made with utf8 (utf8mb3) takes no utf8mb4 collation as is.
    column = f"varchar(255) CHARACTER SET utf8mb4 COLLATE {collation}"
    schema_editor.execute(
        f"ALTER TABLE {table} MODIFY external_id {column} NOT NULL,"
        f" MODIFY external_key {column} GENERATED ALWAYS AS (NULLIF(external_id, '')) STORED"
    )


class Migration(migrations.Migration):

    dependencies = [("alloy_oauth", "0002_credential_external_key")]

    operations = [
        # MySQL refuses DDL inside the transaction RunPython would open.
        migrations.RunPython(case_sensitive_external_id, migrations.RunPython.noop,
                             atomic=False),
    ]
