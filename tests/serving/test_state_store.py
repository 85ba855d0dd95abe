"""The service's state store on SQLite: schema created and versioned by nbrisk, an existing pre-versioning key file
adopted, a newer schema refused, a key created through one store honoured by another at once."""

from __future__ import annotations

import sqlite3

import pytest

from nbrisk.core import NbriskError
from nbrisk.serving.auth import KEY_MIGRATIONS, KeyStore
from nbrisk.serving.store import Database, Migration, is_database_url


def test_schema_is_created_and_versioned(tmp_path):
    store = KeyStore(tmp_path / "keys.db")
    store.create("a")
    assert store.db.schema_version() == len(KEY_MIGRATIONS)
    with sqlite3.connect(tmp_path / "keys.db") as conn:
        assert conn.execute("SELECT version FROM nbrisk_schema WHERE component = 'keys'").fetchone() == (1,)


def test_a_key_file_from_before_versioning_is_adopted(tmp_path):
    path = tmp_path / "keys.db"
    with sqlite3.connect(path) as conn:  # the unversioned schema of earlier releases, with one key in it
        conn.executescript(KEY_MIGRATIONS[0].sqlite)
        conn.execute("INSERT INTO api_keys(name, key_sha256, created_at) VALUES ('old', 'x', '2026-01-01')")
    store = KeyStore(path)
    assert [k.name for k in store.list()] == ["old"]
    assert store.db.schema_version() == 1


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "state.db"
    two = [Migration("CREATE TABLE a (x INTEGER)", "-"), Migration("CREATE TABLE b (x INTEGER)", "-")]
    db = Database(path, "demo", two)
    with db.lock:
        db.connection()
    db.close()
    older = Database(path, "demo", two[:1])
    with pytest.raises(NbriskError, match="newer than this nbrisk knows"), older.lock:
        older.connection()


def test_migrations_apply_in_order_once(tmp_path):
    path = tmp_path / "state.db"
    steps = [Migration("CREATE TABLE t (x INTEGER)", "-")]
    db = Database(path, "demo", steps)
    with db.lock:
        db.execute("INSERT INTO t VALUES (?)", (1,))
    db.close()
    steps.append(Migration("ALTER TABLE t ADD COLUMN y INTEGER; UPDATE t SET y = 2", "-"))
    db = Database(path, "demo", steps)
    with db.lock:
        assert db.execute("SELECT x, y FROM t")[0] == [(1, 2)]
    assert db.schema_version() == 2


def test_two_stores_on_one_file_see_each_other_at_once(tmp_path):
    one, two = KeyStore(tmp_path / "keys.db"), KeyStore(tmp_path / "keys.db")
    key = one.create("shared")
    assert two.verify(key) == "shared"
    two.revoke("shared")
    assert one.verify(key) is None


def test_database_url_detection():
    assert is_database_url("postgresql+psycopg2://u@127.0.0.1:5432/db")
    assert not is_database_url("/var/lib/nbrisk/keys.db")


def test_an_audit_file_of_the_first_schema_is_migrated_with_its_rows(tmp_path):
    from nbrisk.serving.audit import AUDIT_MIGRATIONS, AuditLog

    path = tmp_path / "audit.db"
    with sqlite3.connect(path) as conn:  # rows written after the answer: status NOT NULL, no version table
        conn.executescript(AUDIT_MIGRATIONS[0].sqlite)
        conn.execute(
            "INSERT INTO audit(time, method, path, status, body_bytes, latency_ms) "
            "VALUES ('2026-01-01T00:00:00', 'POST', '/v1/risk', 200, 10, 5.0)"
        )
    log = AuditLog(path)
    row = log.begin("2026-01-02T00:00:00", "POST", "/v1/risk")  # a NULL status is now allowed
    assert [r.status for r in log.recent()] == [200, None]
    log.finish(row, status=201)
    assert [r.status for r in log.recent()] == [200, 201]
    assert log.db.schema_version() == len(AUDIT_MIGRATIONS) == 2
