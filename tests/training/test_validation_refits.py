"""Refit-based validation on a small synthetic cohort: nested CV, Harrell's optimism correction, leave-center-out."""

from __future__ import annotations

import numpy as np
import pytest

from nbrisk.training import validation as V
from nbrisk.training.config import ModelSpec

HORIZONS = [12.0, 24.0]
COX = ModelSpec(name="cox", family="CauseSpecificCox", params={"alpha": 30.0})


def test_cross_validate_gives_out_of_fold_predictions_for_everyone(synthetic_cohort):
    rec, out = synthetic_cohort.records, synthetic_cohort.outcomes
    folds = V.make_folds(out["event"].to_numpy(), 3, 1, seed=0)
    spec = ModelSpec(name="cox", family="CauseSpecificCox", grid={"alpha": [10.0, 100.0]})
    cv = V.cross_validate(spec, rec, out, folds, HORIZONS, inner_splits=2, seed=0)
    assert cv.oof.shape == (1, len(rec), 4, 2) and np.isfinite(cv.oof).all()
    p = cv.pooled
    np.testing.assert_allclose(p[:, 0] + p[:, 1] + p[:, 2], 1.0, atol=1e-9)  # EFS + relapse + TRM = 1
    assert (p[:, 3] >= p[:, 0] - 1e-9).all()  # OS >= EFS (illness-death)
    assert len(cv.per_fold) == 3 and all("relapse_cindex_24m" in m for m in cv.per_fold)
    assert all(params["alpha"] in (10.0, 100.0) for params in cv.params)  # tuned inside each training fold
    # a real model beats chance out of fold on this cohort (synthetic effects are strong for relapse)
    assert V.evaluate(out, p, HORIZONS)["relapse_cindex_24m"] > 0.6


def test_optimism_correction_is_apparent_minus_mean_optimism(synthetic_cohort):
    rec, out = synthetic_cohort.records, synthetic_cohort.outcomes
    final = V.fit_candidate(COX, COX.candidates()[0], rec, out, seed=0)
    res = V.optimism_corrected(COX, COX.candidates()[0], final, rec, out, HORIZONS, n_boot=3, seed=0)
    key = "relapse_cindex_24m"
    assert res[f"corrected_{key}"] == pytest.approx(res[f"apparent_{key}"] - res[f"optimism_{key}"])
    assert np.isfinite(res[f"optimism_{key}"])
    no_boot = V.optimism_corrected(COX, COX.candidates()[0], final, rec, out, HORIZONS, n_boot=0, seed=0)
    assert set(no_boot) == {k for k in res if k.startswith("apparent_")}


def test_leave_center_out_covers_every_center(synthetic_cohort):
    rec, out = synthetic_cohort.records, synthetic_cohort.outcomes
    res = V.leave_center_out(COX, COX.candidates()[0], rec, out, HORIZONS, min_center_size=30, seed=0)
    assert res is not None
    groups = V.center_groups(rec, 30)
    assert set(res["per_center"]) == set(groups.unique())
    assert sum(m["n"] for m in res["per_center"].values()) == len(rec)  # every patient tested exactly once
    s = res["summary"]
    assert s["relapse_cindex_24m_min"] <= s["relapse_cindex_24m"] <= s["relapse_cindex_24m_max"]


def test_unseen_category_in_test_fold_is_encoded_at_reference(synthetic_cohort):
    rec, out = synthetic_cohort.records, synthetic_cohort.outcomes
    rare = rec["donor_type"].value_counts().idxmin()
    test = np.flatnonzero(rec["donor_type"].to_numpy() == rare)
    train = np.setdiff1d(np.arange(len(rec)), test)
    fitted = V.fit_candidate(
        COX, COX.candidates()[0], rec.iloc[train], out.iloc[train], seed=0, evaluate_on=[rec.iloc[test]]
    )
    pred = V.predict_states(fitted, rec.iloc[test], [12.0, 24.0])
    assert np.isfinite(pred).all()
    assert V.fitted_params(COX.candidates()[0], fitted)["_unseen_level_rows"] >= len(test)
    assert all(rare not in c for c in fitted.transform(rec.iloc[train]).columns)


def test_final_fit_is_the_validated_model_with_its_summary(synthetic_cohort):
    """The training job's final fit goes through the same factory as the validation refits: the same point
    predictions, plus what registration needs (summary with the tuned params, risk cut-offs, intervals)."""
    rec, out = synthetic_cohort.records, synthetic_cohort.outcomes
    params = COX.candidates()[0]
    final = V.fit_candidate(
        COX, params, rec, out, seed=0, describe=True, model_name="cox", family=COX.family, n_interval_bootstrap=2
    )
    assert final.training_summary.params == params and final.training_summary.model_name == "cox"
    assert final.risk_cutoffs is not None and final.supports_intervals
    refit = V.fit_candidate(COX, params, rec, out, seed=0)
    assert refit.training_summary is None and refit.risk_cutoffs is None and not refit.supports_intervals
    np.testing.assert_array_equal(
        V.predict_states(final, rec.iloc[:25], HORIZONS), V.predict_states(refit, rec.iloc[:25], HORIZONS)
    )
