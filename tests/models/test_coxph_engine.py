"""The Cox partial-likelihood engine (nbrisk.models._coxph) against scikit-survival, lifelines and exact identities."""

import numpy as np
import pandas as pd
import pytest
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

from nbrisk.models._coxph import fit_coxph


def _data(seed: int, n: int = 300, p: int = 3, round_to: int | None = 1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    beta = np.linspace(0.6, -0.4, p)
    T = rng.exponential(1.0 / np.exp(X @ beta))
    C = rng.exponential(1.5, size=n)
    t = np.minimum(T, C)
    if round_to is not None:  # heavy ties, so that Breslow and Efron differ
        t = np.round(t, round_to) + 0.1
    return X, t, (T <= C).astype(int)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
@pytest.mark.parametrize("alpha", [0.0, 3.0])
def test_matches_sksurv_coxph(ties, alpha):
    X, t, e = _data(0)
    ours = fit_coxph(X, t, e, ties=ties, alpha=alpha)
    ref = CoxPHSurvivalAnalysis(alpha=alpha, ties=ties).fit(X, Surv.from_arrays(e.astype(bool), t))
    # Same penalised objective (sksurv: −loglik/n + alpha‖β‖²/2n), both Newton to convergence (tol 1e-9):
    # agreement is limited only by the stopping rules, far below 1e-6.
    np.testing.assert_allclose(ours.coef, ref.coef_, atol=1e-6)


def test_breslow_and_efron_differ_on_tied_data():
    X, t, e = _data(0)
    b = fit_coxph(X, t, e, ties="breslow").coef
    f = fit_coxph(X, t, e, ties="efron").coef
    assert np.max(np.abs(b - f)) > 1e-3


def test_matches_lifelines_efron_with_weights_and_robust_se():
    from lifelines import CoxPHFitter

    X, t, e = _data(1, round_to=None)  # no ties: lifelines' Efron score residuals are exact only then
    w = np.random.default_rng(2).uniform(0.5, 2.0, size=len(t))
    df = pd.DataFrame(X, columns=["a", "b", "c"]).assign(T=t, E=e, w=w)
    ours = fit_coxph(X, t, e, ties="efron", weights=w)
    ref = CoxPHFitter().fit(df, "T", "E", weights_col="w", robust=True)
    # lifelines converges to ~1e-7 in β; the robust SE is a sandwich of the same residuals.
    np.testing.assert_allclose(ours.coef, ref.params_.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.se_robust, ref.standard_errors_.to_numpy(), rtol=1e-5)
    ref_model = CoxPHFitter().fit(df.drop(columns="w"), "T", "E")
    ours_unw = fit_coxph(X, t, e, ties="efron")
    np.testing.assert_allclose(ours_unw.se_model, ref_model.standard_errors_.to_numpy(), rtol=1e-5)


def test_stratified_matches_lifelines():
    from lifelines import CoxPHFitter

    X, t, e = _data(3, round_to=None)
    g = (X[:, 2] > 0).astype(int)
    df = pd.DataFrame(X[:, :2], columns=["a", "b"]).assign(T=t, E=e, g=g)
    ref = CoxPHFitter().fit(df, "T", "E", strata=["g"])
    ours = fit_coxph(X[:, :2], t, e, strata=g, ties="efron")
    np.testing.assert_allclose(ours.coef, ref.params_.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.se_model, ref.standard_errors_.to_numpy(), rtol=1e-5)


def test_integer_weights_equal_replicated_rows():
    # Breslow's likelihood with weight 2 is exactly the likelihood with the row duplicated (an exact identity).
    X, t, e = _data(4)
    w = np.random.default_rng(5).integers(1, 4, size=len(t))
    rep = np.repeat(np.arange(len(t)), w)
    a = fit_coxph(X, t, e, weights=w.astype(float))
    b = fit_coxph(X[rep], t[rep], e[rep])
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-10)
    np.testing.assert_allclose(a.var_model, b.var_model, atol=1e-10)
    np.testing.assert_allclose(a.baseline[None][1], b.baseline[None][1], rtol=1e-10)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_counting_process_split_is_invariant(ties):
    # Splitting each subject's follow-up (0, T] into (0, s] + (s, T] leaves every risk set unchanged, so β, the
    # information, the baseline and the subject-clustered robust variance are identical.
    X, t, e = _data(6)
    rng = np.random.default_rng(7)
    s = t * rng.uniform(0.2, 0.8, size=len(t))
    n = len(t)
    Xs = np.vstack([X, X])
    start = np.concatenate([np.zeros(n), s])
    stop = np.concatenate([s, t])
    ev = np.concatenate([np.zeros(n, dtype=int), e])
    ids = np.concatenate([np.arange(n), np.arange(n)])
    whole = fit_coxph(X, t, e, ties=ties)
    split = fit_coxph(Xs, stop, ev, start=start, ties=ties, cluster=ids)
    np.testing.assert_allclose(split.coef, whole.coef, atol=1e-10)
    np.testing.assert_allclose(split.var_model, whole.var_model, atol=1e-10)
    np.testing.assert_allclose(split.var_robust, whole.var_robust, atol=1e-10)
    np.testing.assert_allclose(split.baseline[None][1], whole.baseline[None][1], rtol=1e-9)


def test_breslow_baseline_definition_and_score_residuals_sum_to_score():
    X, t, e = _data(8)
    res = fit_coxph(X, t, e)
    times, dh = res.baseline[None]
    risk = np.exp((X - res.center) @ res.coef)
    expected = np.array([np.sum((t == u) & (e == 1)) / risk[t >= u].sum() for u in times])
    np.testing.assert_allclose(dh, expected, rtol=1e-12)
    # at the MLE the score is zero, and Σ U_i is the score: |score| ≈ I·|β̂ − β*| with I ~ 100 and Newton stopped
    # at a relative log-likelihood change of 1e-9 (|β̂ − β*| ≲ 1e-8)
    np.testing.assert_allclose(res.score_residuals.sum(axis=0), 0.0, atol=1e-6)


def test_separation_converges_with_the_coefficient_flagged_infinite():
    # a binary covariate whose level 1 never has the event: the MLE is −∞ (R: "coefficient may be infinite")
    X, t, e = _data(10)
    z = (np.arange(len(t)) % 7 == 0).astype(float)
    e = np.where(z == 1, 0, e)
    res = fit_coxph(np.column_stack([X, z]), t, e)
    assert res.converged
    assert res.possibly_infinite.tolist() == [False, False, False, True]
    assert res.coef[3] < -5


def test_no_events_and_bad_input():
    X, t, _ = _data(9, n=20)
    res = fit_coxph(X, t, np.zeros(20, dtype=int))
    np.testing.assert_array_equal(res.coef, 0.0)
    with pytest.raises(ValueError, match="ties"):
        fit_coxph(X, t, np.zeros(20, dtype=int), ties="exact")
    with pytest.raises(ValueError, match="start < stop"):
        fit_coxph(X, t, np.zeros(20, dtype=int), start=t)


def _runaway_newton_data(n: int = 40):
    """Data on which the first Newton step diverges on any CPU: the two patients with x = 1 have the first two events
    but case weights 1e-12, so at β = 0 the score is ~2e-12 and the information ~8e-26: the Newton step (~2.5e13)
    is so large that even 2⁻³⁰ of it (~2e4) sends the relative risk of every x = 0 patient to exp(−2e4) = 0, and the
    risk sets of the later events underflow. Magnitudes are orders away from any threshold, so round-off (which
    BLAS, which CPU) cannot change the outcome."""
    x = np.zeros(n)
    x[:2] = 1.0
    time = np.arange(1.0, n + 1)
    event = np.ones(n, dtype=int)
    event[3::3] = 0
    weights = np.ones(n)
    weights[:2] = 1e-12
    return x, time, event, weights


def test_diverging_fit_keeps_the_last_finite_coefficients():
    """A Newton iteration that runs into β at which whole risk sets underflow (separation; first seen on a bootstrap
    resample in the known-truth benchmark) must stop at the last finite β — flagged not converged, with a
    ConvergenceWarning, finite baseline — rather than return NaN, which made every bootstrap interval NaN. Built to
    diverge deterministically (:func:`_runaway_newton_data`): the engine and the cause-specific Cox model on top."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from nbrisk.models._base import CIFCoherenceWarning
    from nbrisk.models.cox import CauseSpecificCox

    x, time, event, weights = _runaway_newton_data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fit_coxph(x[:, None], time, event, weights=weights)
    assert not res.converged and any(issubclass(w.category, ConvergenceWarning) for w in caught)
    assert not [w for w in caught if not issubclass(w.category, ConvergenceWarning)]  # no overflow on the way
    assert res.n_iter == 1 and res.coef[0] == 0.0  # the runaway step was refused: the last finite β is the start
    assert np.isfinite(res.loglik) and res.loglik == res.loglik_null
    assert np.all(np.isfinite(res.baseline[None][1])) and np.all(np.isfinite(res.var_model))
    # unweighted, the same separation is an ordinary monotone likelihood: converged, coefficient flagged infinite
    plain = fit_coxph(x[:, None], time, event)
    assert plain.converged and plain.possibly_infinite[0] and np.isfinite(plain.coef[0])

    # the same through CauseSpecificCox: the first two patients' events are TRM (cause 2), the others relapse
    X = pd.DataFrame({"x": x, "z": np.linspace(-1.0, 1.0, len(x))})
    y = pd.DataFrame({"event": np.where(np.arange(len(x)) < 2, 2, event), "time": time})
    model = CauseSpecificCox()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y, sample_weight=weights)
    assert np.all(np.isfinite(model.coef_by_period_)) and np.all(np.isfinite(model.intercept_))
    assert np.all(np.isfinite(model.baseline_hazard_))
    assert not model.converged_ and any(issubclass(w.category, ConvergenceWarning) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CIFCoherenceWarning)  # a diverged fit may need the documented rescaling
        cif = model.predict_cumulative_incidence(X, [10.0, 30.0])
    assert np.all(np.isfinite(cif))


def test_bootstrap_resample_near_separation_gives_a_finite_fit():
    """The bootstrap resample of the synthetic cohort on which the divergence was first seen: a time-varying status
    column nearly separates the TRM events. Whether the Newton iterations stop on a flat log-likelihood (coefficients
    flagged possibly infinite) or run into underflowing risk sets (stopped at the last finite β) depends on the last
    bits of the arithmetic, i.e. on the CPU's BLAS kernels; either way the fit and its predictions must be finite, and
    "not converged" must come with a ConvergenceWarning (the deterministic case is the test above)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state

    from nbrisk.features.outcomes import derive_outcomes
    from nbrisk.features.pipeline import CLINICAL_PREDICTORS, make_feature_pipeline
    from nbrisk.features.synthetic import make_synthetic_cohort
    from nbrisk.models._base import CIFCoherenceWarning
    from nbrisk.models.cox import CauseSpecificCox

    train = make_synthetic_cohort(2000, seed=20260101)
    X = make_feature_pipeline().fit(train).transform(train)
    for c in sorted(train.center_id.unique())[1:]:
        X[f"center={c}"] = (train.center_id == c).to_numpy(float)
    y = derive_outcomes(train)[["event", "time"]]
    rng = check_random_state(0)
    idx = [rng.randint(0, 2000, size=2000) for _ in range(76)][75]
    model = CauseSpecificCox(
        features=(*CLINICAL_PREDICTORS, "center=*"),
        time_varying=("disease_status_at_hsct=*",),
        time_varying_knots=(182.625, 365.25),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X.iloc[idx], y.iloc[idx])
    assert np.all(np.isfinite(model.coef_by_period_)) and np.all(np.isfinite(model.intercept_))
    assert np.all(np.isfinite(model.baseline_hazard_))
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    assert model.converged_ != warned
    with warnings.catch_warnings():
        # the diverged TRM coefficients make some hazard increments > 1 (rescaled, documented)
        warnings.simplefilter("ignore", CIFCoherenceWarning)
        cif = model.predict_cumulative_incidence(X.iloc[:20], [365.25, 730.5])
    assert np.all(np.isfinite(cif))
