"""The linear-memory Fine–Gray fit equals the counting-process (IPCW-expansion) fit it replaced.

The reference below is nbrisk's former implementation, kept here only as the test oracle: every patient with the
other cause becomes several rows (T_j, c_1], (c_1, c_2], … weighted Ĝ(t−)/Ĝ(T_j−) (Fine & Gray 1999, §3; Geskus
2011, Biometrics 67:39), fitted by the weighted Cox engine clustered by patient (what R's ``finegray`` + ``coxph``
does). The scan (Kawaguchi et al. 2020) computes the same sums in another order, so coefficients, both SEs, the
covariate centre and the baseline agree to round-off: 1e-8 is asserted (observed ~1e-12).
"""

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from nbrisk.core import Cause
from nbrisk.models._coxph import fit_coxph
from nbrisk.models.fine_gray import FineGray, fit_fine_gray_cause
from nbrisk.models.nonparametric import censoring_survival


def finegray_expand(time: np.ndarray, event: np.ndarray, cause: int, censoring=None, merge: bool = True):
    """Counting-process expansion of competing-risks data for the Fine–Gray model of ``cause``.

    Parameters
    ----------
    time : (n,) event or censoring times (> 0). event : (n,) 0 censored, 1 / 2 cause codes. cause : the modelled cause.
    censoring : optional fitted :class:`~nbrisk.models.nonparametric.CensoringSurvival` (default: from the data).
    merge : split a patient with the other cause only where the weight changes *between two event times of
        ``cause``* (the partial likelihood only looks at risk sets at those times), instead of at every jump of Ĝ.
        Same likelihood and baseline, far fewer rows (e.g. 194k → a few thousand on 1,500 synthetic patients).

    Returns
    -------
    dict of arrays over the expanded rows: ``row`` (index of the patient), ``start``, ``stop``, ``status`` (1 if the
    row ends with an event of ``cause``) and ``weight`` (1 for ordinary rows, Ĝ(t−)/Ĝ(T_j−) for the extra rows of
    patients with the other cause). Rows beyond the last event time of ``cause`` are dropped (no risk set there).
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(int)
    n = len(time)
    G = censoring_survival(time, event) if censoring is None else censoring
    ek = np.unique(time[event == cause])
    t_max = ek[-1] if len(ek) else 0.0
    # jump times of Ĝ and its value just after each
    drops = np.flatnonzero(np.diff(np.concatenate([[1.0], G.surv])) < 0)
    cj, gv = G.times[drops], G.surv[drops]

    base = dict(
        row=np.arange(n), start=np.zeros(n), stop=time.copy(), status=(event == cause).astype(int), weight=np.ones(n)
    )
    other = np.flatnonzero((event != cause) & (event != Cause.CENSORED) & (time < t_max))
    if other.size == 0:
        return base
    Tj = time[other]
    g_minus = G.left(Tj)
    if merge:
        # blocks of consecutive cause-k event times sharing Ĝ(t−) (same number of censoring jumps before them)
        nj = np.searchsorted(cj, ek, side="left")
        new = np.concatenate([[True], nj[1:] != nj[:-1]])
        block_of = np.cumsum(new) - 1
        last_idx = np.concatenate([np.flatnonzero(new)[1:] - 1, [len(ek) - 1]])
        b_last = ek[last_idx]  # last event time of each block
        b_num = np.where(nj[last_idx] > 0, gv[np.clip(nj[last_idx] - 1, 0, None)] if gv.size else 1.0, 1.0)
        q0 = block_of[np.searchsorted(ek, Tj, side="right")]  # first block with an event time > T_j
        k = len(b_last) - q0
        rows = np.repeat(other, k)
        q = np.repeat(q0, k) + (np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k))
        first = q == np.repeat(q0, k)
        start = np.where(first, np.repeat(Tj, k), b_last[np.clip(q - 1, 0, None)])
        stop = b_last[q]
        weight = np.divide(b_num[q], np.repeat(g_minus, k), out=np.zeros(len(rows)), where=np.repeat(g_minus, k) > 0)
    else:
        a0 = np.searchsorted(cj, Tj, side="right")  # first jump after T_j
        a1 = np.searchsorted(cj, t_max, side="left")  # jumps before t_max
        k = np.maximum(a1 - a0, 0) + 1  # rows per patient: (T_j, c_a0], …, (c_{a1-1}, t_max]
        rows = np.repeat(other, k)
        pos = np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k)  # 0 … k−1 within patient
        jump = np.repeat(a0, k) + pos - 1  # index of the jump that starts the row (−1 ⇒ starts at T_j)
        first = pos == 0
        start = np.where(first, np.repeat(Tj, k), cj[np.clip(jump, 0, None)] if cj.size else 0.0)
        last = pos == np.repeat(k - 1, k)
        stop = np.where(last, t_max, cj[np.clip(jump + 1, 0, max(len(cj) - 1, 0))] if cj.size else t_max)
        g_start = np.where(first, G.at(np.repeat(Tj, k)), gv[np.clip(jump, 0, None)] if gv.size else 1.0)
        weight = np.divide(g_start, np.repeat(g_minus, k), out=np.zeros(len(rows)), where=np.repeat(g_minus, k) > 0)
    keep = (stop > start) & (weight > 0)
    return dict(
        row=np.concatenate([base["row"], rows[keep]]),
        start=np.concatenate([base["start"], start[keep]]),
        stop=np.concatenate([base["stop"], stop[keep]]),
        status=np.concatenate([base["status"], np.zeros(int(keep.sum()), dtype=int)]),
        weight=np.concatenate([base["weight"], weight[keep]]),
    )


def fit_by_expansion(X, time, event, cause: int, ties: str = "breslow", alpha: float = 0.0):
    """The weighted Cox fit of the expansion: the former ``FineGray.fit`` for one cause."""
    ex = finegray_expand(time, event, cause)
    return fit_coxph(
        np.asarray(X, dtype=float)[ex["row"]],
        ex["stop"],
        ex["status"],
        start=ex["start"],
        weights=ex["weight"],
        cluster=ex["row"],
        ties=ties,
        alpha=alpha,
    )


def _competing(seed, n=600, censor=True, digits=2):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.binomial(1, 0.5, size=n).astype(float)})
    t1 = rng.exponential(1.0 / (0.4 * np.exp(0.6 * X.a)))
    t2 = rng.exponential(1.0 / (0.3 * np.exp(-0.5 * X.b)))
    c = rng.uniform(0.5, 4.0, size=n) if censor else np.full(n, np.inf)
    t = np.minimum.reduce([t1, t2, c])
    event = np.where(t == t1, Cause.RELAPSE, np.where(t == t2, Cause.TRM, Cause.CENSORED)).astype(int)
    return X, pd.DataFrame({"event": event, "time": np.round(t, digits) + 0.01})


def _assert_same_fit(X, y, ties, alpha=0.0):
    time, event = y.time.to_numpy(dtype=float), y.event.to_numpy()
    for cause in (int(Cause.RELAPSE), int(Cause.TRM)):
        ref = fit_by_expansion(X, time, event, cause, ties=ties, alpha=alpha)
        new = fit_fine_gray_cause(np.asarray(X, dtype=float), time, event, cause, ties=ties, alpha=alpha)
        np.testing.assert_allclose(new.coef, ref.coef, rtol=0, atol=1e-8)
        np.testing.assert_allclose(new.se_model, ref.se_model, rtol=0, atol=1e-8)
        np.testing.assert_allclose(new.se_robust, ref.se_robust, rtol=0, atol=1e-8)
        np.testing.assert_allclose(new.center, ref.center, rtol=0, atol=1e-10)
        np.testing.assert_allclose(new.information, ref.information, rtol=1e-9)
        assert new.loglik == pytest.approx(ref.loglik, rel=1e-10)
        assert new.converged == ref.converged
        # baseline increments at the common centre, on the same event times
        np.testing.assert_array_equal(new.baseline[None][0], ref.baseline[None][0])
        np.testing.assert_allclose(new.baseline[None][1], ref.baseline[None][1], rtol=1e-8)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_mgus2_published_reference_equals_the_expansion_fit(ties):
    from nbrisk.features.public import load_mgus2

    data = load_mgus2()  # monthly times: many ties between events and censorings
    _assert_same_fit(data.X[["male"]], data.y, ties)
    _assert_same_fit(data.X[["age", "male"]], data.y, ties)  # (the lab values have missing entries)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_kmsurv_bmt_equals_the_expansion_fit(ties):
    from nbrisk.features.public import load_kmsurv_bmt

    data = load_kmsurv_bmt()
    _assert_same_fit(data.X[["aml_low_risk", "aml_high_risk", "patient_age", "donor_age"]], data.y, ties)


@pytest.mark.parametrize(
    ("seed", "digits", "censor", "alpha"), [(0, 2, True, 0.0), (1, 1, True, 0.5), (2, 6, True, 0.0), (3, 2, False, 0.0)]
)
def test_simulated_cohorts_equal_the_expansion_fit(seed, digits, censor, alpha):
    # heavy ties (1 decimal), no ties (6 decimals), no censoring (Ĝ ≡ 1), and a ridge penalty
    X, y = _competing(seed, n=500, censor=censor, digits=digits)
    for ties in ("breslow", "efron"):
        _assert_same_fit(X, y, ties, alpha)


def test_fine_gray_predictions_equal_the_expansion_fit():
    X, y = _competing(5, n=400)
    model = FineGray().fit(X, y)
    times = np.array([0.5, 1.0, 2.0, 3.9])
    lp, cum = [], []
    for cause in (int(Cause.RELAPSE), int(Cause.TRM)):
        ref = fit_by_expansion(X, y.time.to_numpy(), y.event.to_numpy(), cause)
        lp.append((X.to_numpy() - ref.center) @ ref.coef)
        t_k, dh = ref.baseline[None]
        cum.append(np.array([dh[t_k <= t].sum() for t in times]))
    expect = -np.expm1(-np.array(cum)[:, None, :] * np.exp(np.array(lp))[:, :, None])
    got = model.predict_cumulative_incidence(X, times)
    ok = ~model.incoherent_patients(X, times)  # capped patients are tested in the subdistribution tests
    np.testing.assert_allclose(got[ok, 1], expect[0][ok], atol=1e-10)
    np.testing.assert_allclose(got[ok, 2], expect[1][ok], atol=1e-10)


def test_censoring_survival_reaching_zero_and_event_censoring_ties():
    # the last follow-up is censored after the last event (Ĝ → 0 there), and censorings share times with events
    X, y = _competing(7, n=300, digits=1)
    y.loc[y.time.idxmax(), "event"] = Cause.CENSORED
    assert censoring_survival(y.time.to_numpy(), y.event.to_numpy()).surv[-1] == 0.0
    _assert_same_fit(X, y, "efron")


def _peak_bytes(n):
    X, y = _competing(11, n=n, digits=6)
    tracemalloc.start()
    try:
        FineGray().fit(X, y)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_grows_linearly_with_n():
    # the expansion has ~n × (censoring jumps after T_j) rows: quadrupling n took its peak from 42 MB to 624 MB.
    # The scan holds O(n p) arrays, so 4× n must stay well under 6× the peak (4× is linear; slack for fixed costs)
    small, large = _peak_bytes(2_000), _peak_bytes(8_000)
    assert large / small < 6.0
    assert large < 8_000 * 2_000  # < 2 kB per patient at p = 2


def test_expansion_weights_follow_the_censoring_distribution():
    _, y = _competing(2, n=200)
    ex = finegray_expand(y.time.to_numpy(), y.event.to_numpy(), int(Cause.RELAPSE))
    assert np.all((ex["weight"] > 0) & (ex["weight"] <= 1 + 1e-12))
    assert np.all(ex["start"] < ex["stop"])
    extra = ex["row"] >= 0
    extra[: len(y)] = False
    # every extra row belongs to a patient with the other cause, and its weights do not increase over time
    assert set(y.event.to_numpy()[ex["row"][extra]]) == {int(Cause.TRM)}
    for j in np.unique(ex["row"][extra])[:20]:
        w = ex["weight"][extra][ex["row"][extra] == j]
        assert np.all(np.diff(w) <= 1e-12)


def test_merged_expansion_gives_the_same_fit_with_fewer_rows():
    # the partial likelihood only evaluates risk sets at cause-k event times, so splitting other-cause patients at
    # every censoring jump (merge=False, the textbook form) or only where Ĝ(t−) changes between those times
    # (merge=True) must give identical β, SEs and baseline hazards at a common reference x
    from nbrisk.models._coxph import fit_coxph

    X, y = _competing(6, n=400)
    fits, sizes = [], []
    for merge in (False, True):
        ex = finegray_expand(y.time.to_numpy(), y.event.to_numpy(), int(Cause.TRM), merge=merge)
        sizes.append(len(ex["row"]))
        fits.append(
            fit_coxph(
                X.to_numpy()[ex["row"]],
                ex["stop"],
                ex["status"],
                start=ex["start"],
                weights=ex["weight"],
                cluster=ex["row"],
            )
        )
    assert sizes[1] < sizes[0]
    a, b = fits
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-10)
    np.testing.assert_allclose(a.se_model, b.se_model, atol=1e-10)
    np.testing.assert_allclose(a.se_robust, b.se_robust, atol=1e-10)
    np.testing.assert_allclose(
        a.baseline[None][1] * np.exp(-a.coef @ a.center), b.baseline[None][1] * np.exp(-b.coef @ b.center), rtol=1e-9
    )
