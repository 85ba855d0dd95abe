"""Calibration in the large: its metric (against an independent Aalen–Johansen), the promotion gate that refuses a
miscalibrated candidate, the logistic recalibration, and the config rule that no interval is served from fewer than
100 refits or without a measured coverage."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sksurv.nonparametric import cumulative_incidence_competing_risks

from nbrisk.core import NbriskError, months_to_days
from nbrisk.models.recalibration import LogitShiftRecalibration, calibration_in_the_large, logit_shift
from nbrisk.training.config import parse_config
from nbrisk.training.jobs import calibration_in_the_large_checks, calibration_in_the_large_metrics

HORIZONS = [12.0, 24.0, 60.0]
QUICK_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "quick.toml"
MODELS = [{"name": "cox", "family": "CauseSpecificCox"}]


def _sksurv_aj(outcomes, cause, days):
    x, cif = cumulative_incidence_competing_risks(outcomes["event"].to_numpy(), outcomes["time"].to_numpy())
    return cif[cause][np.searchsorted(x, days, side="right") - 1]


def test_metric_is_mean_prediction_minus_an_independent_aalen_johansen(synthetic_cohort):
    y = synthetic_cohort.outcomes
    days = months_to_days(HORIZONS)
    n = len(y)
    ref = {c: _sksurv_aj(y, c, days) for c in (1, 2)}
    # predictions equal to the marginal AJ for everyone, then shifted up by 5 points for relapse
    pred = np.zeros((n, 4, len(HORIZONS)))
    pred[:, 1] = ref[1] + 0.05
    pred[:, 2] = ref[2]
    m = calibration_in_the_large_metrics(y, pred, HORIZONS)
    for h in HORIZONS:
        assert m[f"relapse_citl_{h:g}m"] == pytest.approx(0.05, abs=1e-9)
        assert m[f"trm_citl_{h:g}m"] == pytest.approx(0.0, abs=1e-9)
    assert calibration_in_the_large(y["event"], y["time"], pred[:, 2], days, 2) == pytest.approx(0.0, abs=1e-9)


def _cfg(**promotion):
    return parse_config({"models": MODELS, "promotion": promotion})


def test_gate_refuses_a_candidate_miscalibrated_in_the_large():
    cfg = _cfg()
    good = {f"{c}_citl_{h:g}m": 0.01 for c in ("relapse", "trm") for h in (12, 24, 36, 60)}
    assert all(c.passed for c in calibration_in_the_large_checks(good, cfg))
    bad = {**good, "relapse_citl_24m": -0.031}
    checks = calibration_in_the_large_checks(bad, cfg)
    failed = [c for c in checks if not c.passed]
    assert len(failed) == 1 and failed[0].gate == "relapse calibration in the large"
    assert "24 months off by more than 2.0 points" in failed[0].detail and "24 mo -3.1" in failed[0].detail
    # 36 months is not a gated horizon: a miss there does not refuse
    assert all(c.passed for c in calibration_in_the_large_checks({**good, "trm_citl_36m": 0.2}, cfg))
    # unknown calibration (a version logged before the metric existed) is refused, not waved through
    missing = {k: v for k, v in good.items() if not k.startswith("trm")}
    assert [c.passed for c in calibration_in_the_large_checks(missing, cfg)] == [True, False]


def test_logit_shift_recalibration_restores_the_mean(synthetic_cohort):
    y = synthetic_cohort.outcomes
    days = months_to_days(HORIZONS)
    rng = np.random.default_rng(0)
    base = np.stack([_sksurv_aj(y, c, days) for c in (1, 2)])  # (2, k)
    cif = np.clip(base[None] * np.exp(rng.normal(0.0, 0.3, (len(y), 2, 1))) * 0.7, 0.0, 0.6)  # 30% too low
    rec = LogitShiftRecalibration().fit(y["event"], y["time"], cif, days)
    out = rec.transform(cif, days)
    # exact where no patient's relapse + TRM exceeded 1 after the shift (12, 24 months); at 60 months the few
    # patients scaled back to a coherent total move the mean by well under a point
    np.testing.assert_allclose(out.mean(axis=0)[:, :2], base[:, :2], atol=1e-8)
    np.testing.assert_allclose(out.mean(axis=0)[:, 2], base[:, 2], atol=0.005)
    # ranks are kept (calibration in the large changes no ordering), CIFs stay coherent
    assert np.all(np.argsort(out[:, 0, 1], kind="stable") == np.argsort(cif[:, 0, 1], kind="stable"))
    assert np.all(out.sum(axis=1) <= 1.0 + 1e-12)
    assert rec.shift_at([0.0])[:, 0] == pytest.approx([0.0, 0.0])
    assert logit_shift(np.array([0.2, 0.2]), 0.2) == pytest.approx(0.0, abs=1e-9)


def test_served_intervals_need_100_refits_and_a_measured_coverage():
    with pytest.raises(NbriskError, match="at least 100 refits"):
        parse_config({"models": MODELS, "final": {"n_interval_bootstrap": 5}})
    with pytest.raises(NbriskError, match="measured coverage"):
        parse_config({"models": MODELS, "final": {"n_interval_bootstrap": 100}})
    ok = parse_config(
        {"models": [{**MODELS[0], "interval_coverage": "90-95% (benchmark)"}], "final": {"n_interval_bootstrap": 100}}
    )
    assert ok.interval_refits(ok.models[0]) == 100
    assert parse_config({"models": MODELS}).interval_refits(parse_config({"models": MODELS}).models[0]) == 0


@pytest.mark.slow
def test_registered_candidate_is_refused_when_off_in_the_large(registered_champion, tmp_path):
    """Real MLflow: the quick run logged calibration in the large; a gate tighter than its error refuses it."""
    from mlflow import MlflowClient

    from nbrisk.training import tracking
    from nbrisk.training.jobs import promote

    version = str(MlflowClient().get_model_version_by_alias("nbrisk", "champion").version)
    metrics = tracking.version_info("nbrisk", version)["metrics"]
    citl = [metrics[f"{c}_citl_{h:g}m"] for c in ("relapse", "trm") for h in (12, 24, 60)]
    worst = max(abs(v) for v in citl)
    assert 0 < worst < 0.2
    tight = tmp_path / "tight.toml"
    text = re.sub(r"(?m)^max_calibration_in_the_large = .*$\n?", "", QUICK_CONFIG.read_text())
    tight.write_text(text.replace("[promotion]", f"[promotion]\nmax_calibration_in_the_large = {worst / 2:.6f}"))
    refused = promote("nbrisk", version, "candidate", config=tight)
    assert not refused["promoted"]
    assert any("miscalibrated in the large" in r for r in refused["reasons"])


def test_training_recalibrates_a_family_that_is_off_and_judges_it_cross_fitted(synthetic_cohort, risk_model):
    from nbrisk.core import RiskCurves
    from nbrisk.models.recalibration import recalibrate_curves
    from nbrisk.training.jobs import recalibrate_if_off
    from nbrisk.training.validation import make_folds

    cfg = _cfg()
    y = synthetic_cohort.outcomes
    horizons = list(cfg.horizons_months)
    days = months_to_days(horizons)
    # a model that ranks like the real one but predicts 40% too much relapse and TRM for everyone
    curves = risk_model.predict(synthetic_cohort.records, horizons)
    pred = curves.states().copy()
    pred[:, 1] = np.minimum(pred[:, 1] * 1.4, 0.95)
    pred[:, 2] = np.minimum(pred[:, 2] * 1.4, 0.04 + pred[:, 2])
    pooled = calibration_in_the_large_metrics(y, pred, horizons)
    assert pooled["relapse_citl_24m"] > 0.1
    folds = make_folds(y["event"].to_numpy(), 5, 1, 0)
    recal, note = recalibrate_if_off(cfg, y, pred, folds, pooled)
    assert recal is not None and "recalibrated in the large" in note
    assert pooled["relapse_citl_raw_24m"] > 0.1
    # cross-fitted (the shift never saw the patients it is judged on): noisy at n = 400, but far nearer 0
    assert all(abs(pooled[f"{c}_citl_{h:g}m"]) < 0.05 for c in ("relapse", "trm") for h in horizons)
    # the served curves: recalibrated, still coherent (RiskCurves.check: bounds, monotone, EFS = 1 − rel − TRM ...)
    off = RiskCurves.from_states(curves.horizons_months, pred, curves.states("lower"), curves.states("upper"))
    fixed = recalibrate_curves(off, recal)
    fixed.check()
    got = calibration_in_the_large(y["event"], y["time"], fixed.relapse.estimate, days, 1)
    assert np.all(np.abs(got) < 0.01)  # in sample: the shift was learnt on these very predictions
    # a calibrated family is left alone
    assert (
        recalibrate_if_off(
            cfg, y, curves.states(), folds, calibration_in_the_large_metrics(y, curves.states(), horizons)
        )[0]
        is None
    )


def test_config_accepts_every_preset_and_world_of_the_generator():
    from nbrisk.features.synthetic import PRESETS, WORLDS

    for name in (*PRESETS, *WORLDS):
        assert parse_config({"models": MODELS, "data": {"synthetic_preset": name}}).data.synthetic_preset == name


def test_default_config_is_a_fair_contest_and_says_which_inputs_each_model_uses():
    from nbrisk.training.config import load_config
    from nbrisk.training.jobs import describe_inputs, leaderboard_rows

    cfg = load_config(QUICK_CONFIG.parent / "default.toml")
    inputs = {m.name: describe_inputs(m) for m in cfg.models}
    assert inputs["cox"].startswith("pre-specified clinical predictors") and "time-varying" in inputs["cox"]
    assert inputs["cox_data_driven"] == "all pipeline columns + linear splines of the continuous inputs"
    assert inputs["boosting"] == "all pipeline columns"
    # no shipped configuration serves an interval without >= 100 refits and a measured coverage
    for path in (QUICK_CONFIG, QUICK_CONFIG.parent / "default.toml"):
        c = load_config(path)
        assert all(c.interval_refits(m) == 0 or c.interval_refits(m) >= 100 for m in c.models)
    rows = leaderboard_rows([{"name": "cox", "family": "CauseSpecificCox", "inputs": inputs["cox"], "metrics": {}}], 24)
    assert rows[0]["inputs"] == inputs["cox"]
