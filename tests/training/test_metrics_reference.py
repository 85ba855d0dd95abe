"""Competing-risks metrics against independent references and known truths.

References: the ``hazardous`` package (test-only) for the competing-risks Brier score, IBS and IPCW C-index;
scikit-survival for the single-event AUC, Brier score and C-indices (data without competing events); brute-force
pair loops and leave-one-out refits written here; and simulated data whose true CIF is known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbrisk.models.nonparametric import aalen_johansen, censoring_survival
from nbrisk.training import metrics as M


def simulate(n: int, seed: int, competing: bool = True, c_max: float = 30.0):
    """Exponential cause-specific hazards λ1 = 0.1 e^x, λ2 = 0.05 e^{−x/2}; uniform censoring on (0, c_max).

    True CIF: F_k(t | x) = λ_k / (λ1 + λ2) · (1 − exp(−(λ1 + λ2) t)). Continuous times: no ties.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    l1 = 0.1 * np.exp(x)
    l2 = 0.05 * np.exp(-0.5 * x) if competing else np.zeros(n)
    total = l1 + l2
    t_event = rng.exponential(1.0 / total)
    cause = np.where(rng.random(n) < l1 / total, 1, 2)
    c = rng.uniform(0, c_max, n)
    time = np.minimum(t_event, c)
    event = np.where(t_event <= c, cause, 0)

    def true_cif(k, t):
        lk = l1 if k == 1 else l2
        return (lk / total)[:, None] * (1 - np.exp(-total[:, None] * np.atleast_1d(t)[None, :]))

    return event, time, true_cif


# ------------------------------------------------------------------------------------------------------------
# hazardous (competing risks)
# ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cr_data():
    event, time, true_cif = simulate(400, seed=0)
    times = np.array([2.0, 5.0, 10.0])
    # Ĝ stays above hazardous' clipping floor (0.05) at these times, so its weights are unclipped
    assert np.all(censoring_survival(time, event).at(times) > 0.5)
    return event, time, times, true_cif


@pytest.mark.parametrize("cause", [1, 2])
def test_brier_and_ibs_match_hazardous(cr_data, cause):
    from hazardous.metrics import brier_score_incidence, integrated_brier_score_incidence

    event, time, times, true_cif = cr_data
    f = true_cif(cause, times)
    y = pd.DataFrame({"event": event, "duration": time})
    ref = brier_score_incidence(y, y, f, times, event_of_interest=cause)
    ours = [M.brier_score_cr(event, time, f[:, j], t, cause) for j, t in enumerate(times)]
    # No ties, so Ĝ(T−) = Ĝ(T) at event times and both implement the same sum: agreement to rounding (1e-12)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14)
    ref_ibs = integrated_brier_score_incidence(y, y, f, times, event_of_interest=cause)
    assert M.integrated_brier_score_cr(event, time, f, times, cause) == pytest.approx(ref_ibs, rel=1e-12)


@pytest.mark.parametrize("ipcw", [False, True])
@pytest.mark.parametrize("cause", [1, 2])
def test_cindex_matches_hazardous(cr_data, cause, ipcw):
    from hazardous.metrics import concordance_index_incidence

    event, time, times, true_cif = cr_data
    y = pd.DataFrame({"event": event, "duration": time})
    for j, tau in enumerate(times):
        f = true_cif(cause, times)[:, [j]]
        ref = concordance_index_incidence(
            y,
            f,
            y_train=y if ipcw else None,
            ipcw_estimator="km" if ipcw else None,
            time_grid=times[[j]],
            taus=times[[j]],
            event_of_interest=cause,
        )[0]
        # Wolbers 2009 / 2014 pairs and weights; same sums on tie-free data (1e-12 = rounding)
        assert M.concordance_index_cr(event, time, f[:, 0], tau, cause, ipcw=ipcw) == pytest.approx(ref, rel=1e-12)


# ------------------------------------------------------------------------------------------------------------
# scikit-survival (single event: no competing events)
# ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def single():
    from sksurv.util import Surv

    event, time, true_cif = simulate(300, seed=1, competing=False)
    assert set(np.unique(event)) == {0, 1}
    y = Surv.from_arrays(event == 1, time)
    times = np.array([3.0, 6.0, 12.0])
    return event, time, true_cif, y, times


def test_auc_equals_sksurv_without_competing_events(single):
    from sksurv.metrics import cumulative_dynamic_auc

    event, time, true_cif, y, times = single
    rng = np.random.default_rng(2)
    risk = true_cif(1, [6.0])[:, 0] + rng.normal(0, 0.1, event.shape[0])  # an imperfect marker
    ref, _ = cumulative_dynamic_auc(y, y, risk, times)
    ours = [M.time_dependent_auc(event, time, risk, t, 1) for t in times]
    # controls all have T > τ and weight 1/Ĝ(τ) (a constant that cancels): identical to sksurv's estimator
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_brier_equals_sksurv_without_competing_events(single):
    from sksurv.metrics import brier_score

    event, time, true_cif, y, times = single
    cif = true_cif(1, times)
    _, ref = brier_score(y, y, 1.0 - cif, times)
    ours = [M.brier_score_cr(event, time, cif[:, j], t, 1) for j, t in enumerate(times)]
    # Graf's score of S: (0 − S)² for an event before τ = (1 − F)², (1 − S)² for T > τ = F²: the same terms as ours
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_harrell_and_uno_equal_sksurv(single):
    from sksurv.metrics import concordance_index_censored, concordance_index_ipcw

    event, time, true_cif, y, _ = single
    risk = true_cif(1, [5.0])[:, 0]
    ref_h = concordance_index_censored(event == 1, time, risk)[0]
    assert M.harrell_c(event == 1, time, risk) == pytest.approx(ref_h, rel=1e-12)
    tau = 10.0
    ref_u = concordance_index_ipcw(y, y, risk, tau=tau)[0]
    # Uno's weights 1/Ĝ(T_i)² = ours 1/(Ĝ(T_i−)Ĝ(T_i)) without ties; pairs T_i < τ vs ≤ τ coincide (continuous)
    assert M.uno_c(event == 1, time, risk, tau) == pytest.approx(ref_u, rel=1e-10)


# ------------------------------------------------------------------------------------------------------------
# brute force and exact identities
# ------------------------------------------------------------------------------------------------------------
def _brute_cindex(e, t, r, tau, k, ipcw):
    g = censoring_survival(t, e)
    num = den = 0.0
    for i in range(len(t)):
        if not (t[i] <= tau and e[i] == k):
            continue
        for j in range(len(t)):
            later = t[j] > t[i] or (t[j] == t[i] and e[j] == 0)
            comp = e[j] not in (0, k) and t[j] <= t[i]
            if not (later or comp):
                continue
            w = 1.0
            if ipcw:
                w = 1 / (g.left(t[i]) * (g.at(t[i]) if later else g.left(t[j])))
            num += w * (1.0 if r[i] > r[j] else 0.5 if r[i] == r[j] else 0.0)
            den += w
    return num / den


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ipcw", [False, True])
def test_cindex_equals_pair_loop_with_ties(seed, ipcw):
    rng = np.random.default_rng(seed)
    t = np.round(rng.exponential(5, 70)) + 1  # heavy ties in time
    e = rng.integers(0, 3, 70)
    r = np.round(rng.random(70), 1)  # and in risk
    for k in (1, 2):
        ref = _brute_cindex(e, t, r, 6.0, k, ipcw)
        assert M.concordance_index_cr(e, t, r, 6.0, k, ipcw=ipcw) == pytest.approx(ref, rel=1e-12)


def test_auc_equals_weighted_pair_loop_with_ties():
    rng = np.random.default_rng(4)
    t = np.round(rng.exponential(5, 90)) + 1
    e = rng.integers(0, 3, 90)
    r = np.round(rng.random(90), 1)
    tau = 5.0
    g = censoring_survival(t, e)
    cases = [i for i in range(90) if t[i] <= tau and e[i] == 1]
    ctrls = [j for j in range(90) if t[j] > tau or (e[j] == 2)]
    wi = {i: 1 / g.left(t[i]) for i in cases}
    wj = {j: (1 / g.at(tau) if t[j] > tau else 1 / g.left(t[j])) for j in ctrls}
    num = sum(wi[i] * wj[j] * (1.0 if r[i] > r[j] else 0.5 if r[i] == r[j] else 0.0) for i in cases for j in ctrls)
    ref = num / (sum(wi.values()) * sum(wj.values()))
    assert M.time_dependent_auc(e, t, r, tau, 1) == pytest.approx(ref, rel=1e-12)


def test_pseudo_observations_equal_leave_one_out_refits():
    rng = np.random.default_rng(6)
    n = 120
    t = np.round(rng.exponential(6, n)) + 1  # ties, including events and censorings at the same time
    e = rng.integers(0, 3, n)
    for k in (1, 2):
        for tau in (3.0, 8.0, 100.0):
            full = aalen_johansen(t, e, k).at([tau])[0]
            loo = np.array([aalen_johansen(np.delete(t, i), np.delete(e, i), k).at([tau])[0] for i in range(n)])
            # closed form vs n refits of the same estimator: equal up to float rounding
            np.testing.assert_allclose(M.pseudo_observations(e, t, tau, k), n * full - (n - 1) * loo, atol=1e-11)
            # the jackknife of the Aalen–Johansen estimator is unbiased in-sample: mean of θ_i = F̂(τ)
            assert M.pseudo_observations(e, t, tau, k).mean() == pytest.approx(full, abs=1e-10)


# ------------------------------------------------------------------------------------------------------------
# known truths
# ------------------------------------------------------------------------------------------------------------
def test_perfect_and_constant_predictors():
    event, time, _ = simulate(500, seed=3)
    tau = 5.0
    perfect = ((time <= tau) & (event == 1)).astype(float)
    assert M.time_dependent_auc(event, time, perfect, tau, 1) == pytest.approx(1.0, abs=1e-12)
    # float sums of weights: equal to 1/2 up to rounding
    assert M.time_dependent_auc(event, time, np.full(500, 0.3), tau, 1) == pytest.approx(0.5, abs=1e-12)
    assert M.concordance_index_cr(event, time, np.full(500, 0.3), tau, 1) == pytest.approx(0.5, abs=1e-12)
    # uncensored data and a perfect 0/1 prediction: Brier score exactly 0
    t_unc = time[event > 0]
    e_unc = event[event > 0]
    p_unc = ((t_unc <= tau) & (e_unc == 1)).astype(float)
    assert M.brier_score_cr(e_unc, t_unc, p_unc, tau, 1) == 0.0
    # IPA of the null (Aalen–Johansen) prediction is exactly 0
    null = aalen_johansen(time, event, 1).at([tau])[0]
    assert M.ipa(event, time, np.full(500, null), tau, 1) == pytest.approx(0.0, abs=1e-12)


def test_true_cif_is_better_than_noise():
    event, time, true_cif = simulate(1000, seed=5)
    tau = 5.0
    f = true_cif(1, [tau])[:, 0]
    noise = np.random.default_rng(0).permutation(f)
    assert M.time_dependent_auc(event, time, f, tau, 1) > M.time_dependent_auc(event, time, noise, tau, 1) + 0.1
    assert M.ipa(event, time, f, tau, 1) > 0.05 > M.ipa(event, time, noise, tau, 1)


def test_calibration_of_the_true_cif():
    event, time, true_cif = simulate(5000, seed=0)
    tau = 5.0
    for k in (1, 2):
        cal = M.calibration_cr(event, time, true_cif(k, [tau])[:, 0], tau, k)
        # Over seeds 0–4 the true CIF gave ICI 0.003–0.011 and slopes 0.94–1.07 (sampling error of a smooth fit to
        # 5,000 pseudo-values); a miscalibrated model (below) gives ICI ~0.1 and slope ~0.5.
        assert cal.ici < 0.02
        assert cal.e50 <= cal.e90 <= cal.emax
        assert abs(cal.slope - 1.0) < 0.15
        assert abs(cal.intercept) < 0.15
        assert cal.table.shape[0] == 10 and cal.table["n"].sum() == 5000
        # observed group CIFs track the mean predictions (within their CIs in most groups)
        inside = (cal.table["observed_lower"] <= cal.table["mean_predicted"]) & (
            cal.table["mean_predicted"] <= cal.table["observed_upper"]
        )
        assert inside.sum() >= 8
    # predictions too extreme on the cloglog scale: slope well below 1 and a large ICI
    f = true_cif(1, [tau])[:, 0]
    x = np.log(-np.log1p(-f))
    extreme = -np.expm1(-np.exp(x.mean() + 2 * (x - x.mean())))
    bad = M.calibration_cr(event, time, extreme, tau, 1)
    assert bad.slope < 0.7 and bad.ici > 0.05


def test_net_benefit_without_censoring_equals_counting():
    event, time, true_cif = simulate(400, seed=7)
    keep = event > 0
    e, t = event[keep], time[keep]
    tau = 5.0
    f = true_cif(1, [tau])[:, 0][keep]
    thresholds = np.array([0.05, 0.2, 0.4])
    nb = M.net_benefit(e, t, f, tau, 1, thresholds)
    n = e.shape[0]
    for row in nb.itertuples():
        treated = f >= row.threshold
        tp = np.sum(treated & (t <= tau) & (e == 1)) / n
        fp = np.sum(treated & ~((t <= tau) & (e == 1))) / n
        # without censoring the Aalen–Johansen incidence is the plain proportion, so NB = TP/n − FP/n · p/(1−p)
        assert row.net_benefit == pytest.approx(tp - fp * row.threshold / (1 - row.threshold), rel=1e-10)
    # the target-DataFrame form gives the same table
    y = pd.DataFrame({"event": e, "time": t})
    pd.testing.assert_frame_equal(M.net_benefit(*M.target(y), f, tau, cause=1, thresholds=thresholds), nb)
    # a threshold below every prediction treats everyone: equal to treat-all
    low = M.net_benefit(e, t, f, tau, 1, [min(f.min(), 0.01) / 2])
    assert low["net_benefit"].iloc[0] == pytest.approx(low["treat_all"].iloc[0], rel=1e-12)


def test_without_censoring_auc_and_brier_are_the_plain_binary_metrics():
    """With everyone's status at τ known, IPCW weights are all 1: the AUC is the Mann–Whitney AUC of "cause k by τ"
    vs everyone else (scikit-learn's roc_auc_score) and the Brier score the plain mean squared error."""
    from sklearn.metrics import roc_auc_score

    event, time, true_cif = simulate(600, seed=8, c_max=1e9)
    assert np.all(event > 0)
    tau = 5.0
    for k in (1, 2):
        f = true_cif(k, [tau])[:, 0]
        label = ((time <= tau) & (event == k)).astype(float)
        assert M.time_dependent_auc(event, time, f, tau, k) == pytest.approx(roc_auc_score(label, f), rel=1e-12)
        assert M.brier_score_cr(event, time, f, tau, k) == pytest.approx(np.mean((label - f) ** 2), rel=1e-12)
