"""A team's registry: nbrisk trains, registers, promotes and serves through an MLflow tracking server backed by
PostgreSQL (``MLFLOW_TRACKING_URI=http://...``) and directly against ``postgresql+psycopg2://``. Slow: real servers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nbrisk.processes import clean_env

QUICK = str(Path(__file__).resolve().parents[2] / "configs" / "quick.toml")

pytestmark = pytest.mark.slow


def _nbrisk(args: list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbrisk.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=900
    )


def test_train_and_promote_through_a_tracking_server_on_postgres(mlflow_server, tmp_path):
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server.url, NBRISK_HOME=str(tmp_path))
    r = _nbrisk(["train", "--config", QUICK], env, None)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    versions = client.search_model_versions("name='nbrisk'")
    assert versions
    # the run's rows are in PostgreSQL, read back directly through the backend URI
    direct = mlflow.MlflowClient(tracking_uri=mlflow_server.backend_uri, registry_uri=mlflow_server.backend_uri)
    assert {str(v.version) for v in direct.search_model_versions("name='nbrisk'")} == {v.version for v in versions}
    assert client.get_model_version_by_alias("nbrisk", "champion").version in {v.version for v in versions}
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # nothing fell back to the embedded SQLite store


def test_train_directly_against_postgres(postgres_server, tmp_path, mlflow_scope):
    uri = postgres_server.create_database("mlflow_direct")
    env = clean_env(MLFLOW_TRACKING_URI=uri, NBRISK_HOME=str(tmp_path))
    r = _nbrisk(["train", "--config", QUICK], env, tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("nbrisk", "champion")
    # the model loads back from the registry (artifacts under NBRISK_HOME's artifact root)
    from nbrisk.models.pyfunc import load_risk_model

    # loading points MLflow's process-wide URIs at this database; mlflow_scope puts the session's back afterwards
    mlflow_scope(uri, tmp_path)
    model = load_risk_model(f"models:/nbrisk/{champion.version}")
    assert model.synthetic
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()
