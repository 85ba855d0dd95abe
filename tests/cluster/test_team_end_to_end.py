"""The team set-up end to end, every server started here and stopped by process-group id (also on failure):
PostgreSQL; an MLflow tracking server on it; a Dask scheduler with two workers on two loopback addresses;
``nbrisk train --cluster`` on a small cohort; promotion; two service replicas serving the champion from that
registry, with API keys and audit shared in PostgreSQL. Slow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from nbrisk import processes
from nbrisk.features.record import example_record
from nbrisk.processes import clean_env

pytestmark = pytest.mark.slow

QUICK = str(Path(__file__).resolve().parents[2] / "configs" / "quick.toml")


def _nbrisk(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 900) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "nbrisk.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"nbrisk {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_cluster_training_registry_and_two_replicas(postgres_server, mlflow_server, dask_cluster, tmp_path):
    state_url = postgres_server.create_database("nbrisk_team")
    env = clean_env(
        MLFLOW_TRACKING_URI=mlflow_server.url,
        NBRISK_HOME=str(tmp_path),
        NBRISK_DATABASE_URL=state_url,
        BENTOML_HOME=str(tmp_path / "bentoml"),
        BENTOML_DO_NOT_TRACK="true",
    )
    # the embedded synthetic cohort and the quick config: what scripts/start.sh trains, here on the cluster
    _nbrisk(["train", "--config", QUICK, "--cluster", dask_cluster.address], env, tmp_path, 1500)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    assert client.search_model_versions("name='nbrisk'")
    target = client.get_model_version_by_alias("nbrisk", "champion").version  # set by train, through its gates
    _nbrisk(["promote", "nbrisk", str(target)], env, tmp_path)  # the gates, again, from the command line
    assert client.get_model_version_by_alias("nbrisk", "champion").version == str(target)
    key = _nbrisk(["keys", "create", "ward-7"], env, tmp_path).strip().splitlines()[-1].strip()
    assert key.startswith("nbk_")

    replicas, bases = [], []
    try:
        for i in range(2):
            port = processes.free_port()
            log = tmp_path / f"replica-{i}.log"
            cmd = [sys.executable, "-m", "bentoml", "serve", "nbrisk.serving.service:RiskService"]
            proc = processes.start([*cmd, "--host", "127.0.0.1", "--port", str(port)], log, env=env, cwd=tmp_path)
            replicas.append(proc)
            base = f"http://127.0.0.1:{port}"
            bases.append(base)
        for base, proc, i in zip(bases, replicas, range(2), strict=True):
            processes.wait_until(
                lambda b=base: httpx.get(f"{b}/readyz", timeout=2).status_code == 200,
                240,
                proc,
                tmp_path / f"replica-{i}.log",
                f"replica {i}",
            )
        body = {"patients": [example_record(with_outcomes=False)]}
        auth = {"Authorization": f"Bearer {key}"}
        answers = [httpx.post(f"{b}/v1/risk", json=body, headers=auth, timeout=60) for b in bases]
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        assert {a.json()["model"]["version"] for a in answers} == {str(target)}
        assert answers[0].json()["results"] == answers[1].json()["results"]  # the same champion on both
        # revoked through one store: refused by both replicas at once
        _nbrisk(["keys", "revoke", "ward-7"], env, tmp_path)
        assert [httpx.post(f"{b}/v1/risk", json=body, headers=auth, timeout=60).status_code for b in bases] == [
            401,
            401,
        ]
    finally:
        for proc in replicas:
            processes.stop_group(proc)
    from nbrisk.serving.audit import AuditLog

    rows = AuditLog(state_url).recent(20)
    assert [r.status for r in rows if r.path == "/v1/risk"] == [200, 200, 401, 401]
