"""CauseSpecificForest: exact reduction to Aalen–Johansen, agreement with sksurv, known-truth recovery."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.ensemble import RandomSurvivalForest
from sksurv.nonparametric import cumulative_incidence_competing_risks

from nbrisk.core import Cause
from nbrisk.models.forest import CauseSpecificForest, coarsen_times, time_point_grid


def test_root_only_forest_is_aalen_johansen(simulate):
    # One tree, no bootstrap, leaves as large as the data: the only leaf is the root, so the Nelson–Aalen
    # cause-specific hazards combined by the product-limit rule must equal sksurv's Aalen–Johansen estimator
    # (itself checked against the published KMsurv::bmt numbers to 1e-8). Only float rounding separates them.
    X, y, _ = simulate(300, seed=1, ties=True)
    model = CauseSpecificForest(
        n_estimators=1, bootstrap=False, min_samples_leaf=len(y), max_features=None, max_time_points=None
    ).fit(X, y)
    times = np.array([30.0, 200.0, 365.0, 800.0, 1500.0])
    pred = model.predict_cumulative_incidence(X.iloc[:4], times)
    x, cif = cumulative_incidence_competing_risks(y["event"].to_numpy(), y["time"].to_numpy())
    ref = cif[1:, np.searchsorted(x, times, side="right") - 1]  # (2, k): relapse, TRM
    for i in range(4):
        np.testing.assert_allclose(pred[i, 1:], ref, atol=1e-12)
        np.testing.assert_allclose(pred[i, 0], 1 - ref.sum(axis=0), atol=1e-12)


def test_cause_one_forest_matches_sksurv_cumulative_hazard(simulate):
    # With max_time_points=None the cause-1 forest must be exactly sksurv's RSF on (relapse vs everything else),
    # grown from the seed we derive: the increments we use sum back to sksurv's cumulative hazard.
    X, y, _ = simulate(200, seed=2)
    model = CauseSpecificForest(n_estimators=10, min_samples_leaf=10, random_state=3, max_time_points=None).fit(X, y)
    seed = int(np.random.RandomState(3).randint(0, np.iinfo(np.int32).max, size=2)[0])
    yk = np.empty(len(y), dtype=[("event", bool), ("time", float)])
    yk["event"], yk["time"] = y["event"].to_numpy() == Cause.RELAPSE, y["time"].to_numpy()
    ref = RandomSurvivalForest(n_estimators=10, min_samples_leaf=10, random_state=seed).fit(X.to_numpy(), yk)
    chf_ref = ref.predict_cumulative_hazard_function(X.to_numpy()[:5], return_array=True)
    dh1, _ = model.predict_cumulative_hazard_increments(X.iloc[:5])
    at = np.searchsorted(ref.unique_times_, model.time_grid_)
    np.testing.assert_allclose(np.cumsum(dh1, axis=1), chf_ref[:, at], rtol=1e-12, atol=1e-12)


def test_forest_recovers_known_truth_better_than_no_covariates(simulate):
    X, y, truth = simulate(1500, seed=4)
    Xt, _, _ = simulate(500, seed=5)
    times = np.array([180.0, 365.0, 730.0])
    model = CauseSpecificForest(n_estimators=60, min_samples_leaf=15, random_state=0).fit(X, y)
    pred = model.predict_cumulative_incidence(Xt, times)
    true = truth(Xt.to_numpy(), times)
    err_model = np.abs(pred[:, 1:] - true[:, 1:]).mean()
    # null model: the same marginal CIF for everyone (root-only forest = Aalen–Johansen)
    null = CauseSpecificForest(n_estimators=1, bootstrap=False, min_samples_leaf=len(y), max_features=None).fit(X, y)
    err_null = np.abs(null.predict_cumulative_incidence(Xt, times)[:, 1:] - true[:, 1:]).mean()
    # Measured over 5 data seeds at this size (n=1500, 60 trees): model MAE 0.055-0.062 (forests smooth the
    # extreme-risk patients towards the middle), null MAE 0.219-0.223. A forest that ignored the covariates or
    # swapped the causes lands near the null; 0.08 leaves room for seed noise, "half the null" catches that.
    assert err_model < 0.08
    assert err_model < 0.5 * err_null


def test_time_coarsening_maps_up_and_keeps_order():
    time = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 10.0])
    event = np.array([1, 2, 1, 0, 1, 2, 1, 0])
    grid = time_point_grid(time, event, 3)
    assert grid is not None and grid[-1] == 10.0 and len(grid) <= 4
    mapped = coarsen_times(time, grid)
    assert np.all(mapped >= time) and np.all(np.diff(mapped) >= 0)
    assert time_point_grid(time, event, None) is None


def test_forest_input_errors(simulate):
    X, y, _ = simulate(50, seed=6)
    # no TRM event at all: TRM hazard 0, so TRM incidence 0 and relapse = the single-cause forest's 1 − S
    y1 = y.assign(event=np.where(y["event"] == 2, 0, y["event"]))
    m1 = CauseSpecificForest(n_estimators=3, random_state=0).fit(X, y1)
    p1 = m1.predict_cumulative_incidence(X, [100.0, 400.0])
    assert m1.forests_[1] is None and np.all(p1[:, 2] == 0.0)
    np.testing.assert_allclose(p1[:, 0] + p1[:, 1], 1.0)
    with pytest.raises(ValueError, match="max_time_points"):
        CauseSpecificForest(n_estimators=2, max_time_points=1).fit(X, y)
    model = CauseSpecificForest(n_estimators=2, random_state=0).fit(X, y)
    with pytest.raises(NotImplementedError, match="BootstrapIntervals"):
        model.predict_cumulative_incidence(X, [100.0], return_interval=True)


def test_leaf_cache_is_not_pickled_and_predictions_survive_the_round_trip(simulate):
    # predictions read a per-node cache built on first use; it must not travel in the pickle (size) and a
    # restored model must rebuild it to exactly the same numbers
    import pickle

    X, y, _ = simulate(200, seed=9)
    model = CauseSpecificForest(n_estimators=5, min_samples_leaf=10, random_state=0).fit(X, y)
    size_fresh = len(pickle.dumps(model))
    first = model.predict_cumulative_incidence(X, [100.0, 500.0])
    assert model._node_chf_cache is not None
    blob = pickle.dumps(model)
    assert len(blob) == size_fresh
    np.testing.assert_array_equal(first, pickle.loads(blob).predict_cumulative_incidence(X, [100.0, 500.0]))
