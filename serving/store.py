"""The service's own state database (API-key hashes, the audit trail): a SQLite file by default, or a PostgreSQL
database shared by several service replicas (``NBRISK_DATABASE_URL=postgresql+psycopg2://user@host:port/db``).

nbrisk creates and migrates its schema itself, never by hand: each component (``keys``, ``audit``) has an ordered
list of :class:`Migration` steps, and the table ``nbrisk_schema(component, version)`` records how many are applied.
Opening a store applies the missing steps in one transaction, under a lock (PostgreSQL: a transaction-level
advisory lock; SQLite: ``BEGIN IMMEDIATE``), so two replicas starting together cannot both migrate. A database with
a NEWER schema than this code knows is refused with a clear message instead of being written to.

SQL is written once with ``?`` placeholders; :class:`Database` translates them to psycopg2's ``%s``.
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbrisk.core import NbriskError

POSTGRES_SCHEMES = ("postgresql+psycopg2://", "postgresql://", "postgres://")
_SCHEMA_TABLE = "CREATE TABLE IF NOT EXISTS nbrisk_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"


@dataclass(frozen=True)
class Migration:
    """One schema step: the SQL for each dialect (statements separated by ``;``)."""

    sqlite: str
    postgresql: str


def is_database_url(target: str | Path) -> bool:
    """True for a PostgreSQL URL (``postgresql+psycopg2://...``), False for a SQLite file path."""
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def _postgres_dsn(url: str) -> str:
    """psycopg2 accepts ``postgresql://`` URLs; drop SQLAlchemy's ``+psycopg2`` driver suffix."""
    for scheme in POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql://" + url[len(scheme) :]
    raise ValueError(url)


def private_file(path: Path) -> None:
    """Create ``path`` (and its folder) readable by the owner only, before SQLite opens it: key hashes and audit
    rows are nobody else's business on a shared machine."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        path.touch(mode=0o600)
    else:
        path.chmod(0o600)


class Database:
    """One connection (thread-safe through one lock) to a SQLite file or a PostgreSQL database.

    Parameters
    ----------
    target : a SQLite file path, or a PostgreSQL URL (see :func:`is_database_url`).
    component : name of the schema this user owns (``"keys"``, ``"audit"``).
    migrations : that component's ordered schema steps.
    sqlite_pragmas : PRAGMA statements run on every new SQLite connection (e.g. WAL).
    """

    def __init__(
        self,
        target: str | Path,
        component: str,
        migrations: Sequence[Migration],
        sqlite_pragmas: Sequence[str] = ("PRAGMA journal_mode=WAL",),
    ):
        self.postgres = is_database_url(target)
        self.target = str(target) if self.postgres else Path(target)
        self.component = component
        self.migrations = tuple(migrations)
        self.sqlite_pragmas = tuple(sqlite_pragmas)
        self.lock = threading.Lock()
        self._conn: Any = None

    @property
    def kind(self) -> str:
        return "postgresql" if self.postgres else "sqlite"

    @property
    def integrity_errors(self) -> tuple[type[BaseException], ...]:
        """Exception types of a violated constraint (UNIQUE, ...) in either dialect."""
        if self.postgres:
            import psycopg2

            return (psycopg2.IntegrityError,)
        return (sqlite3.IntegrityError,)

    def exists(self) -> bool:
        """False only for a SQLite file not created yet (reads of an absent store find nothing)."""
        return self.postgres or Path(self.target).exists()

    # -- connection ------------------------------------------------------------------------------------------------
    def connection(self) -> Any:
        """The open connection (created, and the schema migrated, on first use). Call with ``self.lock`` held."""
        if self._conn is None:
            if self.postgres:
                import psycopg2

                try:
                    conn = psycopg2.connect(_postgres_dsn(str(self.target)), connect_timeout=10)
                except psycopg2.OperationalError as exc:
                    raise NbriskError(f"cannot reach the state database: {str(exc).strip().splitlines()[0]}") from None
                conn.autocommit = True
            else:
                private_file(Path(self.target))
                conn = sqlite3.connect(self.target, timeout=10, check_same_thread=False, isolation_level=None)
                for pragma in self.sqlite_pragmas:
                    conn.execute(pragma)
            self._migrate(conn)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[tuple], int]:
        """Run one statement (``?`` placeholders); returns (rows fetched, rowcount). Call with ``self.lock`` held.

        A PostgreSQL connection lost since the last call (server restart) is reopened once and the statement
        retried.
        """
        conn = self.connection()
        try:
            return self._run(conn, sql, params)
        except Exception as exc:
            if not self.postgres or not _connection_lost(exc, conn):
                raise
            self._conn = None
            return self._run(self.connection(), sql, params)

    def _run(self, conn: Any, sql: str, params: Sequence[Any]) -> tuple[list[tuple], int]:
        if self.postgres:
            with conn.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), tuple(params))
                rows = cur.fetchall() if cur.description is not None else []
                return rows, cur.rowcount
        cur = conn.execute(sql, tuple(params))
        return cur.fetchall(), cur.rowcount

    # -- schema ----------------------------------------------------------------------------------------------------
    def _migrate(self, conn: Any) -> None:
        if self.postgres:
            conn.autocommit = False
            try:
                with conn.cursor() as cur:
                    # one lock id per component: replicas starting together migrate one after the other
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(f"nbrisk:{self.component}".encode()),))
                    cur.execute(_SCHEMA_TABLE)
                    cur.execute("SELECT version FROM nbrisk_schema WHERE component = %s", (self.component,))
                    row = cur.fetchone()
                    done = self._check_version(row[0] if row else 0)
                    for step in self.migrations[done:]:
                        for statement in _statements(step.postgresql):
                            cur.execute(statement)
                    self._record_version(cur, "%s", row is not None)
                conn.commit()
            except Exception:
                conn.rollback()
                raise
            finally:
                conn.autocommit = True
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_SCHEMA_TABLE)
            row = conn.execute("SELECT version FROM nbrisk_schema WHERE component = ?", (self.component,)).fetchone()
            done = self._check_version(row[0] if row else 0)
            for step in self.migrations[done:]:
                for statement in _statements(step.sqlite):
                    conn.execute(statement)
            self._record_version(conn, "?", row is not None)
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise

    def _check_version(self, version: int) -> int:
        if version > len(self.migrations):
            raise NbriskError(
                f"the {self.component} store has schema version {version}, newer than this nbrisk knows "
                f"({len(self.migrations)}): upgrade nbrisk"
            )
        return version

    def _record_version(self, cur: Any, mark: str, known: bool) -> None:
        if known:
            sql = f"UPDATE nbrisk_schema SET version = {mark} WHERE component = {mark}"
            cur.execute(sql, (len(self.migrations), self.component))
        else:
            sql = f"INSERT INTO nbrisk_schema(component, version) VALUES ({mark}, {mark})"
            cur.execute(sql, (self.component, len(self.migrations)))

    def schema_version(self) -> int:
        """How many migration steps of this component the database has (0 if none)."""
        with self.lock:
            rows, _ = self.execute("SELECT version FROM nbrisk_schema WHERE component = ?", (self.component,))
        return int(rows[0][0]) if rows else 0


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _connection_lost(exc: BaseException, conn: Any) -> bool:
    import psycopg2

    return isinstance(exc, psycopg2.InterfaceError | psycopg2.OperationalError) and bool(getattr(conn, "closed", 0))
