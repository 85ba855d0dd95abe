"""Audit trail of every ``/v1/`` call, in SQLite (``settings.audit_db``) or the PostgreSQL database of
``NBRISK_DATABASE_URL`` (shared by service replicas): who, what model, how many patients, when.

One row per request: UTC time, API-key name (None when the key was missing or invalid), method and path, HTTP
status, served model version, number of patients, SHA-256 of the request body (so a disputed answer can be matched to
the exact input without storing the input), body size and latency. No patient field or identifier is ever written,
here or in any log.

The row is written *before* the answer: :class:`AuditMiddleware` inserts it when the request arrives (status NULL =
"no answer yet") and fills in status, key, model version, patient count, body hash and latency when the answer
starts — before its first byte is sent. So every answer a client received has its row, and a worker killed while
computing one leaves a row with a NULL status instead of nothing. A client that disconnects before any answer is
recorded as 499 (nginx's "client closed request"), one whose body did not arrive in time as 408; neither is a 500.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a commit costs no fsync (each write adds well under a
millisecond), and a killed process loses nothing committed (the WAL is in the operating system's cache); only a
power cut can lose the last rows — an acceptable trade for the audit trail of a research service (a regulated
deployment would ship rows to an append-only store). Storage access is the three methods
:meth:`AuditLog.begin`, :meth:`AuditLog.finish` and :meth:`AuditLog.recent`, so another backend replaces only them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nbrisk.serving.store import Database, Migration

logger = logging.getLogger("nbrisk.serving")


def _table(name: str, id_type: str, status: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {name} (
    id {id_type},
    time TEXT NOT NULL,
    key_name TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER{status},
    model_version TEXT,
    n_patients INTEGER,
    body_sha256 TEXT,
    body_bytes INTEGER NOT NULL,
    latency_ms REAL NOT NULL
)"""


_COLUMNS = "time, key_name, method, path, status, model_version, n_patients, body_sha256, body_bytes, latency_ms"

#: Schema steps of the audit trail (see :mod:`nbrisk.serving.store`); append, never edit a released step.
#: 1: the first table (``status NOT NULL``: rows were written after the answer). 2: ``status`` may be NULL, since
#: rows are written before the answer (SQLite cannot drop a NOT NULL constraint: the table is rebuilt).
AUDIT_MIGRATIONS = (
    Migration(
        sqlite=_table("audit", "INTEGER PRIMARY KEY AUTOINCREMENT", " NOT NULL"),
        postgresql=_table("audit", "BIGSERIAL PRIMARY KEY", " NOT NULL"),
    ),
    Migration(
        sqlite=(
            "ALTER TABLE audit RENAME TO audit_old; "
            + _table("audit", "INTEGER PRIMARY KEY AUTOINCREMENT", "")
            + f"; INSERT INTO audit(id, {_COLUMNS}) SELECT id, {_COLUMNS} FROM audit_old; DROP TABLE audit_old"
        ),
        postgresql="ALTER TABLE audit ALTER COLUMN status DROP NOT NULL",
    ),
)


_UPDATABLE = {"status", "key_name", "model_version", "n_patients", "body_sha256", "body_bytes", "latency_ms"}


@dataclass(frozen=True)
class AuditRecord:
    time: str
    key_name: str | None
    method: str
    path: str
    status: int | None
    model_version: str | None
    n_patients: int | None
    body_sha256: str | None
    body_bytes: int
    latency_ms: float


class AuditLog:
    """Append-only audit table in a SQLite file (default) or the PostgreSQL database shared by service replicas.
    Thread-safe; the file and table are created (and migrated) on first use."""

    def __init__(self, path: str | Path):
        self.db = Database(
            path, "audit", AUDIT_MIGRATIONS, sqlite_pragmas=("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")
        )
        self.path = self.db.target
        self._lock = self.db.lock

    def record(self, rec: AuditRecord) -> int:
        """Insert one row; returns its id."""
        row = asdict(rec)
        with self._lock:
            rows, _ = self.db.execute(
                f"INSERT INTO audit({', '.join(row)}) VALUES ({', '.join('?' for _ in row)}) RETURNING id",
                tuple(row.values()),
            )
            return int(rows[0][0])

    def begin(self, time: str, method: str, path: str) -> int:
        """The row of a request that has just arrived (status NULL until :meth:`finish`); returns its id."""
        return self.record(AuditRecord(time, None, method, path, None, None, None, None, 0, 0.0))

    def finish(self, row_id: int, **fields: Any) -> None:
        """Fill in the row ``row_id`` (any of status, key_name, model_version, n_patients, body_sha256,
        body_bytes, latency_ms)."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not audit fields: {sorted(unknown)}")
        names = sorted(fields)
        with self._lock:
            self.db.execute(
                f"UPDATE audit SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
                (*(fields[n] for n in names), int(row_id)),
            )

    def recent(self, limit: int = 100) -> list[AuditRecord]:
        """The last ``limit`` rows, oldest first."""
        fields = list(AuditRecord.__dataclass_fields__)
        with self._lock:
            rows, _ = self.db.execute(f"SELECT {', '.join(fields)} FROM audit ORDER BY id DESC LIMIT ?", (int(limit),))
        return [AuditRecord(*r) for r in reversed(rows)]

    def close(self) -> None:
        self.db.close()


class AuditMiddleware:
    """ASGI middleware writing one :class:`AuditRecord` per HTTP request it wraps (the service wraps ``/v1``).

    Parameters
    ----------
    app : the wrapped ASGI app.
    audit_db : SQLite path or PostgreSQL URL; default ``get_settings().audit_store`` (read per request).
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

            path = get_settings().audit_store
        if self._log is None or str(self._log.path) != str(path):
            self._log = AuditLog(path)
        return self._log

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        ctx = scope.setdefault("nbrisk", {})
        digest = hashlib.sha256()
        seen: dict[str, Any] = {"bytes": 0, "complete": False, "status": None}
        log = self.log
        try:
            row = log.begin(
                dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                str(scope.get("method", ""))[:16],
                _printable(str(scope.get("path", "")))[:200],
            )
        except Exception as exc:  # an unwritable audit file must be loud in the log but not fail the answer
            logger.error("audit record could not be written (%s)", type(exc).__name__)
            row = None

        def fill(status: int) -> None:
            seen["status"] = status
            if row is None:
                return
            try:
                log.finish(
                    row,
                    status=status,
                    key_name=ctx.get("key_name"),
                    model_version=ctx.get("model_version"),
                    n_patients=ctx.get("n_patients"),
                    body_sha256=digest.hexdigest() if seen["complete"] else None,
                    body_bytes=int(seen["bytes"]),
                    latency_ms=round((time.perf_counter() - start) * 1000.0, 3),
                )
            except Exception as exc:
                logger.error("audit record could not be completed (%s)", type(exc).__name__)

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
                fill(int(message["status"]))  # the row is complete before the first byte of the answer leaves
            await send(message)

        try:
            await self.app(scope, receive_hashed, send_status)
        finally:
            if seen["status"] is None:  # no answer was started: the client left, or the app failed without one
                fill(int(ctx.get("unanswered_status", 499)))


def _printable(text: str) -> str:
    """``text`` with control characters and unpaired surrogates escaped (a path is client-controlled)."""
    if text.isprintable() and text.isascii():
        return text
    return "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else f"\\x{ord(c):02x}" for c in text)
