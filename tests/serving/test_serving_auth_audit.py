"""API keys (hash-only storage, revocation, bearer parsing, 401 middleware), the audit trail and `nbrisk keys`."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from typer.testing import CliRunner

from nbrisk.cli import app as cli_app
from nbrisk.core import NbriskError
from nbrisk.serving.audit import AuditLog, AuditMiddleware
from nbrisk.serving.auth import KEY_PREFIX, BearerAuthMiddleware, KeyStore, bearer_token, hash_key


def test_keys_are_random_and_stored_only_as_sha256(tmp_path):
    store = KeyStore(tmp_path / "keys.db")
    k1, k2 = store.create("alice"), store.create("bob")
    assert k1 != k2 and k1.startswith(KEY_PREFIX) and len(k1) == len(KEY_PREFIX) + 43  # 32 bytes, base64url
    raw = (tmp_path / "keys.db").read_bytes()
    for k in (k1, k2):
        assert k.encode() not in raw
    with sqlite3.connect(tmp_path / "keys.db") as conn:
        stored = {r[0] for r in conn.execute("SELECT key_sha256 FROM api_keys")}
    assert stored == {hashlib.sha256(k1.encode()).hexdigest(), hashlib.sha256(k2.encode()).hexdigest()}
    assert hash_key(k1) in stored


def test_key_and_audit_files_are_private(tmp_path):
    KeyStore(tmp_path / "state" / "keys.db").create("alice")
    AuditLog(tmp_path / "state" / "audit.db").recent()
    for f in ("keys.db", "audit.db"):
        assert (tmp_path / "state" / f).stat().st_mode & 0o077 == 0
    assert (tmp_path / "state").stat().st_mode & 0o077 == 0


def test_verify_revoke_and_names(tmp_path):
    store = KeyStore(tmp_path / "keys.db")
    assert store.verify("nbk_nothing") is None  # no database yet: nothing is valid
    key = store.create("alice")
    assert store.verify(key) == "alice"
    assert store.verify(key[:-1]) is None and store.verify(key + "x") is None and store.verify("") is None
    with pytest.raises(NbriskError, match="already exists"):
        store.create("alice")
    with pytest.raises(NbriskError, match="key name"):
        store.create("bad name!")
    store.revoke("alice")
    assert store.verify(key) is None and not store.has_active_keys()
    with pytest.raises(NbriskError, match="no active key"):
        store.revoke("alice")
    key2 = store.create("alice")  # the name can be reused once revoked; the old key stays dead
    assert store.verify(key2) == "alice" and store.verify(key) is None
    assert [k.active for k in store.list()] == [False, True]


@pytest.mark.parametrize(
    "value,expected",
    [
        (b"Bearer abc", "abc"),
        (b"bearer   abc  ", "abc"),
        (b"Basic abc", None),
        (b"Bearer", None),
        (b"Bearer ", None),
        (b"\xff\xfe", None),
        (b"Bearer " + b"a" * 1000, None),
    ],
)
def test_bearer_token_parsing(value, expected):
    assert bearer_token([(b"authorization", value)]) == expected
    assert bearer_token([(b"x-other", b"Bearer abc")]) is None


@pytest.fixture()
def guarded_app(tmp_path):
    async def hello(request):
        body = await request.body()
        request.scope["nbrisk"]["n_patients"] = 2
        request.scope["nbrisk"]["model_version"] = "7"
        return JSONResponse({"key": request.scope["nbrisk"].get("key_name"), "n": len(body)})

    inner = Starlette(routes=[Route("/v1/hello", hello, methods=["POST"])])
    store = KeyStore(tmp_path / "keys.db")
    key = store.create("tester")
    app = AuditMiddleware(BearerAuthMiddleware(inner, keys_db=tmp_path / "keys.db"), audit_db=tmp_path / "audit.db")
    return app, key, AuditLog(tmp_path / "audit.db")


def test_middleware_401_without_valid_key_and_audit_rows(guarded_app):
    app, key, audit = guarded_app
    with TestClient(app) as c:
        r = c.post("/v1/hello", content=b"secret-body")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"] == "unauthorized" and r.json()["detail"][0]["field"] == "Authorization"
        assert c.post("/v1/hello", headers={"Authorization": "Bearer nbk_wrong"}).status_code == 401
        r = c.post("/v1/hello", content=b"payload", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json() == {"key": "tester", "n": 7}
    rows = audit.recent()
    assert [(a.status, a.key_name) for a in rows] == [(401, None), (401, None), (200, "tester")]
    ok = rows[-1]
    assert ok.body_sha256 == hashlib.sha256(b"payload").hexdigest() and ok.body_bytes == 7
    assert ok.n_patients == 2 and ok.model_version == "7" and ok.path == "/v1/hello" and ok.latency_ms >= 0
    assert rows[0].body_sha256 is None  # refused before the body was read: nothing hashed


def test_cli_keys_create_list_revoke(tmp_path, monkeypatch):
    monkeypatch.setenv("NBRISK_KEYS_DB", str(tmp_path / "keys.db"))
    runner = CliRunner()
    r = runner.invoke(cli_app, ["keys", "create", "ward-7"])
    assert r.exit_code == 0, r.output
    key = r.output.strip().splitlines()[-1]
    assert KeyStore(tmp_path / "keys.db").verify(key) == "ward-7"
    r = runner.invoke(cli_app, ["keys", "list"])
    assert r.exit_code == 0 and "ward-7" in r.output and "active" in r.output and key not in r.output
    r = runner.invoke(cli_app, ["keys", "create", "ward-7"])
    assert r.exit_code != 0 and "already exists" in r.output
    assert runner.invoke(cli_app, ["keys", "revoke", "ward-7"]).exit_code == 0
    assert KeyStore(tmp_path / "keys.db").verify(key) is None
    r = runner.invoke(cli_app, ["keys", "revoke", "nobody"])
    assert r.exit_code != 0 and "no active key" in r.output
