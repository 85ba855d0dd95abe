"""FineGray: survival::mgus2 published numbers, exact identities with Cox, a known-truth simulation, coherence."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

from nbrisk.core import Cause
from nbrisk.models.fine_gray import FineGray, coherent_cifs


def test_mgus2_published_fine_gray_coefficients():
    from nbrisk.features.public import load_mgus2

    data = load_mgus2()
    X = data.X[["male"]]
    assert np.bincount(data.y.event).tolist() == [409, 115, 860]  # published counts (docs/statistics.md)
    # the reference (R survival vignette "compete": finegray + coxph) uses Efron ties and model-based SEs
    model = FineGray(ties="efron").fit(X, data.y)
    # published to 4 decimals (progression) and 5 decimals (death): rounding error ≤ 5e-5 and ≤ 5e-6
    assert model.coef_[0, 0] == pytest.approx(-0.2290, abs=5e-5)
    assert model.coef_se_model_[0, 0] == pytest.approx(0.1866, abs=5e-5)
    assert model.coef_[1, 0] == pytest.approx(0.23349, abs=5e-6)
    assert model.coef_se_model_[1, 0] == pytest.approx(0.06894, abs=5e-6)
    # cmprsk::crr's Breslow ties move the death coefficient by ~1e-3 on these tied monthly times (docs/statistics.md)
    breslow = FineGray(ties="breslow").fit(X, data.y)
    assert 1e-4 < abs(breslow.coef_[1, 0] - model.coef_[1, 0]) < 2e-3


def _competing(seed, n=600, censor=True):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.binomial(1, 0.5, size=n).astype(float)})
    t1 = rng.exponential(1.0 / (0.4 * np.exp(0.6 * X.a)))
    t2 = rng.exponential(1.0 / (0.3 * np.exp(-0.5 * X.b)))
    c = rng.uniform(0.5, 4.0, size=n) if censor else np.full(n, np.inf)
    t = np.minimum.reduce([t1, t2, c])
    event = np.where(t == t1, Cause.RELAPSE, np.where(t == t2, Cause.TRM, Cause.CENSORED)).astype(int)
    return X, pd.DataFrame({"event": event, "time": np.round(t, 2) + 0.01})


def test_without_competing_events_fine_gray_is_cox():
    X, y = _competing(0)
    y = y.assign(event=np.where(y.event == Cause.TRM, Cause.CENSORED, y.event))
    model = FineGray().fit(X, y)
    ref = CoxPHSurvivalAnalysis().fit(X, Surv.from_arrays((y.event == 1).to_numpy(), y.time.to_numpy()))
    np.testing.assert_allclose(model.coef_[0], ref.coef_, atol=1e-6)  # identical likelihood; stopping rules only


def test_without_censoring_competing_patients_stay_at_risk_forever():
    # Complete data: Ĝ ≡ 1, so the Fine–Gray risk set is a Cox risk set in which the other cause never leaves:
    # exactly a Cox model with other-cause times moved beyond the last cause-k time (Fine & Gray 1999, §2).
    X, y = _competing(1, censor=False)
    model = FineGray().fit(X, y)
    for k, cause in enumerate((Cause.RELAPSE, Cause.TRM)):
        is_k = (y.event == cause).to_numpy()
        t = np.where(is_k | (y.event == 0), y.time, y.time.max() + 1.0)
        ref = CoxPHSurvivalAnalysis().fit(X, Surv.from_arrays(is_k, t))
        np.testing.assert_allclose(model.coef_[k], ref.coef_, atol=1e-6)


def _simulate_fine_gray(seed, n, beta1, beta2, p=0.3):
    """Fine & Gray (1999) §5: F1(t | x) = 1 − [1 − p(1 − e^{−t})]^{exp(xβ1)}; cause 2 given not cause 1 is
    exponential with rate exp(xβ2). Censoring uniform(0, 3)."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.binomial(1, 0.5, size=n), rng.normal(size=n)]).astype(float)
    e1 = np.exp(X @ beta1)
    p1 = 1.0 - (1.0 - p) ** e1
    is1 = rng.uniform(size=n) < p1
    u = rng.uniform(size=n)
    t1 = -np.log(1.0 - (1.0 - (1.0 - u * p1) ** (1.0 / e1)) / p)
    t2 = rng.exponential(1.0 / np.exp(X @ beta2))
    t = np.where(is1, t1, t2)
    c = rng.uniform(0.0, 3.0, size=n)
    event = np.where(t <= c, np.where(is1, Cause.RELAPSE, Cause.TRM), Cause.CENSORED).astype(int)
    return pd.DataFrame(X, columns=["z1", "z2"]), pd.DataFrame({"event": event, "time": np.minimum(t, c)})


def test_recovers_known_subdistribution_coefficients():
    beta1 = np.array([0.5, -0.5])
    X, y = _simulate_fine_gray(3, 1500, beta1, np.array([0.5, 0.5]))
    model = FineGray().fit(X, y)
    # the cause-1 model is correctly specified: γ̂ within 3 robust SEs of the truth (seeded, not flaky)
    assert np.all(np.abs(model.coef_[0] - beta1) < 3 * model.coef_se_[0])
    # and the fitted CIF at x = 0 is close to the true one (n = 1500: SE ≈ 0.02; tolerance 0.05 ≈ 2.5 SE)
    times = np.array([0.5, 1.0, 2.0])
    cif = model.predict_cumulative_incidence(pd.DataFrame({"z1": [0.0], "z2": [0.0]}), times)[0]
    np.testing.assert_allclose(cif[1], 0.3 * (1 - np.exp(-times)), atol=0.05)


def test_positive_coefficient_raises_cif_and_prediction_contract():
    X, y = _competing(4)
    model = FineGray().fit(X, y)
    assert model.coef_[0, 0] > 0
    lo, hi = X.iloc[:1].assign(a=-1.0), X.iloc[:1].assign(a=1.0)
    times = [0.5, 1.0, 2.0]
    assert np.all(
        model.predict_cumulative_incidence(hi, times)[0, 1] > model.predict_cumulative_incidence(lo, times)[0, 1]
    )
    cif = model.predict_cumulative_incidence(X, [0.0, 0.25, 0.5, 1.0])  # (coherent range; capping tested below)
    assert cif.shape == (len(X), 3, 4)
    np.testing.assert_allclose(cif.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(np.diff(cif[:, 1:], axis=2) >= 0)
    with pytest.raises(NotImplementedError):
        model.predict_cumulative_incidence(X, [1.0], return_interval=True)
    np.testing.assert_allclose(model.contributions(X).sum(axis=2).T, model.predict_linear_predictor(X), atol=1e-12)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.coef_, clone(model).fit(X, y).coef_)


def test_incoherent_sum_is_detected_and_capped_monotonically():
    f1 = np.array([[0.2, 0.6, 0.7, 0.7], [0.1, 0.2, 0.3, 0.4]])
    f2 = np.array([[0.1, 0.3, 0.5, 0.9], [0.1, 0.1, 0.2, 0.3]])
    g1, g2, bad = coherent_cifs(f1, f2)
    assert bad.tolist() == [True, False]
    np.testing.assert_allclose(g1[1], f1[1])
    np.testing.assert_allclose(g1[0] + g2[0], [0.3, 0.9, 1.0, 1.0])
    # at the crossing (t=2) the increments 0.1 and 0.2 are scaled by 0.1/0.3, then both stay constant
    np.testing.assert_allclose(g1[0], [0.2, 0.6, 0.6 + 0.1 / 3, 0.6 + 0.1 / 3])
    assert np.all(np.diff(g1, axis=1) >= 0) and np.all(np.diff(g2, axis=1) >= 0)
    # through the estimator: an extreme patient on long follow-up is reported and capped; the training share too
    X, y = _competing(5)
    model = FineGray().fit(X, y)
    assert 0.0 < model.incoherent_fraction_ < 1.0
    extreme = pd.DataFrame({"a": [3.0, 0.0], "b": [0.0, 0.0]})
    assert model.incoherent_patients(extreme, [3.9]).tolist() == [True, False]
    assert model.incoherent_patients(extreme, [0.2]).tolist() == [False, False]
    cif = model.predict_cumulative_incidence(extreme, [1.0, 2.0, 3.9])
    assert np.all(cif[:, 1:].sum(axis=1) <= 1.0 + 1e-12)
    assert np.all(np.diff(cif[:, 1:], axis=2) >= 0)
    # prediction evaluates only the requested times for coherent patients: the same as capping on the full grid
    from nbrisk.models._base import step_lookup

    many = pd.DataFrame({"a": np.linspace(-3.0, 3.0, 41), "b": np.tile([0.0, 1.0], 21)[:41]})
    times = np.array([0.0, 0.5, 1.0, 2.0, 3.9, 10.0])
    keep = int(np.searchsorted(model.event_times_, times.max(), side="right"))
    (f1, f2), bad = model._raw_cifs(model._check_X(many), keep)
    assert 0 < bad.sum() < len(many)
    got = model.predict_cumulative_incidence(many, times)
    np.testing.assert_allclose(got[:, 1], step_lookup(model.event_times_[:keep], f1, times, 0.0), atol=1e-14)
    np.testing.assert_allclose(got[:, 2], step_lookup(model.event_times_[:keep], f2, times, 0.0), atol=1e-14)
