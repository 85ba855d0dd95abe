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


def get_settings() -> Settings:
    """Resolve settings from the environment.

    ``NBRISK_HOME`` (default: current directory) holds ``mlruns/`` (MLflow SQLite store and artifacts) and
    ``.nbrisk/`` (API-key hashes and the audit trail). ``MLFLOW_TRACKING_URI`` overrides the tracking store,
    ``NBRISK_MODEL_URI`` the served model (default ``models:/nbrisk@champion``).
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
    )
