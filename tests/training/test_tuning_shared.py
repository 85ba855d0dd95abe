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
