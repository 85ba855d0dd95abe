"""API keys for the risk service: created once, stored only as hashes, checked in constant time.

A key is ``nbk_`` followed by 32 random bytes (``secrets.token_bytes``) in URL-safe base64. Only the SHA-256 of the
whole key string is stored (SQLite at ``settings.keys_db``, or the PostgreSQL database of ``NBRISK_DATABASE_URL``),
with the key's name, creation and revocation times.
A 256-bit random secret needs no slow password hash: guessing it is hopeless, and SHA-256 keeps the check fast on
the request path. Keys are compared with :func:`hmac.compare_digest` against every active hash, so that neither the
comparison nor the loop stops early on a near match.

:class:`BearerAuthMiddleware` (pure ASGI) guards everything it wraps (the service mounts it on ``/v1``): a request
without ``Authorization: Bearer <key>`` for an active key gets ``401`` with ``WWW-Authenticate: Bearer`` and a JSON
error; probes, metrics and the OpenAPI document are outside ``/v1`` and stay open.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbrisk.core import NbriskError
from nbrisk.serving import limits
from nbrisk.serving.store import Database, Migration, is_database_url

KEY_PREFIX = "nbk_"
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
#: Longest Authorization header value looked at (a real key is 47 characters).
_MAX_TOKEN_CHARS = 256

#: Schema steps of the key store (see :mod:`nbrisk.serving.store`); append, never edit a released step.
KEY_MIGRATIONS = (
    Migration(
        sqlite="""
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    key_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys(name) WHERE revoked_at IS NULL
""",
        postgresql="""
CREATE TABLE IF NOT EXISTS api_keys (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    key_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys(name) WHERE revoked_at IS NULL
""",
    ),
)


@dataclass(frozen=True)
class KeyInfo:
    """What ``nbrisk keys list`` shows: never the key, never its hash."""

    name: str
    created_at: str
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(key: str) -> str:
    """SHA-256 hex digest of a key string (what the store keeps)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh key: ``nbk_`` + 32 random bytes, URL-safe base64 without padding (43 characters)."""
    return KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class KeyStore:
    """Store of API-key hashes: a SQLite file (default) or the PostgreSQL database shared by service replicas.

    Thread-safe (one connection, one lock); a SQLite file is created on first write. Every read goes to the
    database, so a key created or revoked through one replica is honoured by every other at once.

    Parameters
    ----------
    target : SQLite file or PostgreSQL URL (``nbrisk.settings.get_settings().keys_store``).
    """

    def __init__(self, target: str | Path):
        self.db = Database(target, "keys", KEY_MIGRATIONS)
        self.path = self.db.target
        self._lock = self.db.lock

    def _connect(self, create: bool) -> Database | None:
        if not create and not self.db.exists():
            return None
        self.db.connection()
        return self.db

    def close(self) -> None:
        self.db.close()

    # -- administration (nbrisk keys ...) ---------------------------------------------------------------------
    def create(self, name: str) -> str:
        """Create a key named ``name`` and return it (the only time it is ever visible)."""
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise NbriskError("key name must be 1–64 characters of letters, digits, '_', '.', '-'")
        key = new_key()
        with self._lock:
            conn = self._connect(create=True)
            assert conn is not None
            try:
                conn.execute(
                    "INSERT INTO api_keys(name, key_sha256, created_at) VALUES (?, ?, ?)", (name, hash_key(key), _now())
                )
            except conn.integrity_errors:
                raise NbriskError(f"an active key named {name!r} already exists; revoke it first") from None
        return key

    def list(self) -> list[KeyInfo]:
        with self._lock:
            conn = self._connect(create=False)
            if conn is None:
                return []
            rows, _ = conn.execute("SELECT name, created_at, revoked_at FROM api_keys ORDER BY id")
        return [KeyInfo(*r) for r in rows]

    def revoke(self, name: str) -> None:
        with self._lock:
            conn = self._connect(create=False)
            n = 0
            if conn is not None:
                _, n = conn.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (_now(), name)
                )
        if n == 0:
            raise NbriskError(f"no active key named {name!r}")

    def has_active_keys(self) -> bool:
        return any(k.active for k in self.list())

    # -- request path --------------------------------------------------------------------------------------------
    def verify(self, key: str) -> str | None:
        """Name of the active key equal to ``key``, or None. Constant-time comparison against every active hash.

        Reads the store on every call (well under a millisecond), so a revocation takes effect at once.
        """
        digest = hash_key(key)
        with self._lock:
            conn = self._connect(create=False)
            if conn is None:
                return None
            rows, _ = conn.execute("SELECT name, key_sha256 FROM api_keys WHERE revoked_at IS NULL")
        found = None
        for name, stored in rows:
            if hmac.compare_digest(stored, digest) and found is None:
                found = name
        return found


_stores: dict[str | Path, KeyStore] = {}


def key_store(path: str | Path | None = None) -> KeyStore:
    """The key store at ``path`` (a SQLite file or a PostgreSQL URL; default: ``settings.keys_store``, re-read on
    every call so that a changed ``NBRISK_KEYS_DB`` / ``NBRISK_DATABASE_URL`` is honoured), one instance per store
    and process. The one place the service gets its store."""
    if path is None:
        from nbrisk.settings import get_settings

        path = get_settings().keys_store
    path = path if isinstance(path, str) and is_database_url(path) else Path(path)
    store = _stores.get(path)
    if store is None:
        store = _stores.setdefault(path, KeyStore(path))
    return store


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header in raw ASGI headers, or None."""
    for k, v in headers:
        if k.lower() == b"authorization":
            if len(v) > _MAX_TOKEN_CHARS + 7:
                return None
            try:
                text = v.decode("ascii").strip()
            except UnicodeDecodeError:
                return None
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None
            return token.strip()
    return None


async def send_json(send: Any, status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Send a complete JSON answer from ASGI middleware."""
    data = json.dumps(body).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": data})


class BearerAuthMiddleware:
    """ASGI middleware: 401 for every HTTP request without a valid bearer key; sets ``scope['nbrisk']['key_name']``;
    429 with ``Retry-After`` when the key is over its rate limit (:mod:`nbrisk.serving.limits`, off by default).

    Parameters
    ----------
    app : the wrapped ASGI app (the ``/v1`` API).
    keys_db : the key store (SQLite path or PostgreSQL URL); default ``get_settings().keys_store`` (read per request).
    """

    def __init__(self, app: Any, keys_db: str | Path | None = None):
        self.app = app
        self._keys_db = keys_db

    @property
    def store(self) -> KeyStore:
        return key_store(self._keys_db)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope.get("headers", []))
        name = self.store.verify(token) if token else None
        if name is None:
            await send_json(
                send,
                401,
                {
                    "error": "unauthorized",
                    "detail": [
                        {
                            "patient_index": None,
                            "field": "Authorization",
                            "message": (
                                "send 'Authorization: Bearer <key>' with a valid API key (nbrisk keys create NAME)"
                            ),
                        }
                    ],
                },
                headers=[(b"www-authenticate", b'Bearer realm="nbrisk"')],
            )
            return
        scope.setdefault("nbrisk", {})["key_name"] = name
        wait = limits.current().rate.check(name)
        if wait:
            err = limits.TooManyRequests(wait)
            await send_json(send, err.status_code, err.body(), headers=[(b"retry-after", str(wait).encode())])
            return
        await self.app(scope, receive, send)
