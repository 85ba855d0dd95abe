"""evaluate_predictions, bootstrap CIs and input checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbrisk.core import months_to_days
from nbrisk.training import metrics as M


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    time = rng.exponential(700, n) + 1.0
    event = rng.integers(0, 3, n)
    f1 = rng.uniform(0, 0.5, (n, 1)) * np.linspace(0.5, 1, 4)[None, :]
    f2 = rng.uniform(0, 0.3, (n, 1)) * np.linspace(0.5, 1, 4)[None, :]
    cif = np.stack([1 - f1 - f2, f1, f2], axis=1)
    return event, time, cif


def test_evaluate_predictions_names_and_values():
    event, time, cif = _data()
    hm = [12, 24, 36, 60]
    hd = months_to_days(hm)
    out = M.evaluate_predictions(event, time, cif, hd, horizons_months=hm, thresholds=[0.1, 0.2])
    for cause in ("relapse", "trm"):
        for h in ("12m", "24m", "36m", "60m"):
            for metric in (
                "auc",
                "cindex",
                "brier",
                "ipa",
                "ici",
                "e50",
                "e90",
                "cal_slope",
                "cal_intercept",
            ):
                assert f"{cause}_{metric}_{h}" in out
            assert f"{cause}_netbenefit_p10_{h}" in out
        assert f"{cause}_ibs" in out
    assert "efs_harrell_c" in out and "efs_uno_c_24m" in out
    assert out["relapse_auc_24m"] == pytest.approx(M.time_dependent_auc(event, time, cif[:, 1, 1], hd[1], 1))
    assert out["trm_brier_60m"] == pytest.approx(M.brier_score_cr(event, time, cif[:, 2, 3], hd[3], 2))
    # labels from days alone round to the same months
    assert set(M.evaluate_predictions(event, time, cif, hd, calibration=False)) <= set(out)
    # the target-DataFrame form is the same computation
    y = pd.DataFrame({"event": event, "time": time})
    same = M.evaluate_predictions(*M.target(y), cif, hd, horizons_months=hm, thresholds=[0.1, 0.2])
    assert same.keys() == out.keys()
    np.testing.assert_allclose([same[k] for k in out], [out[k] for k in out], equal_nan=True)


def test_evaluate_predictions_with_overall_survival():
    event, time, cif = _data()
    hd = months_to_days([12, 24, 36])
    cif = cif[:, :, :3]
    os_surv = np.clip(cif[:, 0] + 0.05, 0, 1)
    os_event = (event > 0).astype(int)
    out = M.evaluate_predictions(
        event, time, cif, hd, calibration=False, os_event=os_event, os_time=time, os_surv=os_surv
    )
    assert {"os_harrell_c", "os_uno_c_12m", "os_ibs"} <= set(out)
    assert 0 <= out["os_ibs"] <= 1


def test_evaluate_predictions_rejects_bad_shapes():
    event, time, cif = _data()
    with pytest.raises(ValueError, match="shape"):
        M.evaluate_predictions(event, time, cif[:, :, :2], months_to_days([12, 24, 36]))
    with pytest.raises(ValueError, match="rows"):
        M.brier_score_cr(event, time, cif[:10, 1, 0], 100.0, 1)
    with pytest.raises(ValueError, match="> 0"):
        M.brier_score_cr(event, np.zeros_like(time), cif[:, 1, 0], 100.0, 1)
    with pytest.raises(ValueError, match="thresholds"):
        M.net_benefit(event, time, cif[:, 1, 0], 100.0, 1, [0.0, 0.5])


def test_bootstrap_ci_same_resamples_and_paired_difference():
    event, time, cif = _data(300, seed=1)
    tau = 500.0

    def auc(model_cif):
        return lambda idx: M.time_dependent_auc(event[idx], time[idx], model_cif[idx], tau, 1)

    a = M.bootstrap_ci(auc(cif[:, 1, 1]), n=300, n_boot=50, seed=11)
    b = M.bootstrap_ci(auc(cif[:, 1, 1] ** 2), n=300, n_boot=50, seed=11)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.indices, M.bootstrap_indices(300, 50, 11))
    assert a.estimate["value"] == pytest.approx(M.time_dependent_auc(event, time, cif[:, 1, 1], tau, 1))
    assert a.lower["value"] <= a.estimate["value"] <= a.upper["value"]
    # a monotone transform keeps the AUC in every resample: the paired difference is exactly 0
    diff = M.bootstrap_ci(lambda i: auc(cif[:, 1, 1])(i) - auc(cif[:, 1, 1] ** 2)(i), n=300, n_boot=50, seed=11)
    assert diff.lower["value"] == pytest.approx(0.0, abs=1e-12) and diff.upper["value"] == pytest.approx(0.0, abs=1e-12)
    # dict-valued metrics
    many = M.bootstrap_ci(lambda i: {"m": float(np.mean(time[i])), "nan": float("nan")}, n=300, n_boot=20, seed=0)
    assert many.lower["m"] < many.estimate["m"] < many.upper["m"]
    assert np.isnan(many.lower["nan"]) and many.replicates["m"].shape == (20,)


def test_calibration_table_forms_agree():
    event, time, cif = _data()
    tau = 400.0
    y = pd.DataFrame({"event": event, "time": time})
    t1 = M.calibration_table(*M.target(y), cif[:, 1, 1], tau, cause=1)
    t2 = M.calibration_table(event, time, cif[:, 1, 1], tau, 1)
    pd.testing.assert_frame_equal(t1, t2)
    pd.testing.assert_frame_equal(t1, M.calibration_cr(event, time, cif[:, 1, 1], tau, 1).table)
    assert list(t1.columns) == [
        "group",
        "n",
        "mean_predicted",
        "observed",
        "observed_lower",
        "observed_upper",
    ]
    assert t1["n"].sum() == event.shape[0]
    assert np.all(np.diff(t1["mean_predicted"]) > 0)


def test_constant_prediction_calibration_is_defined():
    event, time, _ = _data()
    cal = M.calibration_cr(event, time, np.full(event.shape[0], 0.2), 400.0, 1)
    assert np.isfinite(cal.ici) and np.isnan(cal.slope)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_rank_metrics_invariants(seed):
    """AUC and C-index depend on the ranks only; reversing the marker turns AUC into 1 − AUC (ties count ½)."""
    rng = np.random.default_rng(seed)
    n = 60
    time = np.round(rng.exponential(10, n)) + 1
    event = rng.integers(0, 3, n)
    risk = np.round(rng.random(n), 2)
    tau = 8.0
    auc = M.time_dependent_auc(event, time, risk, tau, 1)
    if np.isnan(auc):
        return
    assert 0.0 <= auc <= 1.0
    assert M.time_dependent_auc(event, time, np.exp(3 * risk), tau, 1) == pytest.approx(auc, abs=1e-12)
    assert M.time_dependent_auc(event, time, -risk, tau, 1) == pytest.approx(1 - auc, abs=1e-12)
    c = M.concordance_index_cr(event, time, risk, tau, 1)
    assert M.concordance_index_cr(event, time, risk**3, tau, 1) == pytest.approx(c, abs=1e-12)
    assert M.concordance_index_cr(event, time, -risk, tau, 1) == pytest.approx(1 - c, abs=1e-12)
    bs = M.brier_score_cr(event, time, risk, tau, 1)
    assert bs >= 0


def test_calibration_without_events_before_tau():
    event, time, cif = _data()
    tau = float(time.min()) / 2  # nobody has had an event yet: observed incidence 0
    cal = M.calibration_cr(event, time, cif[:, 1, 0], tau, 1)
    assert np.isnan(cal.slope) and np.isnan(cal.intercept)
    assert cal.ici == pytest.approx(cif[:, 1, 0].mean(), rel=1e-12)
