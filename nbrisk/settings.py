"""Settings read when needed (never at import time): tracking URI, local state paths, service limits.

Every value can be overridden by an environment variable, so tests point everything at a temporary folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    tracking_uri: str
    registry_uri: str
    artifact_root: Path
    keys_db: Path
    audit_db: Path
    model_uri: str
    registered_model_name: str = "nbrisk"
    #: ``NBRISK_DATABASE_URL``: a PostgreSQL database (``postgresql+psycopg2://...``) for API keys and the audit
    #: trail, shared by service replicas; None = the SQLite files ``keys_db`` and ``audit_db``.
    database_url: str | None = None

    @property
    def keys_store(self) -> str | Path:
        """Where API-key hashes live: the shared database when configured, else the SQLite file."""
        return self.database_url or self.keys_db

    @property
    def audit_store(self) -> str | Path:
        """Where audit rows go: the shared database when configured, else the SQLite file."""
        return self.database_url or self.audit_db


def get_settings() -> Settings:
    """Resolve settings from the environment.

    ``NBRISK_HOME`` (default: current directory) holds ``mlruns/`` (MLflow SQLite store and artifacts) and
    ``.nbrisk/`` (API-key hashes and the audit trail). ``MLFLOW_TRACKING_URI`` overrides the tracking store,
    ``NBRISK_MODEL_URI`` the served model (default ``models:/nbrisk@champion``), ``NBRISK_DATABASE_URL`` the
    database of API keys and audit (default: SQLite files under ``.nbrisk/``).
    """
    home = Path(os.environ.get("NBRISK_HOME", os.getcwd())).resolve()
    mlruns = home / "mlruns"
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{mlruns / 'mlflow.db'}"
    registry = os.environ.get("MLFLOW_REGISTRY_URI") or tracking
    state = home / ".nbrisk"
    return Settings(
        home=home,
        tracking_uri=tracking,
        registry_uri=registry,
        artifact_root=Path(os.environ.get("NBRISK_ARTIFACT_ROOT", mlruns / "artifacts")),
        keys_db=Path(os.environ.get("NBRISK_KEYS_DB", state / "keys.db")),
        audit_db=Path(os.environ.get("NBRISK_AUDIT_DB", state / "audit.db")),
        model_uri=os.environ.get("NBRISK_MODEL_URI", "models:/nbrisk@champion"),
        database_url=os.environ.get("NBRISK_DATABASE_URL") or None,
    )
