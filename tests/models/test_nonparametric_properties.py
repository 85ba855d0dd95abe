"""Invariants and the estimator contract of the non-parametric estimators."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from nbrisk.models.nonparametric import (
    AalenJohansen,
    aalen_johansen,
    censoring_survival,
    cumulative_incidence,
    gray_test,
    kaplan_meier,
)

samples = st.integers(min_value=1, max_value=60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(1, 15), min_size=n, max_size=n),  # small integer times: many ties
        st.lists(st.integers(0, 2), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(samples)
def test_cif_invariants(data):
    time, event = np.asarray(data[0], float), np.asarray(data[1])
    grid = np.arange(0, 17, 0.5)
    f1, lo1, up1 = cumulative_incidence(time, event, 1, grid)
    f2, lo2, up2 = cumulative_incidence(time, event, 2, grid)
    _, s = kaplan_meier(time, event > 0)
    s_grid = np.concatenate([[1.0], s])[np.searchsorted(np.unique(time), grid, side="right")]
    for f, lo, up in ((f1, lo1, up1), (f2, lo2, up2)):
        assert np.all((f >= 0) & (f <= 1))
        assert np.all(np.diff(f) >= -1e-12)
        assert np.all(lo <= f + 1e-12) and np.all(up >= f - 1e-12)
        assert np.all((lo >= 0) & (up <= 1))
    # Aalen–Johansen is coherent with the all-cause Kaplan–Meier
    np.testing.assert_allclose(f1 + f2 + s_grid, 1.0, atol=1e-12)


def test_no_competing_events_cif_is_one_minus_km():
    rng = np.random.default_rng(1)
    t = rng.exponential(1, 200)
    e = rng.integers(0, 2, 200)
    res = aalen_johansen(t, e, 1)
    _, s = kaplan_meier(t, e == 1)
    np.testing.assert_allclose(res.cif, 1 - s, atol=1e-12)


def test_censoring_survival_left_and_right_limits_with_ties():
    # times 1 (event), 2 (censored), 2 (event), 3 (censored). At t = 2 the event comes first, so the censoring risk
    # set is n(2) − d(2) = 3 − 1 = 2 and Ĝ(2) = 1 − 1/2; at t = 3 the last patient is censored: Ĝ(3) = 0.
    g = censoring_survival([1, 2, 2, 3], [1, 0, 1, 0])
    np.testing.assert_allclose(g.at([0.5, 1, 2, 2.5, 3]), [1, 1, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(g.left([1, 2, 3, 4]), [1, 1, 0.5, 0.0])
    assert g.at(np.ones((2, 3))).shape == (2, 3)


def test_censoring_survival_matches_sksurv_without_ties():
    from sksurv.nonparametric import CensoringDistributionEstimator
    from sksurv.util import Surv

    rng = np.random.default_rng(2)
    t = rng.exponential(1, 300)
    e = rng.random(300) < 0.6
    ref = CensoringDistributionEstimator().fit(Surv.from_arrays(e, t))
    grid = np.sort(t)[:-1]
    # no ties, so both conventions coincide; identical products
    np.testing.assert_allclose(censoring_survival(t, e).at(grid), ref.predict_proba(grid), atol=1e-12)


def _toy(n=80, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = pd.DataFrame({"event": rng.integers(0, 3, n), "time": rng.exponential(100, n) + 1})
    return X, y


def test_aalen_johansen_estimator_contract():
    X, y = _toy()
    model = AalenJohansen()
    assert model.fit(X, y) is model
    times = np.array([10.0, 50.0, 150.0])
    est, lo, up = model.predict_cumulative_incidence(X.iloc[:5], times, return_interval=True)
    assert est.shape == lo.shape == up.shape == (5, 3, 3)
    np.testing.assert_allclose(est.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(lo <= est + 1e-12) and np.all(up >= est - 1e-12)
    # identical rows: the null model ignores X
    assert np.all(est == est[:1])
    ref, _, _ = cumulative_incidence(y["time"], y["event"], 2, times)
    np.testing.assert_allclose(est[0, 2], ref, atol=1e-14)
    # clone and pickle round trips
    assert clone(model).get_params() == model.get_params()
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(
        again.predict_cumulative_incidence(X, times), model.predict_cumulative_incidence(X, times)
    )


def test_aalen_johansen_estimator_rejects_bad_target_and_unfitted():
    X, y = _toy()
    with pytest.raises(NotFittedError):
        AalenJohansen().predict_cumulative_incidence(X, [1.0])
    with pytest.raises(ValueError, match="features"):
        AalenJohansen().fit(X, y).predict_cumulative_incidence(X.to_numpy()[:, :1], [1.0])
    with pytest.raises(ValueError, match="conf_level"):
        AalenJohansen(conf_level=1.5).fit(X, y)
    with pytest.raises(ValueError):
        AalenJohansen().fit(X, y.assign(event=3))
    with pytest.raises(ValueError):
        AalenJohansen().fit(X, y.assign(time=0.0))


def test_gray_test_size_and_power():
    """Known truth: under H0 (same CIFs in 3 groups) the 5% test rejects ~5% of 400 simulated datasets; with a
    hazard ratio of 3 for cause 1 in one group it rejects most of them."""
    rng = np.random.default_rng(0)
    p_null, p_alt = [], []
    for _ in range(400):
        n = 120
        g = rng.integers(0, 3, n)
        cen = rng.uniform(0, 3, n)
        for store, hr in ((p_null, 1.0), (p_alt, 3.0)):
            l1 = np.where(g == 2, hr, 1.0)
            t = rng.exponential(1 / (l1 + 1.0))
            c = np.where(rng.random(n) < l1 / (l1 + 1.0), 1, 2)
            store.append(gray_test(np.minimum(t, cen), np.where(t <= cen, c, 0), g, 1)[2])
    # binomial SD of a 5% rate over 400 datasets is 1.1%: [2.5%, 8%] is > 2 SD on each side
    assert 0.025 <= np.mean(np.array(p_null) < 0.05) <= 0.08
    assert np.mean(np.array(p_alt) < 0.05) > 0.8
