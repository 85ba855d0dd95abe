"""CauseSpecificCox: published KMsurv::bmt numbers, scikit-survival, Aalen–Johansen identity, behaviour, contract."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.nonparametric import cumulative_incidence_competing_risks
from sksurv.util import Surv

from nbrisk.core import Cause
from nbrisk.models.cox import CauseSpecificCox


def _sim(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.binomial(1, 0.4, size=n).astype(float)})
    t1 = rng.exponential(1.0 / (0.5 * np.exp(0.7 * X.a - 0.5 * X.b)))
    t2 = rng.exponential(1.0 / (0.3 * np.exp(-0.4 * X.a + 0.6 * X.b)))
    c = rng.uniform(0.5, 4.0, size=n)
    time = np.minimum.reduce([t1, t2, c])
    event = np.where(time == t1, Cause.RELAPSE, np.where(time == t2, Cause.TRM, Cause.CENSORED))
    return X, pd.DataFrame({"event": event.astype(int), "time": np.round(time, 2) + 0.01})


def test_kmsurv_bmt_published_coefficients():
    from nbrisk.features.public import load_kmsurv_bmt

    bmt = load_kmsurv_bmt()
    X = bmt.X[["aml_low_risk", "aml_high_risk"]]
    # time in days here; the published model used years: Cox coefficients do not depend on the time unit
    model = CauseSpecificCox(ties="breslow").fit(X, bmt.y, strata=bmt.extra["waiting_gt_200d"].to_numpy())
    published_coef = np.array([[-0.9453, 0.6162], [-0.3987, 0.1273]])
    published_se = np.array([[0.4508, 0.3636], [0.3946, 0.4031]])
    # published to 4 decimals (CAMIS: SAS PHREG = R coxph): rounding error ≤ 5e-5
    np.testing.assert_allclose(model.coef_, published_coef, atol=5e-5)
    np.testing.assert_allclose(model.coef_se_, published_se, atol=5e-5)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_cause_rows_equal_sksurv_cox_on_each_cause(ties):
    X, y = _sim(0)
    model = CauseSpecificCox(ties=ties).fit(X, y)
    for k, cause in enumerate((Cause.RELAPSE, Cause.TRM)):
        ref = CoxPHSurvivalAnalysis(ties=ties).fit(
            X, Surv.from_arrays((y.event == cause).to_numpy(), y.time.to_numpy())
        )
        # same objective, both Newton to convergence: only stopping rules differ
        np.testing.assert_allclose(model.coef_[k], ref.coef_, atol=1e-6)


def test_single_cause_no_competing_events_matches_sksurv():
    X, y = _sim(1)
    y = y.assign(event=np.where(y.event == Cause.TRM, Cause.CENSORED, y.event))
    model = CauseSpecificCox().fit(X, y)
    ref = CoxPHSurvivalAnalysis().fit(X, Surv.from_arrays((y.event == 1).to_numpy(), y.time.to_numpy()))
    np.testing.assert_allclose(model.coef_[0], ref.coef_, atol=1e-6)
    # no TRM events: the TRM row is zero and its CIF is 0; EFS = 1 − F1 equals sksurv's Breslow survival
    assert np.all(model.coef_[1] == 0)
    times = np.array([0.5, 1.0, 2.0])
    cif = model.predict_cumulative_incidence(X.iloc[:5], times)
    np.testing.assert_array_equal(cif[:, 2], 0.0)
    surv = np.array([[f(t) for t in times] for f in ref.predict_survival_function(X.iloc[:5])])
    # sksurv uses exp(−Λ); the product-limit form Π(1 − ΔΛ) differs by O(ΔΛ²) per step: a few 1e-3 at n=400
    np.testing.assert_allclose(cif[:, 0], surv, atol=5e-3)


def test_without_covariate_effect_cif_is_aalen_johansen():
    # With β = 0 (a constant covariate) the Breslow baseline is Nelson–Aalen and the product-limit combination is
    # exactly the Aalen–Johansen estimator; sksurv's implementation matches published CIFs to 1e-8.
    _, y = _sim(2)
    X = pd.DataFrame({"const": np.ones(len(y))})
    model = CauseSpecificCox().fit(X, y)
    grid, aj = cumulative_incidence_competing_risks(y.event.to_numpy(), y.time.to_numpy())
    times = np.array([0.1, 0.5, 1.0, 2.0, 3.0])
    idx = np.searchsorted(grid, times, side="right") - 1
    cif = model.predict_cumulative_incidence(X.iloc[:1], times)[0]
    np.testing.assert_allclose(cif[1], aj[1, idx], atol=1e-10)
    np.testing.assert_allclose(cif[2], aj[2, idx], atol=1e-10)


def test_positive_hazard_ratio_raises_relapse_cif():
    X, y = _sim(3)
    model = CauseSpecificCox().fit(X, y)
    assert model.coef_[0, 0] > 0
    lo, hi = X.iloc[:1].assign(a=-1.0), X.iloc[:1].assign(a=1.0)
    times = [0.5, 1.0, 2.0]
    assert np.all(
        model.predict_cumulative_incidence(hi, times)[0, 1] > model.predict_cumulative_incidence(lo, times)[0, 1]
    )


def test_prediction_shape_coherence_and_contributions():
    X, y = _sim(4)
    model = CauseSpecificCox().fit(X, y)
    # (times within follow-up: in the last risk sets ΔΛ1 + ΔΛ2 > 1 for high-risk patients, tested separately)
    cif = model.predict_cumulative_incidence(X, [0.0, 0.25, 0.5, 1.0, 1.5])
    assert cif.shape == (len(X), 3, 5)
    np.testing.assert_allclose(cif.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(np.diff(cif[:, 1:], axis=2) >= -1e-12)
    np.testing.assert_array_equal(cif[:, 0, 0], 1.0)  # no event at time 0
    contrib = model.contributions(X)
    assert contrib.shape == (len(X), 2, 2)
    np.testing.assert_allclose(contrib.sum(axis=2).T, model.predict_linear_predictor(X), atol=1e-12)
    assert model.summary().shape[0] == 4


def test_bootstrap_intervals_contract_clone_and_pickle():
    X, y = _sim(5, n=200)
    with pytest.raises(NotImplementedError):
        CauseSpecificCox().fit(X, y).predict_cumulative_incidence(X, [1.0], return_interval=True)
    model = CauseSpecificCox(n_bootstrap=20, random_state=0).fit(X, y)
    est, lo, hi = model.predict_cumulative_incidence(X.iloc[:10], [0.5, 1.0, 2.0], return_interval=True)
    assert est.shape == lo.shape == hi.shape == (10, 3, 3)
    assert np.all(lo <= est) and np.all(est <= hi)
    assert np.all(hi - lo > 0)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(
        again.predict_cumulative_incidence(X, [1.0]), model.predict_cumulative_incidence(X, [1.0])
    )
    twin = clone(model).fit(X, y)  # same seed, same resamples
    np.testing.assert_array_equal(twin.bootstrap_coef_, model.bootstrap_coef_)


def test_strata_required_at_prediction_and_column_check():
    X, y = _sim(6)
    g = np.random.default_rng(7).integers(0, 2, size=len(X))
    model = CauseSpecificCox().fit(X, y, strata=g)
    with pytest.raises(ValueError, match="strata"):
        model.predict_cumulative_incidence(X, [1.0])
    assert model.predict_cumulative_incidence(X, [1.0], strata=g).shape == (len(X), 3, 1)
    with pytest.raises(ValueError, match="columns"):
        model.predict_cumulative_incidence(X[["b", "a"]], [1.0], strata=g)


def test_tail_hazard_increments_above_one_are_rescaled_with_a_warning():
    from nbrisk.models._base import CIFCoherenceWarning

    X, y = _sim(4)
    model = CauseSpecificCox().fit(X, y)
    extreme = pd.DataFrame({"a": [4.0], "b": [1.0]})
    with pytest.warns(CIFCoherenceWarning):
        cif = model.predict_cumulative_incidence(extreme, [100.0])
    np.testing.assert_allclose(cif.sum(axis=1), 1.0)
    assert np.all(cif >= 0)


def test_factorised_exact_cif_equals_the_general_product_limit():
    """stacked_cause_specific_cif (matrix-product form, chunked, per stratum, per period of time-varying effects) =
    cif_from_cause_specific_hazards on the explicit increments h_k(u) r_k(x, u), to round-off (1e-12: the two differ
    only in summation order)."""
    from nbrisk.models._base import cif_from_cause_specific_hazards
    from nbrisk.models._cox_kernels import cox_linear_predictors, periods_of, stacked_cause_specific_cif

    rng = np.random.default_rng(3)
    m, n, p, S, R = 300, 700, 3, 2, 2
    grid = np.sort(rng.uniform(0.0, 100.0, size=m))
    base = rng.uniform(0.0, 0.004, size=(R, S, 2, m))
    X = rng.normal(size=(n, p))
    sidx = rng.integers(0, S, size=n)
    times = np.array([-1.0, 0.0, grid[0], 33.3, grid[150], 100.0, 250.0])
    for knots in (None, np.array([grid[100], 60.0])):
        P = 1 if knots is None else 3
        coef, intercept = rng.normal(0.0, 0.5, size=(R, P, 2, p)), rng.normal(0.0, 0.1, size=(R, 2))
        lp = cox_linear_predictors(coef, intercept, X)
        got = stacked_cause_specific_cif(grid, base, lp, times, sidx, knots)
        per = np.zeros(m, dtype=int) if knots is None else periods_of(grid, knots)
        for r in range(R):
            dh1 = base[r, sidx, 0] * np.exp(lp[r, per, 0].T)
            dh2 = base[r, sidx, 1] * np.exp(lp[r, per, 1].T)
            np.testing.assert_allclose(got[r], cif_from_cause_specific_hazards(grid, dh1, dh2, times), atol=1e-12)


def _sim_time_varying(seed: int, n: int, beta_early=1.2, beta_late=0.2, knot=1.0):
    """Relapse hazard 0.5 exp(β(t) b) with β = beta_early before ``knot`` and beta_late after; TRM 0.3 exp(0.5 a)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.binomial(1, 0.4, size=n).astype(float)})
    e1 = rng.exponential(size=n)  # Λ1(t) = 0.5 exp(βe b) min(t, knot) + 0.5 exp(βl b) (t − knot)+  inverted
    r_early, r_late = 0.5 * np.exp(beta_early * X.b), 0.5 * np.exp(beta_late * X.b)
    t1 = np.where(e1 <= r_early * knot, e1 / r_early, knot + (e1 - r_early * knot) / r_late)
    t2 = rng.exponential(1.0 / (0.3 * np.exp(0.5 * X.a)))
    c = rng.uniform(0.5, 4.0, size=n)
    time = np.minimum.reduce([t1, t2, c])
    event = np.where(time == t1, Cause.RELAPSE, np.where(time == t2, Cause.TRM, Cause.CENSORED))
    return X, pd.DataFrame({"event": event.astype(int), "time": time})


def test_time_varying_coefficients_equal_lifelines_on_split_data():
    """Step-function time-varying effects = an independent Cox fit (lifelines' CoxTimeVaryingFitter, Efron ties) on
    the follow-up split at the knot with an interaction column, as R's survSplit + coxph. Tolerance 1e-4: both
    Newton–Raphson to convergence on the same likelihood (continuous times, no ties)."""
    from lifelines import CoxTimeVaryingFitter

    from nbrisk.models.cox import split_episodes

    X, y = _sim_time_varying(11, 600)
    model = CauseSpecificCox(ties="efron", time_varying=("b",), time_varying_knots=(1.0,)).fit(X, y)
    row, start, stop, period, last = split_episodes(y.time.to_numpy(), np.array([1.0]))
    for k, cause in enumerate((Cause.RELAPSE, Cause.TRM)):
        long = pd.DataFrame(
            {
                "id": row,
                "start": start,
                "stop": stop,
                "event": ((y.event.to_numpy()[row] == cause) & last).astype(int),
                "a": X.a.to_numpy()[row],
                "b": X.b.to_numpy()[row],
                "b_late": X.b.to_numpy()[row] * (period == 1),
            }
        )
        ref = CoxTimeVaryingFitter().fit(long, id_col="id", start_col="start", stop_col="stop", event_col="event")
        np.testing.assert_allclose(model.coef_[k], ref.params_[["a", "b"]], atol=1e-4)
        np.testing.assert_allclose(model.tv_coef_[k, 0, 0], ref.params_["b_late"], atol=1e-4)
        np.testing.assert_allclose(model.coef_by_period_[1, k, 1], ref.params_["b"] + ref.params_["b_late"], atol=1e-4)
        np.testing.assert_allclose(model.coef_se_[k], ref.standard_errors_[["a", "b"]], rtol=1e-3)
        np.testing.assert_allclose(model.tv_se_[k, 0, 0], ref.standard_errors_["b_late"], rtol=1e-3)
    names = set(model.summary().feature)
    assert "b × (1, inf]" in names and len(model.summary()) == 2 * 3


def test_time_varying_effect_recovers_known_truth_where_proportional_hazards_cannot():
    """n = 4,000 with relapse log-HR 1.2 before t = 1 and 0.2 after: the step-function model recovers both within
    4 standard errors; the proportional-hazards model's single coefficient lies in between, far from both."""
    X, y = _sim_time_varying(12, 4000)
    tv = CauseSpecificCox(time_varying=("b",), time_varying_knots=(1.0,)).fit(X, y)
    se = np.sqrt(tv.coef_se_[0, 1] ** 2 + tv.tv_se_[0, 0, 0] ** 2)
    assert abs(tv.coef_by_period_[0, 0, 1] - 1.2) < 4 * tv.coef_se_[0, 1]
    assert abs(tv.coef_by_period_[1, 0, 1] - 0.2) < 4 * se
    assert abs(tv.coef_[1, 0] - 0.5) < 4 * tv.coef_se_[1, 0]  # TRM effect of a, no time variation
    ph = CauseSpecificCox().fit(X, y)
    assert 0.3 < ph.coef_[0, 1] < 1.1
    # the step model's CIF is coherent and its interval machinery works with periods
    boot = clone(tv).set_params(n_bootstrap=6, random_state=0).fit(X.iloc[:800], y.iloc[:800])
    est, lo, hi = boot.predict_cumulative_incidence(X.iloc[:50], [0.5, 1.0, 2.0, 3.0], return_interval=True)
    np.testing.assert_allclose(est.sum(axis=1), 1.0)
    assert np.all((lo <= est + 1e-12) & (est <= hi + 1e-12))
    assert pickle.loads(pickle.dumps(boot)).predict_cumulative_incidence(X.iloc[:5], [2.0]).shape == (5, 3, 1)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"time_varying": ("b",)}, "needs time_varying_knots"),
        ({"time_varying": ("nope*",), "time_varying_knots": (1.0,)}, "matches no feature"),
        ({"time_varying": ("b",), "time_varying_knots": (2.0, 1.0)}, "strictly increasing"),
        ({"time_varying": ("b",), "time_varying_knots": (0.0,)}, "positive"),
    ],
)
def test_time_varying_parameters_are_checked(params, match):
    X, y = _sim(1)
    with pytest.raises(ValueError, match=match):
        CauseSpecificCox(**params).fit(X, y)


def test_feature_subset_equals_a_fit_on_those_columns():
    """``features`` selects columns by pattern: the same fit as on the sub-frame, zeros elsewhere, same CIFs."""
    X, y = _sim(5)
    X = X.assign(noise=np.random.default_rng(0).normal(size=len(X)))
    sub = CauseSpecificCox(features=("a", "b")).fit(X, y)
    ref = CauseSpecificCox().fit(X[["a", "b"]], y)
    np.testing.assert_allclose(sub.coef_[:, :2], ref.coef_, atol=1e-10)
    np.testing.assert_array_equal(sub.coef_[:, 2], 0.0)
    np.testing.assert_allclose(sub.coef_se_[:, :2], ref.coef_se_, atol=1e-10)
    np.testing.assert_allclose(
        sub.predict_cumulative_incidence(X, [0.5, 2.0]),
        ref.predict_cumulative_incidence(X[["a", "b"]], [0.5, 2.0]),
        atol=1e-12,
    )
    assert list(sub.summary().feature) == ["a", "b", "a", "b"]
    with pytest.raises(ValueError, match="matches no feature"):
        CauseSpecificCox(features=("zzz",)).fit(X, y)
