"""Tuning fits only what it scores: the grid's scores equal those of the full model factory.

Equal to rounding (the relapse/TRM CIFs are evaluated at the horizons directly instead of on the illness–death
model's bin edges; a difference of an ulp or so, which cannot change which grid point wins unless two points tie).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from nbrisk.training import validation as V
from nbrisk.training.config import ModelSpec

HORIZONS = [12.0, 24.0, 60.0]
SPECS = [
    ModelSpec(
        name="cox",
        family="CauseSpecificCox",
        params={
            "features": "clinical",
            "time_varying": ["disease_status_at_hsct=*"],
            "time_varying_knots": [182.625, 365.25],
        },
        grid={"alpha": [3.0, 30.0]},
    ),
    ModelSpec(name="cox_dd", family="CauseSpecificCox", splines=True, grid={"alpha": [10.0, 100.0]}),
    ModelSpec(
        name="boosting",
        family="CauseSpecificBoosting",
        params={"n_estimators": 20},
        grid={"learning_rate": [0.03, 0.1]},
    ),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_tuning_scores_equal_those_of_the_full_refit(synthetic_cohort, spec):
    rec, out = synthetic_cohort.records, synthetic_cohort.outcomes
    event = out["event"].to_numpy()
    splits = list(StratifiedKFold(n_splits=2, shuffle=True, random_state=1).split(np.zeros(len(event)), event))
    for tr, te in splits:
        fast = V._tune_split(spec, rec, out, HORIZONS, 1, tr, te)
        full = []
        for params in spec.candidates():  # what tuning did before: the whole RiskModel per grid point
            fitted = V.fit_candidate(spec, params, rec.iloc[tr], out.iloc[tr], 1, evaluate_on=[rec.iloc[te]])
            full.append(V.score_for_tuning(out.iloc[te], V.predict_states(fitted, rec.iloc[te], HORIZONS), HORIZONS))
        assert fast == pytest.approx(full, rel=1e-12, abs=0)


def test_parallel_tuning_chooses_as_sequential(synthetic_cohort):
    rec, out = synthetic_cohort.records, synthetic_cohort.outcomes
    spec = SPECS[1]
    assert V.tune(spec, rec, out, HORIZONS, 3, 5, n_jobs=2) == V.tune(spec, rec, out, HORIZONS, 3, 5)


def test_whole_cohort_tuning_in_the_cv_batch_chooses_as_tune(synthetic_cohort):
    rec, out = synthetic_cohort.records, synthetic_cohort.outcomes
    spec = SPECS[1]
    folds = V.make_folds(out["event"].to_numpy(), 2, 1, seed=0)
    cv = V.cross_validate(spec, rec, out, folds, HORIZONS, 2, 5, tune_whole=True)
    assert cv.extra["tuned_params"] == V.tune(spec, rec, out, HORIZONS, 2, 5)
    alone = V.cross_validate(spec, rec, out, folds, HORIZONS, 2, 5)
    np.testing.assert_array_equal(cv.oof, alone.oof)  # the folds are untouched by the extra tasks
    assert "tuned_params" not in alone.extra


def test_final_fit_and_refits_in_one_batch_equal_the_three_steps(synthetic_cohort):
    rec, out = synthetic_cohort.records, synthetic_cohort.outcomes
    spec = ModelSpec(name="cox", family="CauseSpecificCox", params={"alpha": 30.0})
    params = spec.candidates()[0]
    model, opt, loco = V.final_fit_and_refits(
        spec, params, rec, out, HORIZONS, n_optimism=2, min_center_size=30, seed=0, n_jobs=2, final={"describe": True}
    )
    # equal to rounding: the batch runs in worker processes, whose BLAS may sum in another order
    final = V.fit_candidate(spec, params, rec, out, 0, describe=True)
    close = {"rtol": 1e-12, "atol": 1e-14}
    np.testing.assert_allclose(V.predict_states(model, rec, HORIZONS), V.predict_states(final, rec, HORIZONS), **close)
    ref_opt = V.optimism_corrected(spec, params, final, rec, out, HORIZONS, 2, 0)
    assert opt.keys() == ref_opt.keys()
    np.testing.assert_allclose(list(opt.values()), list(ref_opt.values()), **close)
    ref = V.leave_center_out(spec, params, rec, out, HORIZONS, 30, 0)
    assert loco["summary"].keys() == ref["summary"].keys() and loco["per_center"].keys() == ref["per_center"].keys()
    np.testing.assert_allclose(list(loco["summary"].values()), list(ref["summary"].values()), **close)
    for center, metrics in ref["per_center"].items():  # NaN where a center has no event of a cause
        np.testing.assert_allclose(list(loco["per_center"][center].values()), list(metrics.values()), **close)
    _, no_opt, no_loco = V.final_fit_and_refits(
        spec, params, rec, out, HORIZONS, n_optimism=0, min_center_size=None, seed=0
    )
    assert no_loco is None and all(k.startswith("apparent_") for k in no_opt)
