"""Training jobs without a model registry: data loading and fingerprint, a bad file stops before MLflow, horizons,
the pyfunc wrapper's predict (called directly), the leaderboard order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nbrisk.cli import app
from nbrisk.core import NbriskError
from nbrisk.features.record import CohortValidationError
from nbrisk.models.pyfunc import OUTPUT_COLUMNS, NbriskPyfunc, model_signature
from nbrisk.training.config import load_config
from nbrisk.training.jobs import input_example, leaderboard_rows, load_training_data, parse_horizons, train

QUICK_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "quick.toml"


def test_fingerprint_changes_with_the_file(tmp_path, synthetic_cohort):
    cfg = load_config(QUICK_CONFIG)
    path = tmp_path / "cohort.csv"
    synthetic_cohort.raw.to_csv(path, index=False)
    a = load_training_data(path, cfg)
    assert a.synthetic and a.fingerprint["n"] == 400
    assert sum(a.fingerprint[f"events_{c}"] for c in ("censored", "relapse", "trm")) == 400
    changed = synthetic_cohort.raw.copy()
    changed.loc[0, "lansky_score"] = 70 if changed.loc[0, "lansky_score"] != 70 else 80
    changed.to_csv(path, index=False)
    b = load_training_data(path, cfg)
    assert a.fingerprint["sha256"] != b.fingerprint["sha256"]
    assert json.dumps(a.fingerprint)  # JSON-able: logged as params and as an artifact


def test_embedded_cohort_is_reproducible():
    cfg = load_config(QUICK_CONFIG)
    a, b = load_training_data(None, cfg), load_training_data(None, cfg)
    assert a.synthetic and a.fingerprint == b.fingerprint and a.fingerprint["n"] == cfg.data.synthetic_n


def test_bad_training_file_stops_before_anything_is_logged(tmp_path, monkeypatch, synthetic_cohort):
    home = tmp_path / "home"
    monkeypatch.setenv("NBRISK_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlruns' / 'mlflow.db'}")
    bad = synthetic_cohort.raw.iloc[:50].copy()
    bad.loc[bad.index[3], "disease_status_at_hsct"] = "excellent"
    bad.loc[bad.index[7], "inrg_stage"] = "L1"
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(CohortValidationError) as info:
        train(data=path, config=QUICK_CONFIG, experiment="never")
    assert {p.field for p in info.value.problems} >= {"disease_status_at_hsct", "inrg_stage"}
    assert not (home / "mlruns").exists()  # no MLflow store was even created

    res = CliRunner().invoke(app, ["train", "--data", str(path), "--config", str(QUICK_CONFIG)])
    assert res.exit_code == 1
    assert "disease_status_at_hsct" in res.output and "inrg_stage" in res.output  # the validation report
    assert "Traceback" not in res.output
    assert not (home / "mlruns").exists()


def test_cli_user_mistakes_are_one_line(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--config", str(tmp_path / "missing.toml")])
    assert res.exit_code == 2 and "config file not found" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "missing.csv"), "--config", str(QUICK_CONFIG)])
    assert res.exit_code != 0 and "Traceback" not in res.output
    res = runner.invoke(
        app, ["predict", str(tmp_path / "x.csv"), "--out", str(tmp_path / "o.csv"), "--horizons", "12,abc"]
    )
    assert res.exit_code != 0 and "horizons" in res.output


@pytest.mark.parametrize(
    ("text", "expected"), [("12,24", [12.0, 24.0]), (None, [12.0, 24.0, 36.0, 60.0]), (" 6 , 120 ", [6.0, 120.0])]
)
def test_parse_horizons(text, expected):
    assert parse_horizons(text) == expected


@pytest.mark.parametrize("text", ["0,12", "121", "a,b", ","])
def test_parse_horizons_rejects(text):
    with pytest.raises(NbriskError):
        parse_horizons(text)


def test_pyfunc_predict_validates_and_returns_long_frame(risk_model, synthetic_cohort):
    wrapper = NbriskPyfunc()
    wrapper.risk_model = risk_model  # what load_context sets from the artifact
    out = wrapper.predict(None, synthetic_cohort.raw.iloc[:3], params={"horizons_months": [60, 12]})
    assert tuple(out.columns) == OUTPUT_COLUMNS and len(out) == 6
    assert out["horizon_months"].tolist() == [12.0, 60.0] * 3
    direct = risk_model.predict(synthetic_cohort.records.iloc[:3], [12, 60])
    np.testing.assert_allclose(out["os"].to_numpy().reshape(3, 2), direct.os.estimate, rtol=0, atol=1e-12)
    bad = synthetic_cohort.raw.iloc[:2].copy()
    bad.loc[bad.index[0], "sex"] = "unknown-sex"
    with pytest.raises(CohortValidationError):
        wrapper.predict(None, bad)


def test_signature_from_record_contract():
    example = input_example()
    sig = model_signature(example)
    names = sig.inputs.input_names()
    assert names == list(example.columns) and "date_hsct" not in names
    optional = {c.name for c in sig.inputs.inputs if not c.required}
    assert {"ldh_at_diagnosis_u_l", "center_id", "hct_ci"} <= optional
    assert "sex" not in optional and "patient_id" not in optional
    assert sig.outputs.input_names() == list(OUTPUT_COLUMNS)
    assert example["patient_id"].str.startswith("EX-").all()  # synthetic example, never a real patient


def test_leaderboard_best_first():
    def mk(ipa_r, ipa_t, c):
        return {
            "relapse_ipa_24m": ipa_r,
            "trm_ipa_24m": ipa_t,
            "relapse_cindex_24m": c,
            "trm_cindex_24m": c,
        }

    rows = leaderboard_rows(
        [
            {"name": "a", "metrics": mk(0.0, 0.0, 0.5)},
            {"name": "b", "metrics": mk(0.2, 0.05, 0.7)},
            {"name": "c", "metrics": mk(0.2, 0.05, 0.6)},
        ],
        24,
    )
    assert [r["model"] for r in rows] == ["b", "c", "a"] and [r["rank"] for r in rows] == [1, 2, 3]
    assert isinstance(pd.DataFrame(rows), pd.DataFrame)
