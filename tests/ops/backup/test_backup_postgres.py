"""MLflow on PostgreSQL: pg_dump into the backup, pg_restore back, secrets' table data left out, no password in argv."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


@pytest.fixture
def pg_database():
    """A throwaway database on the local PostgreSQL server; the test fails when there is none."""
    import psycopg2

    assert shutil.which("pg_dump") and shutil.which("pg_restore"), "PostgreSQL client tools are not installed"
    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=3, **PG)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"no PostgreSQL server on 127.0.0.1:5432 ({exc})")
    admin.autocommit = True
    name = f"ct_backup_test_{uuid.uuid4().hex[:10]}"
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, psycopg2
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_pg_dump_and_restore_round_trip(pg_database, tmp_path: Path):
    from include.ops.backup import mlflow_store

    name, psycopg2 = pg_database
    uri = f"postgresql+psycopg2://postgres:pg-pw-not-on-argv@127.0.0.1:5432/{name}"
    with psycopg2.connect(dbname=name, **PG) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE registered_model_aliases (name text, alias text, version int)")
        cur.execute("INSERT INTO registered_model_aliases VALUES ('m', 'champion', 2)")
        cur.execute("CREATE TABLE secrets (secret_id text, encrypted_value bytea)")
        cur.execute("INSERT INTO secrets VALUES ('s1', 'pg-gateway-secret'::bytea)")

    dump = tmp_path / "mlflow.pgdump"
    mlflow_store.dump_postgres(uri, dump)
    assert b"pg-gateway-secret" not in dump.read_bytes()
    assert mlflow_store.check_postgres_dump(dump) >= 2

    with psycopg2.connect(dbname=name, **PG) as conn, conn.cursor() as cur:
        cur.execute("UPDATE registered_model_aliases SET version = 7")
        cur.execute("CREATE TABLE stray (x int)")
    mlflow_store.restore_postgres(dump, uri)
    with psycopg2.connect(dbname=name, **PG) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM registered_model_aliases")
        assert cur.fetchall() == [(2,)]

    with pytest.raises(mlflow_store.BackupError, match="pg_restore failed") as excinfo:
        mlflow_store.restore_postgres(dump, uri.replace(name, name + "_missing"))
    assert "pg-pw-not-on-argv" not in str(excinfo.value)
