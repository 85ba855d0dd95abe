"""End to end against a real MLflow (SQLite in a temporary folder, never the repository's mlruns/).

``registered_champion`` (tests/conftest.py) trains configs/quick.toml on the embedded synthetic cohort. These tests
check what that run leaves behind (runs, metrics with CIs, artifacts, registry versions and aliases), that the same
data + config + seed give identical metrics, that the promotion gates refuse a worse model, and the CLI commands.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from nbrisk.cli import app
from nbrisk.core import SYNTHETIC_LABEL
from nbrisk.models.pyfunc import OUTPUT_COLUMNS, load_risk_model
from nbrisk.models.risk_model import RiskModel

pytestmark = pytest.mark.slow

FIXTURE_EXPERIMENT = "nbrisk-fixture"
QUICK_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "quick.toml"


def _runs(experiment: str):
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=100)


def test_training_run_logs_everything(registered_champion, mlflow_tracking, tmp_path):
    runs = _runs(FIXTURE_EXPERIMENT)
    parents = [r for r in runs if r.data.tags.get("nbrisk.run_type") == "train"]
    children = [r for r in runs if r.data.tags.get("nbrisk.run_type") == "model"]
    assert len(parents) == 1 and {c.data.tags["nbrisk.model_name"] for c in children} == {"aalen_johansen", "cox"}
    parent = parents[0]
    # data fingerprint, config and code version on the parent
    p = parent.data.params
    assert len(p["data.sha256"]) == 64 and p["data.synthetic"] == "True" and int(p["data.n"]) == 600
    assert int(p["data.events_relapse"]) + int(p["data.events_trm"]) + int(p["data.events_censored"]) == 600
    assert "code.nbrisk_version" in parent.data.tags and "code.git_sha" in parent.data.tags
    assert p["config.validation.n_splits"] == "2"
    client = MlflowClient()
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        m = child.data.metrics
        for cause in ("relapse", "trm"):
            for metric in ("cindex", "auc", "brier", "ipa"):
                key = f"{cause}_{metric}_24m"
                assert m[f"{key}_lower"] <= m[key] + 1e-12 and m[key] <= m[f"{key}_upper"] + 1e-12
            assert f"{cause}_ici_24m" in m and f"{cause}_cal_slope_24m" in m
        history = client.get_metric_history(child.info.run_id, "fold_relapse_cindex_24m")
        assert sorted(h.step for h in history) == [0, 1]  # one value per outer fold
        arts = {a.path for a in client.list_artifacts(child.info.run_id, "plots")}
        assert {"plots/calibration_decision_24m.png", "plots/calibration_decision_24m.svg"} <= arts
        reps = mlflow.artifacts.load_dict(f"runs:/{child.info.run_id}/validation/bootstrap_replicates.json")
        assert len(reps["relapse_cindex_24m"]) == 20  # n_bootstrap of quick.toml
        assert len(reps["_meta"]["resamples_sha256"]) == 64  # identifies the shared resamples
    cox = next(c for c in children if c.data.tags["nbrisk.model_name"] == "cox")
    assert "corrected_relapse_cindex_24m" not in cox.data.metrics  # quick.toml: n_optimism = 0
    assert "apparent_relapse_cindex_24m" in cox.data.metrics


def test_registry_versions_aliases_and_loading(registered_champion, synthetic_cohort):
    client = MlflowClient()
    champion = client.get_model_version_by_alias("nbrisk", "champion")
    assert str(champion.version) == "1"
    assert champion.tags["nbrisk.model_name"] == "cox" and champion.tags["synthetic"] == "true"
    assert client.get_model_version_by_alias("nbrisk", "candidate").version is not None
    rm = load_risk_model(registered_champion)
    assert isinstance(rm, RiskModel) and rm.synthetic and rm.label == SYNTHETIC_LABEL
    assert load_risk_model(registered_champion) is rm  # cached per resolved version
    # the generic MLflow route: pyfunc with params
    model = mlflow.pyfunc.load_model(registered_champion)
    raw = synthetic_cohort.raw.iloc[:3]
    out = model.predict(raw, params={"horizons_months": [12.0, 60.0]})
    assert tuple(out.columns) == OUTPUT_COLUMNS and len(out) == 6
    assert set(out["risk_group"]) <= {"low", "intermediate", "high"}
    assert model.metadata.get_input_schema() is not None


def _quick_plus_flat(tmp_path):
    """configs/quick.toml plus a Cox model shrunk flat (alpha 1e6: every coefficient ≈ 0, C-index ≈ 0.5)."""
    raw = tomllib.loads(QUICK_CONFIG.read_text())
    lines = [
        QUICK_CONFIG.read_text(),
        "",
        "[[models]]",
        'name = "cox_flat"',
        'family = "CauseSpecificCox"',
        "[models.params]",
        "alpha = 1000000.0",
        "",
    ]
    path = tmp_path / "quick_flat.toml"
    path.write_text("\n".join(lines))
    assert len(raw["models"]) == 2
    return path


def test_identical_rerun_identical_metrics_and_worse_model_refused(registered_champion, tmp_path):
    """Same data, config and seed → the same metrics; a deliberately flat model cannot take the champion alias."""
    from nbrisk.training.jobs import promote, train

    result = train(data=None, config=_quick_plus_flat(tmp_path), experiment="nbrisk-rerun")
    by_name = {m.name: m for m in result.models}
    first = next(r for r in _runs(FIXTURE_EXPERIMENT) if r.data.tags.get("nbrisk.model_name") == "cox")
    again = MlflowClient().get_run(by_name["cox"].run_id)
    skip = ("seconds",)
    a = {k: v for k, v in first.data.metrics.items() if not k.startswith(skip)}
    b = {k: v for k, v in again.data.metrics.items() if not k.startswith(skip)}
    assert a.keys() == b.keys() and len(a) > 50
    # identical, not just close: same folds, same resamples, deterministic fits (float round-off aside)
    np.testing.assert_allclose([b[k] for k in a], [a[k] for k in a], rtol=1e-9, atol=1e-12)

    client = MlflowClient()
    assert str(client.get_model_version_by_alias("nbrisk", "champion").version) == "1"  # train never moves it
    flat = by_name["cox_flat"].version
    cox_again = by_name["cox"].version
    assert flat is not None and cox_again is not None
    refused = promote("nbrisk", flat, "champion", config=QUICK_CONFIG)
    assert not refused["promoted"]
    assert any("discrimination" in r and "worse beyond the CI" in r for r in refused["reasons"])
    assert str(client.get_model_version_by_alias("nbrisk", "champion").version) == "1"
    # the identical model passes the paired comparison (difference exactly 0); calibration bounds opened wide in
    # this test's config so that only discrimination decides (quick.toml's 2-fold TRM slope at n = 300 is noisy)
    lenient = tmp_path / "lenient.toml"
    lenient.write_text(
        QUICK_CONFIG.read_text()
        .replace("max_ici = 0.15", "max_ici = 1.0")
        .replace("calibration_slope_range = [0.3, 2.5]", "calibration_slope_range = [-100.0, 100.0]")
        .replace("max_calibration_in_the_large = 0.02", "max_calibration_in_the_large = 1.0")
    )
    ok = promote("nbrisk", cox_again, "champion", config=lenient)
    assert ok["promoted"], ok.get("reasons")
    disc = [c for c in ok["checks"] if "discrimination" in c.gate]
    assert len(disc) == 2 and all("paired difference +0.000" in c.detail for c in disc)
    assert str(client.get_model_version_by_alias("nbrisk", "champion").version) == cox_again
    client.set_registered_model_alias("nbrisk", "champion", "1")  # leave the session fixture as it was


def test_cli_compare_predict_promote(registered_champion, synthetic_cohort, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["compare", "--experiment", FIXTURE_EXPERIMENT])
    assert res.exit_code == 0, res.output
    assert "aalen_johansen" in res.output and "cox" in res.output and SYNTHETIC_LABEL in res.output

    patients = tmp_path / "patients.csv"
    synthetic_cohort.raw.iloc[:4].to_csv(patients, index=False)
    out = tmp_path / "pred.csv"
    res = runner.invoke(app, ["predict", str(patients), "--out", str(out), "--horizons", "12,24"])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out)
    assert tuple(frame.columns) == OUTPUT_COLUMNS and len(frame) == 8

    res = runner.invoke(app, ["promote", "nbrisk", "999"])
    assert res.exit_code != 0 and "no version 999" in res.output
    assert "Traceback" not in res.output

    res = runner.invoke(app, ["compare", "--experiment", "does-not-exist"])
    assert res.exit_code != 0 and "no MLflow experiment" in res.output


def test_cli_train_prints_leaderboard_and_keeps_champion(registered_champion):
    res = CliRunner().invoke(app, ["train", "--config", str(QUICK_CONFIG), "--experiment", "nbrisk-cli"])
    assert res.exit_code == 0, res.output
    assert "Leaderboard" in res.output and "cox" in res.output and "aalen_johansen" in res.output
    assert SYNTHETIC_LABEL in res.output and "candidate → version" in res.output
    client = MlflowClient()
    candidate = str(client.get_model_version_by_alias("nbrisk", "candidate").version)
    assert str(client.get_model_version_by_alias("nbrisk", "champion").version) == "1"
    assert candidate != "1"  # the new best model is a candidate; champion moves only through promote
