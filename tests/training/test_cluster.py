"""Training on a Dask cluster: every fit is a task there, nested loops included, data scattered once, results
identical to the local pool, a killed worker's tasks re-run (real schedulers and workers, no mocks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from joblib import Parallel, delayed
from typer.testing import CliRunner

from nbrisk.cli import app
from nbrisk.core import NbriskError
from nbrisk.training.cluster import ClusterProgress, check_address, run_fit, share_data, training_cluster
from nbrisk.training.config import load_config, parse_config

QUICK_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "quick.toml"


def _where(_x=None) -> str:
    """Address of the Dask worker running this call ("client" outside a worker)."""
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:
        return "client"


def _outer(data: pd.DataFrame, i: int) -> tuple[str, list[str], int]:
    # a fit-like task that runs a nested joblib loop (as the interval refits do inside the final fit)
    inner = Parallel(n_jobs=2)(delayed(_where)(j) for j in range(3))
    return _where(), inner, len(data)


def test_cluster_address_is_checked_in_config_and_cli():
    assert check_address(" local ") == "local"
    assert check_address("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    assert check_address("10.0.0.5:8786") == "10.0.0.5:8786"
    for bad in ("", "no port", "http://x:1 y"):
        with pytest.raises(ValueError, match="cluster must be"):
            check_address(bad)
    raw = {"models": [{"name": "cox", "family": "CauseSpecificCox"}]}
    assert parse_config(raw).cluster is None
    assert parse_config({**raw, "cluster": "local"}).cluster == "local"
    with pytest.raises(NbriskError, match="cluster"):
        parse_config({**raw, "cluster": "somewhere"})
    result = CliRunner().invoke(app, ["train", "--config", str(QUICK_CONFIG), "--cluster", "not an address"])
    assert result.exit_code != 0
    assert "cluster must be 'local' or a Dask scheduler address" in result.output
    assert "Traceback" not in result.output


def test_without_a_cluster_nothing_changes():
    with training_cluster(None) as cl:
        assert cl is None
        share_data(pd.DataFrame({"a": [1]}))
        assert run_fit(_where) == "client"


def test_every_fit_and_nested_loop_runs_on_the_workers_with_data_scattered_once():
    import dask
    from distributed import Client, LocalCluster

    amm_off = {"distributed.scheduler.active-memory-manager.start": False}  # as nbrisk's own local cluster
    with (
        dask.config.set(amm_off),
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as lc,
    ):
        seen: list[ClusterProgress] = []
        data = pd.DataFrame({"x": np.arange(5_000.0)})  # > 1 kB: joblib would otherwise ship it with each task
        with training_cluster(lc.scheduler_address, on_progress=seen.append, poll_seconds=0.05) as cl:
            share_data(data)
            assert id(data) in cl.data  # scattered once, referenced by identity
            out = Parallel(n_jobs=1)(delayed(_outer)(data, i) for i in range(4))  # n_jobs=1 must not run here
            final = run_fit(_outer, data, 0)
            with Client(lc.scheduler_address, set_as_default=False) as probe:
                who_has = probe.who_has()
        workers = set(lc.workers[w].address for w in lc.workers)
        for where, inner, n in [*out, final]:
            assert where in workers and set(inner) <= workers and n == len(data)
        # the scattered frame is on both workers; 4 outer + 4 × nested + the final task (+ its nested) all counted
        assert any(len(holders) == 2 for holders in who_has.values())
        assert seen and seen[-1].done == seen[-1].total >= 4 + 1 + 5 * 1
        assert seen[-1].workers == 2


def _config(**validation):
    raw = load_config(QUICK_CONFIG).model_dump(mode="json")
    raw["validation"].update(validation)
    raw["n_jobs"] = 2
    return parse_config(raw)


def _train(point_mlflow, tmp_path: Path, name: str, cluster: str | None, cfg):
    from mlflow import MlflowClient

    from nbrisk.models.pyfunc import load_risk_model
    from nbrisk.training.jobs import train

    (tmp_path / name).mkdir()
    point_mlflow(f"sqlite:///{tmp_path / name / 'mlflow.db'}", tmp_path / name)
    result = train(config=cfg, experiment="cluster-test", cluster=cluster)
    version = MlflowClient().get_model_version_by_alias("nbrisk", "candidate").version
    model = load_risk_model(f"models:/nbrisk/{version}")
    return result, model


@pytest.mark.slow
def test_cluster_run_equals_the_local_pool(mlflow_scope, tmp_path, synthetic_cohort):
    # optimism refits, leave-center-out and interval refits (nested inside the final fit) all on the cluster
    cfg = _config(n_optimism=3, leave_center_out=True)
    local, local_model = _train(mlflow_scope, tmp_path, "local", None, cfg)
    dask, dask_model = _train(mlflow_scope, tmp_path, "dask", "local", cfg)
    assert [r["model"] for r in dask.leaderboard] == [r["model"] for r in local.leaderboard]
    for a, b in zip(local.leaderboard, dask.leaderboard, strict=True):
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, abs=1e-12, nan_ok=True), key
    for a, b in zip(local.models, dask.models, strict=True):
        assert set(a.extra) == set(b.extra)
        for key, value in a.extra.items():
            if not key.startswith("seconds"):
                assert b.extra[key] == pytest.approx(value, abs=1e-12, nan_ok=True), (a.name, key)
    records = synthetic_cohort.records.head(50)
    pa, pb = local_model.predict_frame(records, [12, 24, 60]), dask_model.predict_frame(records, [12, 24, 60])
    numeric = pa.select_dtypes("number").columns
    assert len(numeric) >= 6 and list(pa.columns) == list(pb.columns)
    np.testing.assert_allclose(pb[numeric].to_numpy(), pa[numeric].to_numpy(), rtol=0, atol=1e-12)
    assert (pa.drop(columns=numeric) == pb.drop(columns=numeric)).all().all()


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    # as the README says: the scheduler keeps every worker's copy of the scattered data (no Active Memory Manager),
    # so the data survive the loss of a worker. The job trains into its own store beside its log, never the session's.
    env = dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__ACTIVE_MEMORY_MANAGER__START="False")
    env.pop("MLFLOW_REGISTRY_URI", None)
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{log.parent / 'mlflow.db'}", NBRISK_HOME=str(log.parent))
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True, env=env)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


@pytest.mark.slow
def test_a_worker_killed_mid_run_does_not_fail_the_job(tmp_path):
    from distributed import Client

    bin_dir = Path(sys.executable).parent  # the environment's own `dask` and `nbrisk` executables
    info = tmp_path / "scheduler.json"
    procs = []
    try:
        procs.append(
            _start(
                [
                    str(bin_dir / "dask"),
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(info),
                ],
                tmp_path / "scheduler.log",
            )
        )
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        workers = {}
        for host in ("127.0.0.2", "127.0.0.3"):
            workers[host] = _start(
                [str(bin_dir / "dask"), "worker", address, *("--host", host, "--nthreads", "1", "--no-dashboard")],
                tmp_path / f"worker-{host}.log",
            )
            procs.append(workers[host])
        cfg = tmp_path / "train.toml"
        cfg.write_text(QUICK_CONFIG.read_text().replace("n_optimism = 0", "n_optimism = 6"))
        with Client(address, set_as_default=False, timeout="30s") as probe:
            probe.wait_for_workers(2, timeout=60)
            train = _start(
                [str(bin_dir / "nbrisk"), "train", "--config", str(cfg), "--cluster", address],
                tmp_path / "train.log",
            )
            procs.append(train)
            # kill the worker on 127.0.0.2 while it is computing a task of the job
            deadline = time.monotonic() + 600
            killed = False
            while time.monotonic() < deadline and train.poll() is None:
                busy = probe.processing()
                mine = [w for w, keys in busy.items() if "127.0.0.2" in w and keys]
                if mine and probe.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) > 3:
                    os.killpg(workers["127.0.0.2"].pid, signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.2)
            assert killed, (tmp_path / "train.log").read_text()[-2000:]
            assert train.wait(timeout=900) == 0, (tmp_path / "train.log").read_text()[-3000:]
            assert len(probe.scheduler_info()["workers"]) == 1
        out = (tmp_path / "train.log").read_text()
        assert "Leaderboard" in out and "registered: candidate" in out
    finally:
        for p in reversed(procs):
            _stop(p)
