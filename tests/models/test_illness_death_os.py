"""IllnessDeathModel / PostRelapseModel: known-truth OS, coherence (hypothesis), reference Cox, contract."""

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, clone
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

from nbrisk.core import DAYS_PER_MONTH, Cause, RiskCurves, State
from nbrisk.models.cox import CauseSpecificCox
from nbrisk.models.illness_death import IllnessDeathModel, PostRelapseModel


def _simulate(seed: int, n: int, l1=0.04, l2=0.01, l12=0.15, beta=(0.0, 0.0, 0.0), follow=80.0):
    """Exponential illness–death data in months → days: relapse λ1, TRM λ2, death after relapse λ12 (per month).

    ``beta`` = effects of one normal covariate on λ1, λ2, λ12. Censoring uniform on (20, follow) months.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t1 = rng.exponential(1.0 / (l1 * np.exp(beta[0] * x)))
    t2 = rng.exponential(1.0 / (l2 * np.exp(beta[1] * x)))
    c = rng.uniform(20.0, follow, size=n)
    t = np.minimum.reduce([t1, t2, c])
    event = np.where(t == t1, Cause.RELAPSE, np.where(t == t2, Cause.TRM, Cause.CENSORED)).astype(int)
    u = rng.exponential(1.0 / (l12 * np.exp(beta[2] * x)))
    rel = event == Cause.RELAPSE
    post_u = np.where(rel, np.minimum(u, c - t), np.nan)
    post_d = (rel & (u <= c - t)).astype(int)
    y = pd.DataFrame(
        {
            "event": event,
            "time": t * DAYS_PER_MONTH,
            "relapse_time": np.where(rel, t * DAYS_PER_MONTH, np.nan),
            "post_relapse_time": np.maximum(post_u * DAYS_PER_MONTH, 0.5),
            "post_relapse_event": post_d,
        }
    )
    return pd.DataFrame({"x": x}), y


def _true_os(t, l1, l2, l12):
    lam = l1 + l2
    return np.exp(-lam * t) + l1 / (lam - l12) * (np.exp(-l12 * t) - np.exp(-lam * t))


def test_overall_survival_recovers_known_truth():
    l1, l2, l12 = 0.04, 0.01, 0.15
    X, y = _simulate(0, 3000, l1, l2, l12)
    model = IllnessDeathModel(CauseSpecificCox(), PostRelapseModel(alpha=0.0), n_bootstrap=0).fit(X, y)
    h = np.array([6.0, 12.0, 24.0, 36.0])
    states = model.predict_states(pd.DataFrame({"x": [0.0]}), h * DAYS_PER_MONTH)[0]
    true_efs = np.exp(-(l1 + l2) * h)
    # binomial SE of OS at n = 3000 is ≤ 0.009 and the fitted β ≈ 0 adds little: 0.03 ≈ 3 SE; the monthly grid's
    # mid-bin approximation adds < 0.005 here (λ12 · 15 days × relapse mass per month ≤ 0.075 × 0.04)
    np.testing.assert_allclose(states[State.EFS], true_efs, atol=0.03)
    np.testing.assert_allclose(states[State.OS], _true_os(h, l1, l2, l12), atol=0.03)
    # a finer grid changes OS by less than the stated approximation bound
    fine = (
        clone(model)
        .set_params(grid_months=0.25)
        .fit(X, y)
        .predict_states(pd.DataFrame({"x": [0.0]}), h * DAYS_PER_MONTH)[0]
    )
    np.testing.assert_allclose(states[State.OS], fine[State.OS], atol=5e-3)


def test_overall_survival_equals_brute_force_convolution():
    X, y = _simulate(1, 400, beta=(0.5, -0.3, 0.4))
    model = IllnessDeathModel(CauseSpecificCox(), n_bootstrap=0).fit(X, y)
    x = pd.DataFrame({"x": [0.7]})
    h = np.array([12.0, 30.0])
    times = h * DAYS_PER_MONTH
    got = model.predict_states(x, times)[0]
    edges = np.union1d(np.arange(0.0, times.max(), DAYS_PER_MONTH)[1:], times)
    f = model.cr_model_.predict_cumulative_incidence(x, edges)[0]
    mids = 0.5 * (np.concatenate([[0.0], edges[:-1]]) + edges)
    df1 = np.diff(np.concatenate([[0.0], f[State.RELAPSE]]))
    for j, t in enumerate(times):
        os_ = f[State.EFS, edges == t][0]
        for b in np.flatnonzero(edges <= t):
            os_ += df1[b] * model.post_relapse_.predict_survival(x, [mids[b]], [t - mids[b]])[0, 0]
        assert got[State.OS, j] == pytest.approx(os_, abs=1e-12)


def test_post_relapse_model_matches_sksurv_cox():
    X, y = _simulate(2, 800, beta=(0.0, 0.0, 0.6))
    pm = PostRelapseModel(alpha=0.0).fit(X, y)
    rel = y.relapse_time.notna().to_numpy()
    # the relapse-time covariates: log months to relapse (relapse times clipped at half a day, documented) and the
    # early-relapse indicator (< 6 months after HSCT)
    r = y.relapse_time[rel].to_numpy()
    Z = np.column_stack([X.x[rel], np.log(np.maximum(r, 0.5) / DAYS_PER_MONTH), r < 6 * DAYS_PER_MONTH])
    ref = CoxPHSurvivalAnalysis().fit(
        Z, Surv.from_arrays(y.post_relapse_event[rel].astype(bool), y.post_relapse_time[rel])
    )
    # same partial likelihood, both Newton to convergence
    np.testing.assert_allclose(pm.coef_, ref.coef_, atol=1e-6)
    assert pm.coef_[0] == pytest.approx(0.6, abs=3 * pm.coef_se_[0])  # true effect within 3 SE
    # a feature subset: the same fit without the unused column (coefficient 0, SE NaN there)
    X2 = X.assign(noise=np.random.default_rng(1).normal(size=len(X)))
    sub = PostRelapseModel(alpha=0.0, features=("x",)).fit(X2, y)
    np.testing.assert_allclose(sub.coef_[[0, 2, 3]], pm.coef_, atol=1e-10)
    assert sub.coef_[1] == 0.0 and np.isnan(sub.coef_se_[1])
    np.testing.assert_allclose(sub.linear_predictor(X2), pm.linear_predictor(X), atol=1e-10)


def test_contract_fit_from_derived_outcomes_intervals_and_pickle():
    X, y = _simulate(3, 300, beta=(0.5, 0.3, 0.2))
    model = IllnessDeathModel(CauseSpecificCox(), n_bootstrap=10, random_state=1).fit(X, y)
    assert model.supports_intervals
    curves = model.predict_curves(X.iloc[:20], [3, 12, 24, 36])
    assert isinstance(curves, RiskCurves)
    curves.check()
    est, lo, hi = model.predict_states(X.iloc[:20], [0.0, 100.0, 700.0], return_interval=True)
    assert est.shape == (20, 4, 3)
    assert np.all(lo <= est) and np.all(est <= hi)
    at_zero = {State.EFS: 1.0, State.RELAPSE: 0.0, State.TRM: 0.0, State.OS: 1.0}  # everyone event-free and alive
    np.testing.assert_array_equal(est[:, :, 0], [[at_zero[s] for s in State]] * 20)
    cif = model.predict_cumulative_incidence(X.iloc[:5], [100.0, 700.0])
    np.testing.assert_allclose(cif, model.cr_model_.predict_cumulative_incidence(X.iloc[:5], [100.0, 700.0]))
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_states(X, [365.0]), model.predict_states(X, [365.0]))
    twin = clone(model).fit(X, y)
    np.testing.assert_array_equal(
        twin.predict_states(X, [365.0], return_interval=True)[1],
        model.predict_states(X, [365.0], return_interval=True)[1],
    )
    with pytest.raises(NotImplementedError):
        clone(model).set_params(n_bootstrap=0).fit(X, y).predict_states(X, [365.0], return_interval=True)
    # unsorted, repeated horizons come back in the order asked
    a = model.predict_states(X.iloc[:3], [700.0, 100.0, 700.0])
    b = model.predict_states(X.iloc[:3], [100.0, 700.0])
    np.testing.assert_array_equal(a[..., 0], b[..., 1])
    np.testing.assert_array_equal(a[..., 1], b[..., 0])


class _Opaque(BaseEstimator):
    """A non-Cox competing-risks estimator (wraps CauseSpecificCox) to exercise the generic replicate path."""

    def __init__(self, alpha=0.0, time_varying=(), time_varying_knots=()):
        self.alpha = alpha
        self.time_varying = time_varying
        self.time_varying_knots = time_varying_knots

    def fit(self, X, y):
        self.inner_ = CauseSpecificCox(
            alpha=self.alpha, time_varying=self.time_varying, time_varying_knots=self.time_varying_knots
        ).fit(X, y)
        return self

    def predict_cumulative_incidence(self, X, times):
        return self.inner_.predict_cumulative_incidence(X, times)


@pytest.mark.parametrize("tv", [{}, {"time_varying": ("x",), "time_varying_knots": (365.0,)}])
def test_generic_path_agrees_with_closed_form_path(tv):
    X, y = _simulate(4, 300, beta=(0.5, 0.3, 0.2))
    fast = IllnessDeathModel(CauseSpecificCox(**tv), n_bootstrap=8, random_state=2).fit(X, y)
    slow = IllnessDeathModel(_Opaque(**tv), n_bootstrap=8, random_state=2).fit(X, y)
    assert fast._cr_stack_ is not None and slow._cr_stack_ is None
    times = [180.0, 365.0, 730.0]
    ef, lf, hf = fast.predict_states(X.iloc[:30], times, return_interval=True)
    es, ls, hs = slow.predict_states(X.iloc[:30], times, return_interval=True)
    np.testing.assert_allclose(ef, es, atol=1e-12)  # both exact for the point estimate
    # replicates: binned closed form (monthly bins) vs exact product-limit, documented error ~1e-3; up to ~1e-2 for
    # the most extreme patient of a replicate (x ≈ 2.5: relapse hazard ×5), shrinking with finer bins (0.25 month:
    # 1.5e-3, measured)
    np.testing.assert_allclose(lf, ls, atol=1e-2)
    np.testing.assert_allclose(hf, hs, atol=1e-2)
    assert np.mean(np.abs(lf - ls)) < 1e-3 and np.mean(np.abs(hf - hs)) < 1e-3


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(30, 80),
    beta=st.tuples(*[st.floats(-1.5, 1.5)] * 3),
    horizons=st.lists(st.floats(0.5, 100.0), min_size=1, max_size=5),
)
def test_curves_are_coherent_for_random_data(seed, n, beta, horizons):
    X, y = _simulate(seed, n, l1=0.08, l2=0.03, l12=0.2, beta=beta)
    model = IllnessDeathModel(CauseSpecificCox(alpha=0.1), n_bootstrap=4, random_state=seed).fit(X, y)
    grid = np.linspace(-3, 3, 7)
    h = np.sort(np.asarray(horizons))
    import warnings

    from nbrisk.models._base import CIFCoherenceWarning

    with warnings.catch_warnings():
        # small random data: tail hazard increments > 1 are rescaled (tested in test_cox_cause_specific)
        warnings.simplefilter("ignore", CIFCoherenceWarning)
        curves = model.predict_curves(pd.DataFrame({"x": grid}), h)
    curves.check()  # [0, 1], monotone, efs = 1 − relapse − trm, os ≥ efs, 1 − os ≥ trm, lower ≤ est ≤ upper


def test_default_post_relapse_model_uses_the_pre_specified_predictors():
    X, y = _simulate(6, 300, beta=(0.5, 0.3, 0.2))
    X2 = X.assign(noise=np.random.default_rng(2).normal(size=len(X)))
    idm = IllnessDeathModel(CauseSpecificCox(features=("x",)), n_bootstrap=0).fit(X2, y)
    assert idm.post_relapse_.features == ("x",)
    assert idm.cr_model_.coef_[0, 1] == 0.0 and idm.post_relapse_.coef_[1] == 0.0
    assert IllnessDeathModel(CauseSpecificCox(), n_bootstrap=0).fit(X2, y).post_relapse_.features == ()


def test_small_and_large_batch_paths_agree(monkeypatch):
    """The OS convolution works on whole arrays for a few patients and loops over bins for many; both give the same
    curves and intervals (float32 replicates: 1e-5), with and without time-varying effects."""
    import nbrisk.models.illness_death as idm_module

    X, y = _simulate(8, 300, beta=(0.5, 0.3, 0.2))
    for cr in (CauseSpecificCox(), CauseSpecificCox(time_varying=("x",), time_varying_knots=(365.0,))):
        model = IllnessDeathModel(cr, n_bootstrap=6, random_state=1).fit(X, y)
        times = [0.0, 180.0, 365.0, 1000.0]
        monkeypatch.setattr(idm_module, "_SMALL_CELLS", 10**9)
        small = model.predict_states(X.iloc[:40], times, return_interval=True)
        monkeypatch.setattr(idm_module, "_SMALL_CELLS", 0)
        large = model.predict_states(X.iloc[:40], times, return_interval=True)
        for a, b in zip(small, large, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)


class _OpaqueFineGray(BaseEstimator):
    """FineGray behind a wrapper: forces the generic (one replicate at a time) path."""

    def fit(self, X, y):
        from nbrisk.models.fine_gray import FineGray

        self.inner_ = FineGray().fit(X, y)
        return self

    def predict_cumulative_incidence(self, X, times):
        return self.inner_.predict_cumulative_incidence(X, times)


def test_fine_gray_replicates_in_closed_form_equal_their_own_predictions():
    """All Fine–Gray replicates at once (closed form, capped pairs from each replicate) = each replicate's own
    prediction (the generic path), to float32 round-off; the data include patients whose F1 + F2 is capped."""
    from nbrisk.models.fine_gray import FineGray

    X, y = _simulate(9, 300, l1=0.08, l2=0.04, beta=(1.5, 1.2, 0.2))
    X = X.assign(x=X.x * 1.5)
    fast = IllnessDeathModel(FineGray(), n_bootstrap=6, random_state=3).fit(X, y)
    slow = IllnessDeathModel(_OpaqueFineGray(), n_bootstrap=6, random_state=3).fit(X, y)
    times = [90.0, 365.0, 1500.0]
    # capping happens, and before the last horizon (so the constant-after-crossing part is exercised)
    assert any(cr.incoherent_patients(X, [365.0]).any() for cr, _ in fast.replicates_)
    for a, b in zip(
        fast.predict_states(X, times, return_interval=True),
        slow.predict_states(X, times, return_interval=True),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# Plans kept per set of horizons (the service asks for the same horizons again and again): what does not depend on
# the patients is built once and kept read-only on the model. They must change nothing, bit for bit.


def _tv_model(n_bootstrap=6):
    X, y = _simulate(9, 300, beta=(0.5, 0.3, 0.2))
    cr = CauseSpecificCox(alpha=0.5, time_varying=("x",), time_varying_knots=(180.0, 365.0))
    return IllnessDeathModel(cr, n_bootstrap=n_bootstrap, random_state=3).fit(X, y), X


HORIZON_SETS = ([365.0, 730.0, 1095.0, 1826.0], [730.0], [90.0, 730.0, 3000.0], [0.0, 365.0, 730.0], [15.0, 400.0])


def test_kept_plans_give_the_same_answers_bit_for_bit_as_a_fresh_model():
    model, X = _tv_model()
    fresh = [pickle.loads(pickle.dumps(model)) for _ in HORIZON_SETS]  # no plan kept: each builds its own
    for one in (X.iloc[:1], X.iloc[5:6], X.iloc[:60]):
        for _ in range(2):  # the second round reads the kept plans
            for times, other in zip(HORIZON_SETS, fresh, strict=True):
                got = model.predict_states(one, times, return_interval=True)
                want = pickle.loads(pickle.dumps(other)).predict_states(one, times, return_interval=True)
                for a, b in zip(got, want, strict=True):
                    np.testing.assert_array_equal(a, b)
                np.testing.assert_array_equal(model.predict_states(one, times), got[0])


def test_main_fit_through_its_kept_plan_equals_the_exact_kernel():
    from nbrisk.models._cox_kernels import cox_linear_predictors, stacked_cause_specific_cif

    model, X = _tv_model()
    stack = model._cr_stack_
    Xa = X.to_numpy()[:25]
    edges = model._plan(np.asarray([365.0, 730.0, 1826.0]), 1).edges
    main, _ = stack.evaluate(X.iloc[:25], Xa, edges, 1)
    lp = cox_linear_predictors(stack.coef[:1], stack.intercept[:1], Xa)
    want = stacked_cause_specific_cif(stack.grid, stack.baseline[:1], lp, edges, knots=stack.knots)[0]
    np.testing.assert_array_equal(main, want)
    # and the competing-risks model's own prediction (the same exact kernel, called without a kept plan)
    np.testing.assert_allclose(main, model.cr_model_.predict_cumulative_incidence(X.iloc[:25], edges), atol=1e-12)


def test_plans_are_bounded_and_never_pickled():
    model, X = _tv_model(n_bootstrap=2)
    for h in range(1, 41):
        model.predict_states(X.iloc[:1], [30.0 * h], return_interval=True)
    assert 0 < len(model._plans_) <= 16 and 0 < len(model._cr_stack_._cache) <= 16
    clone_ = pickle.loads(pickle.dumps(model))
    assert clone_._plans_ == {} and clone_._cr_stack_._cache == {}


def test_threads_sharing_the_kept_plans_get_the_answers_of_one_thread():
    from concurrent.futures import ThreadPoolExecutor

    model, X = _tv_model()
    jobs = [(i % 40, HORIZON_SETS[i % len(HORIZON_SETS)]) for i in range(200)]
    alone = [pickle.loads(pickle.dumps(model)).predict_states(X.iloc[i : i + 1], t, True) for i, t in jobs[:40]]
    alone += [model.predict_states(X.iloc[i : i + 1], t, True) for i, t in jobs[40:]]
    with ThreadPoolExecutor(4) as pool:
        shared = list(pool.map(lambda job: model.predict_states(X.iloc[job[0] : job[0] + 1], job[1], True), jobs))
    for got, want in zip(shared, alone, strict=True):
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
