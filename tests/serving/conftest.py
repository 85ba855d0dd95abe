"""Fixtures of the serving tests: a real fitted RiskModel served through the real loader and the real BentoML app.

* ``model_dir`` — the session ``risk_model`` fixture written as an MLflow model folder
  (``<dir>/artifacts/risk_model.pkl``, the layout ``nbrisk.models.pyfunc.load_risk_model`` reads), so the fast tests go
  through the production loader without the tens of seconds a registry round-trip costs; the registry itself is
  exercised by the slow tests.
* ``serving_env`` — points the service at that model and at temporary key/audit databases; creates a key.
* ``client`` — Starlette ``TestClient`` over ``RiskService.to_asgi()`` (lifespan run: the service loads the model).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import pytest


def import_service():
    """Import the BentoML service class. BentoML's import builds a pathspec with the deprecated 'gitwildmatch'
    pattern (a DeprecationWarning attributed to ``pathspec``, which the project's filterwarnings do not list yet);
    it is third-party and harmless, so it is silenced here for that one import."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*GitWildMatchPattern", category=DeprecationWarning)
        from nbrisk.serving.service import RiskService
    return RiskService


@dataclass(frozen=True)
class ServingEnv:
    home: Path
    model_uri: str
    keys_db: Path
    audit_db: Path
    key: str
    headers: dict[str, str]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, risk_model) -> Path:
    d = tmp_path_factory.mktemp("served_model")
    (d / "artifacts").mkdir()
    with (d / "artifacts" / "risk_model.pkl").open("wb") as fh:
        cloudpickle.dump(risk_model, fh)
    return d


@pytest.fixture(scope="session")
def serving_env(tmp_path_factory, model_dir) -> ServingEnv:
    from nbrisk.serving.auth import KeyStore

    home = tmp_path_factory.mktemp("serving_home")
    prom = home / "prometheus"
    prom.mkdir()
    env = {
        "NBRISK_MODEL_URI": str(model_dir),
        "NBRISK_KEYS_DB": str(home / "keys.db"),
        "NBRISK_AUDIT_DB": str(home / "audit.db"),
        # never the repository's mlruns/: the loader points MLflow at the configured store before loading
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
        # BentoML's /metrics aggregates Prometheus multi-process files; `bentoml serve` sets this, to_asgi() not
        "PROMETHEUS_MULTIPROC_DIR": str(prom),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    key = KeyStore(home / "keys.db").create("tests")
    try:
        yield ServingEnv(
            home, str(model_dir), home / "keys.db", home / "audit.db", key, {"Authorization": f"Bearer {key}"}
        )
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def client(serving_env):
    from starlette.testclient import TestClient

    with TestClient(import_service().to_asgi(), raise_server_exceptions=False) as c:
        yield c
