"""Keys and audit in one PostgreSQL database shared by replicas (``NBRISK_DATABASE_URL``): schema created and
versioned by nbrisk, a key created or revoked through one store honoured by another at once, both write the audit.
Slow: a real PostgreSQL server."""

from __future__ import annotations

import pytest

from nbrisk.serving.audit import AUDIT_MIGRATIONS, AuditLog
from nbrisk.serving.auth import KEY_MIGRATIONS, KeyStore

pytestmark = pytest.mark.slow


def test_two_replicas_share_keys_and_audit(postgres_server):
    url = postgres_server.create_database("nbrisk_state")
    one, two = KeyStore(url), KeyStore(url)
    key = one.create("ward")
    assert two.verify(key) == "ward"
    two.revoke("ward")
    assert one.verify(key) is None  # revoked on one replica, refused by the other at once
    assert [k.name for k in one.list()] == ["ward"] and not one.list()[0].active
    assert one.db.schema_version() == len(KEY_MIGRATIONS)

    log_one, log_two = AuditLog(url), AuditLog(url)
    a = log_one.begin("2026-12-01T00:00:00", "POST", "/v1/risk")
    b = log_two.begin("2026-12-01T00:00:01", "POST", "/v1/risk")
    log_two.finish(b, status=200, n_patients=1)
    assert [(r.status, r.n_patients) for r in log_one.recent()] == [(None, None), (200, 1)]
    log_one.finish(a, status=422)
    assert [r.status for r in log_two.recent()] == [422, 200]
    assert log_one.db.schema_version() == len(AUDIT_MIGRATIONS)
    for store in (one, two, log_one, log_two):
        store.close()


def test_a_dropped_connection_is_reopened(postgres_server):
    import psycopg2

    url = postgres_server.create_database("nbrisk_reconnect")
    store = KeyStore(url)
    key = store.create("a")
    # the server ends every other session (as a restart or an idle timeout would)
    admin = psycopg2.connect(host=postgres_server.host, port=postgres_server.port, user=postgres_server.user,
                             dbname="postgres")  # fmt: skip
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            ("nbrisk_reconnect",),
        )
    admin.close()
    assert store.verify(key) == "a"
