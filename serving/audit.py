"""Audit trail of every ``/v1/`` call, in SQLite (``settings.audit_db``): who, what model, how many patients, when.

One row per request: UTC time, API-key name (None when the key was missing or invalid), method and path, HTTP
status, served model version, number of patients, SHA-256 of the request body (so a disputed answer can be matched to
the exact input without storing the input), body size and latency. No patient field or identifier is ever written,
here or in any log.

:class:`AuditMiddleware` (pure ASGI) measures the call, hashes the body as the application reads it, captures the
status, and reads ``key_name`` / ``model_version`` / ``n_patients`` that the auth middleware and the handlers put into
``scope['nbrisk']``. SQLite runs in WAL mode with ``synchronous=NORMAL``: a commit costs no fsync, so the insert
adds well under a millisecond to a request, and a crash can lose at most the last few rows — an acceptable trade for
an audit trail of a research service (a regulated deployment would ship rows to an append-only store).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nbrisk.serving.store import private_file

logger = logging.getLogger("nbrisk.serving")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    key_name TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    model_version TEXT,
    n_patients INTEGER,
    body_sha256 TEXT,
    body_bytes INTEGER NOT NULL,
    latency_ms REAL NOT NULL
);
"""


@dataclass(frozen=True)
class AuditRecord:
    time: str
    key_name: str | None
    method: str
    path: str
    status: int
    model_version: str | None
    n_patients: int | None
    body_sha256: str | None
    body_bytes: int
    latency_ms: float


class AuditLog:
    """Append-only SQLite audit table. Thread-safe; the file and table are created on first use."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            private_file(self.path)
            conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def record(self, rec: AuditRecord) -> None:
        row = asdict(rec)
        with self._lock:
            self._connection().execute(
                f"INSERT INTO audit({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", tuple(row.values())
            )

    def recent(self, limit: int = 100) -> list[AuditRecord]:
        """The last ``limit`` rows, oldest first."""
        fields = list(AuditRecord.__dataclass_fields__)
        with self._lock:
            rows = (
                self._connection()
                .execute(f"SELECT {', '.join(fields)} FROM audit ORDER BY id DESC LIMIT ?", (int(limit),))
                .fetchall()
            )
        return [AuditRecord(*r) for r in reversed(rows)]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class AuditMiddleware:
    """ASGI middleware writing one :class:`AuditRecord` per HTTP request it wraps (the service wraps ``/v1``).

    Parameters
    ----------
    app : the wrapped ASGI app.
    audit_db : SQLite path; default ``nbrisk.settings.get_settings().audit_db`` (read at the first request).
    """

    def __init__(self, app: Any, audit_db: str | Path | None = None):
        self.app = app
        self._audit_db = audit_db
        self._log: AuditLog | None = None

    @property
    def log(self) -> AuditLog:
        # settings are re-read per request (microseconds) so that a changed NBRISK_AUDIT_DB is honoured
        path = self._audit_db
        if path is None:
            from nbrisk.settings import get_settings

            path = get_settings().audit_db
        if self._log is None or self._log.path != Path(path):
            self._log = AuditLog(path)
        return self._log

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        ctx = scope.setdefault("nbrisk", {})
        digest = hashlib.sha256()
        seen = {"bytes": 0, "complete": False, "status": 500}

        async def receive_hashed() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                digest.update(chunk)
                seen["bytes"] += len(chunk)
                if not message.get("more_body", False):
                    seen["complete"] = True
            return message

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive_hashed, send_status)
        finally:
            rec = AuditRecord(
                time=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                key_name=ctx.get("key_name"),
                method=str(scope.get("method", "")),
                path=str(scope.get("path", ""))[:200],
                status=int(seen["status"]),
                model_version=ctx.get("model_version"),
                n_patients=ctx.get("n_patients"),
                body_sha256=digest.hexdigest() if seen["complete"] else None,
                body_bytes=int(seen["bytes"]),
                latency_ms=round((time.perf_counter() - start) * 1000.0, 3),
            )
            try:
                self.log.record(rec)
            except Exception as exc:  # an unwritable audit file must be loud in the log but not fail the answer
                logger.error("audit record could not be written (%s)", type(exc).__name__)
