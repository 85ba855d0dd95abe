"""Performance of competing-risks predictions: discrimination, accuracy, calibration, clinical usefulness.

All functions take the evaluation data as arrays ``event`` (n,) (0 censored, 1 relapse, 2 TRM; :class:`Cause`) and
``time`` (n,) (> 0, days for nbrisk cohorts), the predicted cumulative incidence of the cause of interest at the
horizon ``tau`` (same unit as ``time``), and the ``cause``. The censoring distribution Ĝ (Kaplan–Meier with
censoring as the event) is estimated from the evaluation data unless a
:class:`~nbrisk.models.nonparametric.CensoringSurvival` is passed as ``censoring``. Definitions follow
``docs/statistics.md`` and van Geloven et al. (2022, BMJ 377:e069249).

Every function has one argument order, whatever the input: a target DataFrame ``y`` (columns ``event`` and ``time``)
is passed as ``*target(y)``, e.g. ``net_benefit(*target(y), cif, tau, cause=1, thresholds=[0.1, 0.2])``.

References
----------
Blanche P, Dartigues JF, Jacqmin-Gadda H (2013). Estimating and comparing time-dependent areas under receiver
    operating characteristic curves for censored event times with competing risks. Stat Med 32:5381–5397.
Wolbers M, Koller MT, Witteman JCM, Steyerberg EW (2009). Prognostic models with competing risks: methods and
    application to coronary risk prediction. Epidemiology 20:555–561.
Wolbers M, Blanche P, Koller MT, Witteman JCM, Gerds TA (2014). Concordance for prognostic models with competing
    risks. Biostatistics 15:526–539.
Graf E, Schmoor C, Sauerbrei W, Schumacher M (1999). Assessment and comparison of prognostic classification
    schemes for survival data. Stat Med 18:2529–2545 (IPCW Brier score; competing risks: Schoop et al. 2011).
Kattan MW, Gerds TA (2018). The index of prediction accuracy. Diagn Progn Res 2:7.
Austin PC, Harrell FE, van Klaveren D (2020). Graphical calibration curves and the integrated calibration index
    (ICI) for survival models. Stat Med 39:2714–2742.
Austin PC, Putter H, Giardiello D, van Klaveren D (2022). Graphical calibration curves and the integrated
    calibration index (ICI) for competing risk models. Diagn Progn Res 6:2.
Andersen PK, Perme MP (2010). Pseudo-observations in survival analysis. Stat Methods Med Res 19:71–99.
Vickers AJ, Cronin AM, Elkin EB, Gonen M (2008). Extensions to decision curve analysis. BMC Med Inform Decis Mak
    8:53.
Harrell FE et al. (1982), JAMA 247:2543; Uno H et al. (2011), Stat Med 30:1105 (overall-survival C-indices).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from nbrisk.core import CAUSES, DAYS_PER_MONTH, Cause, State
from nbrisk.models.nonparametric import (
    CensoringSurvival,
    aalen_johansen,
    censoring_survival,
    cumulative_incidence,
)

__all__ = [
    "BootstrapResult",
    "CalibrationResult",
    "bootstrap_ci",
    "bootstrap_indices",
    "brier_score_cr",
    "calibration_cr",
    "calibration_table",
    "concordance_index_cr",
    "evaluate_predictions",
    "harrell_c",
    "integrated_brier_score_cr",
    "integrated_brier_score_os",
    "ipa",
    "net_benefit",
    "pseudo_observations",
    "replicate_metrics",
    "resample_counts",
    "target",
    "time_dependent_auc",
    "uno_c",
]


# ----------------------------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------------------------
def _ev_time(event, time) -> tuple[np.ndarray, np.ndarray]:
    event = np.asarray(event).ravel().astype(int)
    time = np.asarray(time, dtype=float).ravel()
    if event.shape != time.shape:
        raise ValueError(f"event and time must have the same length; got {event.shape[0]} and {time.shape[0]}")
    if event.size == 0:
        raise ValueError("no patients to evaluate")
    if not np.all(np.isfinite(time)) or np.any(time <= 0):
        raise ValueError("time must be finite and > 0")
    if np.any(event < 0):
        raise ValueError("event codes must be >= 0")
    return event, time


def _pred(pred, n: int, name: str = "prediction") -> np.ndarray:
    pred = np.asarray(pred, dtype=float)
    if pred.shape[0] != n:
        raise ValueError(f"{name} has {pred.shape[0]} rows for {n} patients")
    if not np.all(np.isfinite(pred)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return pred


def target(y: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(event, time)`` arrays of a target DataFrame with columns ``event`` and ``time`` (pass as ``*target(y)``)."""
    if not isinstance(y, pd.DataFrame) or not {"event", "time"} <= set(y.columns):
        raise TypeError("y must be a DataFrame with columns 'event' and 'time'")
    return y["event"].to_numpy(), y["time"].to_numpy(dtype=float)


def _censoring(event, time, censoring: CensoringSurvival | None) -> CensoringSurvival:
    return censoring if censoring is not None else censoring_survival(time, event)


def _inv(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x, dtype=float)
    np.divide(1.0, x, out=out, where=x > 0)
    return out


def _ipcw_status(event, time, tau, cause, g: CensoringSurvival):
    """Status at τ and IPCW weights (Graf 1999 extended to competing risks).

    Returns ``case`` (T ≤ τ, δ = k), ``competing`` (T ≤ τ, δ ∉ {0, k}), ``alive`` (T > τ) as boolean (n,) arrays
    and ``w`` (n,): 1/Ĝ(T−) for the two first groups, 1/Ĝ(τ) for the third, 0 for those censored before τ.
    """
    before = time <= tau
    case = before & (event == cause)
    competing = before & (event != 0) & (event != cause)
    alive = ~before
    w = np.zeros(time.shape[0])
    w[case | competing] = _inv(g.left(time[case | competing]))
    w[alive] = _inv(np.atleast_1d(g.at(tau)))[0]
    return case, competing, alive, w


# ----------------------------------------------------------------------------------------------------------------
# discrimination
# ----------------------------------------------------------------------------------------------------------------
def _weighted_pair_share(case_risk, case_w, ctrl_risk, ctrl_w) -> float:
    """Σ_i Σ_j w_i w_j [1(r_i > r_j) + ½ 1(r_i = r_j)] / (Σ w_i Σ w_j), in O((n_case + n_ctrl) log n_ctrl)."""
    order = np.argsort(ctrl_risk, kind="mergesort")
    r_sorted, w_sorted = ctrl_risk[order], ctrl_w[order]
    cum = np.concatenate([[0.0], np.cumsum(w_sorted)])
    lo = np.searchsorted(r_sorted, case_risk, side="left")
    hi = np.searchsorted(r_sorted, case_risk, side="right")
    below = cum[lo]
    tied = cum[hi] - cum[lo]
    num = np.sum(case_w * (below + 0.5 * tied))
    den = case_w.sum() * ctrl_w.sum()
    # clip: the ratio of two float sums can exceed 1 by rounding (1 + 2e-15) for a perfect marker
    return float(min(max(num / den, 0.0), 1.0)) if den > 0 else float("nan")


def time_dependent_auc(
    event,
    time,
    risk,
    tau: float,
    cause: int | Cause = Cause.RELAPSE,
    censoring: CensoringSurvival | None = None,
) -> float:
    """Cause-specific cumulative/dynamic AUC at ``tau`` with IPCW (Blanche et al. 2013, "definition 2").

    Cases: T_i ≤ τ with δ_i = k, weight 1/Ĝ(T_i−). Controls: everyone else still observable, i.e. T_j > τ (weight
    1/Ĝ(τ)) and T_j ≤ τ with a competing event (weight 1/Ĝ(T_j−)). AUC = weighted share of case–control pairs in
    which the case has the higher predicted risk (ties count ½). Patients censored before τ get weight 0.

    Parameters
    ----------
    event, time : (n,) evaluation data. risk : (n,) predicted risk, e.g. F̂_k(τ | x).
    tau : horizon (unit of ``time``). cause : event code of interest. censoring : Ĝ (default: from the data).

    Returns
    -------
    AUC in [0, 1], NaN if there are no cases or no controls.
    """
    event, time = _ev_time(event, time)
    risk = _pred(risk, time.shape[0], "risk")
    g = _censoring(event, time, censoring)
    case, competing, alive, w = _ipcw_status(event, time, tau, int(cause), g)
    ctrl = competing | alive
    if not case.any() or not ctrl.any():
        return float("nan")
    return _weighted_pair_share(risk[case], w[case], risk[ctrl], w[ctrl])


def _dominance_sums(key_ins, rank_ins, w_ins, key_q, rank_q, greater: bool) -> tuple[np.ndarray, np.ndarray]:
    """For each query q: Σ w_j over inserted j with key_j > key_q (``greater``) or key_j ≤ key_q (not ``greater``),
    split into rank_j < rank_q ("below") and rank_j == rank_q ("tied").

    ``w_ins`` is (n_ins,) or a batch (B, n_ins) of weight vectors (e.g. bootstrap resamples as patient counts); the
    answer then has shape (B, n_q). Vectorised in numpy by the binary digits of the ranks instead of a Fenwick-tree
    sweep: rank_j < rank_q holds for exactly one bit level L at which the two ranks first differ (same bits above L,
    bit L 0 for j and 1 for q), so per level the inserted items with bit L = 0 are sorted by (higher bits, key) and
    a query's sum is the difference of two cumulative sums found by binary search. O((n_ins + n_q) log² n) for one
    weight vector, and the sorting is shared by every vector of a batch (only the cumulative sums are per vector).
    """
    key_ins, key_q = np.asarray(key_ins, dtype=float), np.asarray(key_q, dtype=float)
    rank_ins, rank_q = np.asarray(rank_ins, dtype=np.int64), np.asarray(rank_q, dtype=np.int64)
    w = np.asarray(w_ins, dtype=float)
    single = w.ndim == 1
    # patients along axis 0: gathering and summing whole rows of B weights is contiguous in memory
    wt = np.ascontiguousarray(np.atleast_2d(w).T)
    n_ins, n_q = key_ins.shape[0], key_q.shape[0]
    below = np.zeros((n_q, wt.shape[1]))
    tied = np.zeros((n_q, wt.shape[1]))
    if n_ins and n_q:
        # integer key codes over both sets; with ``greater`` flipped so that the wanted keys are always the smaller
        _, code = np.unique(np.concatenate([key_ins, key_q]), return_inverse=True)
        code = code.ravel().astype(np.int64)
        n_keys = int(code.max()) + 1
        if greater:
            code = n_keys - 1 - code
        k_ins, k_q = code[:n_ins], code[n_ins:]
        # wanted: k_j < k_q (greater: key_j > key_q) or k_j <= k_q (key_j <= key_q)
        side = "left" if greater else "right"
        top = int(max(rank_ins.max(), rank_q.max()))

        by_key = np.argsort(k_ins, kind="stable")  # every level's order is a stable re-sort of this one by group
        small = top < np.iinfo(np.uint16).max  # 16-bit group codes: numpy's stable sort is then a radix sort

        def add_range(out, shift, j_keep, q_sel):
            j_sel = by_key[j_keep[by_key]]
            if not j_sel.size or not q_sel.size:
                return
            group = rank_ins[j_sel] >> shift
            order = np.argsort(group.astype(np.uint16) if small else group, kind="stable")
            j_sel = j_sel[order]
            comp = group[order] * n_keys + k_ins[j_sel]  # sorted by (group, key code)
            cum = np.zeros((comp.shape[0] + 1, wt.shape[1]))
            np.cumsum(wt[j_sel], axis=0, out=cum[1:])
            base = (rank_q[q_sel] >> shift) * n_keys
            lo = np.searchsorted(comp, base, side="left")
            hi = np.searchsorted(comp, base + k_q[q_sel], side=side)
            out[q_sel] += cum[hi] - cum[lo]

        for level in range(max(1, top.bit_length())):
            j_keep = ((rank_ins >> level) & 1) == 0
            add_range(below, level + 1, j_keep, np.flatnonzero((rank_q >> level) & 1))
        add_range(tied, 0, np.ones(n_ins, dtype=bool), np.arange(n_q))
    return (below[:, 0], tied[:, 0]) if single else (below.T, tied.T)


def concordance_index_cr(
    event,
    time,
    risk,
    tau: float,
    cause: int | Cause = Cause.RELAPSE,
    ipcw: bool = False,
    censoring: CensoringSurvival | None = None,
) -> float:
    """Truncated C-index for cause k (Wolbers et al. 2009; with ``ipcw=True`` the IPCW form of Wolbers et al. 2014).

    Comparable pairs (i, j): T_i ≤ τ with δ_i = k, and either T_j > T_i (or j censored at T_i), or j had a competing
    event (δ_j ∉ {0, k}) at or before T_i — a patient with the competing event can never have cause k, so he counts as
    "later". Concordant if risk_i > risk_j (ties ½). With ``ipcw=True`` pairs are weighted by
    1/(Ĝ(T_i−) Ĝ(T_i)) (j later) or 1/(Ĝ(T_i−) Ĝ(T_j−)) (j had the competing event), which removes the dependence on
    the censoring distribution (Wolbers 2014, eq. 3; Gerds et al. 2013). ``ipcw=False`` (default) is the Wolbers 2009
    estimator, which is what the metric names ``*_cindex_*`` report.

    Parameters
    ----------
    event, time : (n,). risk : (n,) predicted risk of cause k by τ (F̂_k(τ | x)). tau : truncation time.

    Returns
    -------
    C in [0, 1], NaN without comparable pairs. Cost O(n log² n) in numpy (the pair sums of :func:`_dominance_sums`).
    """
    event, time = _ev_time(event, time)
    n = time.shape[0]
    risk = _pred(risk, n, "risk")
    cause = int(cause)
    case = (time <= tau) & (event == cause)
    if not case.any():
        return float("nan")
    competing = (event != 0) & (event != cause)
    rank = np.unique(risk, return_inverse=True)[1].ravel()
    # "j later than i": (T_j, censored_j) > (T_i, 0) lexicographically, so a censoring at T_i counts as later
    order = np.lexsort(((event == 0).astype(int), time))
    key = np.empty(n)
    key[order] = np.arange(n)
    # ties in (time, censored) must share a key: collapse equal pairs to the first position
    pairs = np.stack([time[order], (event[order] == 0).astype(float)])
    first = np.concatenate([[True], np.any(pairs[:, 1:] != pairs[:, :-1], axis=0)])
    key[order] = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    ci = np.flatnonzero(case)
    below_a, tied_a = _dominance_sums(key, rank, np.ones(n), key[ci], rank[ci], greater=True)
    n_later = (n - 1) - np.searchsorted(np.sort(key), key[ci], side="right") + 1
    comp_idx = np.flatnonzero(competing)
    if ipcw:
        g = _censoring(event, time, censoring)
        w_i = _inv(g.left(time[ci]))
        w_a = w_i * _inv(g.at(time[ci]))
        v = _inv(g.left(time[comp_idx]))
    else:
        w_i = np.ones(ci.size)
        w_a = np.ones(ci.size)
        v = np.ones(comp_idx.size)
    num = np.sum(w_a * (below_a + 0.5 * tied_a))
    den = np.sum(w_a * n_later)
    if comp_idx.size:
        below_b, tied_b = _dominance_sums(time[comp_idx], rank[comp_idx], v, time[ci], rank[ci], greater=False)
        t_sorted = np.argsort(time[comp_idx], kind="mergesort")
        cum_v = np.concatenate([[0.0], np.cumsum(v[t_sorted])])
        total_b = cum_v[np.searchsorted(time[comp_idx][t_sorted], time[ci], side="right")]
        num += np.sum(w_i * (below_b + 0.5 * tied_b))
        den += np.sum(w_i * total_b)
    return float(num / den) if den > 0 else float("nan")


# ----------------------------------------------------------------------------------------------------------------
# accuracy
# ----------------------------------------------------------------------------------------------------------------
def brier_score_cr(
    event,
    time,
    cif_at_tau,
    tau: float,
    cause: int | Cause = Cause.RELAPSE,
    censoring: CensoringSurvival | None = None,
) -> float:
    """IPCW Brier score of the predicted CIF of cause k at ``tau`` (Graf 1999; Schoop et al. 2011).

    BS_k(τ) = (1/n) Σ_i [ 1{T_i ≤ τ, δ_i = k} (1 − F̂_i)² / Ĝ(T_i−) + 1{T_i ≤ τ, δ_i ∉ {0, k}} F̂_i² / Ĝ(T_i−)
    + 1{T_i > τ} F̂_i² / Ĝ(τ) ]; patients censored before τ contribute 0 but count in n. Lower is better.

    Parameters
    ----------
    cif_at_tau : (n,) predicted F̂_k(τ | x_i). Other parameters as :func:`time_dependent_auc`.
    """
    event, time = _ev_time(event, time)
    f = _pred(cif_at_tau, time.shape[0], "cif_at_tau")
    g = _censoring(event, time, censoring)
    case, _, _, w = _ipcw_status(event, time, tau, int(cause), g)
    return float(np.mean(w * (case.astype(float) - f) ** 2))


def integrated_brier_score_cr(
    event,
    time,
    cif,
    times,
    cause: int | Cause = Cause.RELAPSE,
    censoring: CensoringSurvival | None = None,
) -> float:
    """Integrated Brier score: the Brier score of F̂_k averaged over ``[min(times), max(times)]`` (trapezoid rule).

    Parameters
    ----------
    cif : (n, k) predicted F̂_k(t_j | x_i) at ``times`` (k ≥ 2, sorted or not). Returns
    (1 / (t_max − t_min)) ∫ BS_k(t) dt, the convention of scikit-survival and hazardous.
    """
    event, time = _ev_time(event, time)
    times = np.asarray(times, dtype=float).ravel()
    cif = _pred(cif, time.shape[0], "cif")
    if cif.ndim != 2 or cif.shape[1] != times.shape[0] or times.shape[0] < 2:
        raise ValueError("cif must be (n, k) at k >= 2 times")
    g = _censoring(event, time, censoring)
    order = np.argsort(times)
    bs = np.array([brier_score_cr(event, time, cif[:, j], times[j], cause, g) for j in order])
    t = times[order]
    return float(np.trapezoid(bs, t) / (t[-1] - t[0]))


def ipa(
    event,
    time,
    cif_at_tau,
    tau: float,
    cause: int | Cause = Cause.RELAPSE,
    censoring: CensoringSurvival | None = None,
    null_cif_at_tau: float | None = None,
) -> float:
    """Index of prediction accuracy IPA = 1 − BS_model / BS_null (Kattan & Gerds 2018).

    The null model is the Aalen–Johansen CIF without covariates, by default estimated on the evaluation data (pass
    ``null_cif_at_tau`` to use one from the training data). 1 is perfect, 0 no better than the null model, < 0 worse.
    """
    event, time = _ev_time(event, time)
    g = _censoring(event, time, censoring)
    if null_cif_at_tau is None:
        null_cif_at_tau = float(aalen_johansen(time, event, int(cause)).at([tau])[0])
    bs_model = brier_score_cr(event, time, cif_at_tau, tau, cause, g)
    bs_null = brier_score_cr(event, time, np.full(time.shape[0], null_cif_at_tau), tau, cause, g)
    return 1.0 - bs_model / bs_null if bs_null > 0 else float("nan")


# ----------------------------------------------------------------------------------------------------------------
# calibration
# ----------------------------------------------------------------------------------------------------------------
def pseudo_observations(event, time, tau: float, cause: int | Cause = Cause.RELAPSE) -> np.ndarray:
    """Jackknife pseudo-observations of the Aalen–Johansen CIF at ``tau`` (Andersen & Perme 2010).

    θ_i = n F̂_k(τ) − (n − 1) F̂_k^(−i)(τ), with F̂^(−i) the estimate without patient i. Computed exactly in
    O(n + m) (m event times ≤ τ), not by n refits: removing i lowers the risk set by one at every event time
    t_j ≤ T_i and, if i had an event at T_i = t_p, the event counts at t_p; after T_i the hazards are unchanged. With
    A_j = Π_{l ≤ j} (1 − d_l / (n_l − 1)) and B_j = Σ_{l ≤ j} A_{l−1} d_kl / (n_l − 1) (prefix products and sums over
    the event times), p the number of event times ≤ T_i and Ŝ, F̂ the full-data estimates,

        F̂^(−i)(τ) = B_{p−1} + A_{p−1} d'_kp / (n_p − 1) + A_{p−1} (1 − d'_p / (n_p − 1)) (F̂(τ) − F̂(t_p)) / Ŝ(t_p),

    where d'_p, d'_kp are the counts at t_p without patient i (unchanged if i was censored or left after t_p).

    Returns
    -------
    (n,) pseudo-values (may lie outside [0, 1]; their mean equals F̂_k(τ) up to rounding).
    """
    event, time = _ev_time(event, time)
    cause = int(cause)
    n = time.shape[0]
    res = aalen_johansen(time, event, cause)
    keep = (res.times <= tau) & (res.n_any > 0)
    et, n_j, d_j, dk_j = res.times[keep], res.n_at_risk[keep], res.n_any[keep], res.n_events[keep]
    s_j, f_j = res.surv[keep], res.cif[keep]
    full = float(res.at([tau])[0])
    if et.size == 0:
        return np.zeros(n)
    m1 = n_j - 1.0

    def div(a, b):
        a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
        out = np.zeros(a.shape)
        np.divide(a, b, out=out, where=b > 0)
        return out

    # prefix quantities with one patient fewer at risk everywhere; index 0 = "before the first event time"
    a_pref = np.concatenate([[1.0], np.cumprod(1.0 - div(d_j, m1))])
    b_pref = np.concatenate([[0.0], np.cumsum(a_pref[:-1] * div(dk_j, m1))])
    s_pref = np.concatenate([[1.0], s_j])
    f_pref = np.concatenate([[0.0], f_j])
    p = np.searchsorted(et, time, side="right")  # number of event times <= T_i
    pi = np.clip(p - 1, 0, None)  # index of t_p in the event-time arrays
    own = (p > 0) & (event > 0) & (et[pi] == time)  # i had an event at t_p
    own_k = own & (event == cause)
    tail = div(full - f_pref[p], s_pref[p])  # (F(τ) − F(t_p)) / S(t_p); 0 when nobody is left
    # general case: B_p + A_p · tail
    loo = b_pref[p] + a_pref[p] * tail
    # own event at t_p: rebuild the step at t_p with the patient's event removed
    if own.any():
        q = pi[own]
        d_own = d_j[q] - 1.0
        dk_own = dk_j[q] - own_k[own]
        a_prev = a_pref[q]
        loo[own] = b_pref[q] + a_prev * div(dk_own, m1[q]) + a_prev * (1.0 - div(d_own, m1[q])) * tail[own]
    return n * full - (n - 1) * loo


def _cloglog(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-8, 1.0 - 1e-8)  # keep the transform finite for predictions of exactly 0 or 1
    return np.log(-np.log1p(-p))


def _inv_cloglog(eta: np.ndarray) -> np.ndarray:
    return -np.expm1(-np.exp(np.clip(eta, -30.0, 5.0)))


def _rcs_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Restricted cubic spline basis (Harrell's parametrisation): [x, s_1(x), ..., s_{K−2}(x)], linear in the tails."""
    k = knots
    scale = (k[-1] - k[0]) ** 2
    cols = [x]
    for j in range(len(k) - 2):
        term = (
            np.clip(x - k[j], 0, None) ** 3
            - np.clip(x - k[-2], 0, None) ** 3 * (k[-1] - k[j]) / (k[-1] - k[-2])
            + np.clip(x - k[-1], 0, None) ** 3 * (k[-2] - k[j]) / (k[-1] - k[-2])
        )
        cols.append(term / scale)
    return np.column_stack(cols)


def _fit_cloglog(design: np.ndarray, y: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Least squares of pseudo-values on 1 − exp(−exp(design · β)) (the GEE with identity working variance)."""

    def resid(beta):
        return _inv_cloglog(design @ beta) - y

    def jac(beta):
        eta = np.clip(design @ beta, -30.0, 5.0)
        dmu = np.exp(eta - np.exp(eta))  # d/dη of 1 − exp(−e^η)
        return design * dmu[:, None]

    return optimize.least_squares(resid, start, jac=jac, method="lm", xtol=1e-10, ftol=1e-10).x


@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity, not elementwise
class CalibrationResult:
    """Calibration of predicted CIFs of one cause at one horizon.

    ``table``: per group of predicted risk, ``n``, ``mean_predicted``, ``observed`` (Aalen–Johansen within the group)
    with its 95% log(−log) CI ``observed_lower``/``observed_upper``. ``ici``, ``e50``, ``e90``, ``emax``: mean,
    median, 90th percentile and maximum of |F̂ − F_obs(F̂)| over patients, F_obs the smooth calibration curve.
    ``slope`` and ``intercept``: of the model F_obs = 1 − exp(−exp(a + b · cloglog F̂)) fitted to the
    pseudo-observations (ideal b = 1, a = 0). ``curve``: DataFrame (predicted, observed) on a grid for plotting.
    """

    table: pd.DataFrame
    ici: float
    e50: float
    e90: float
    emax: float
    slope: float
    intercept: float
    curve: pd.DataFrame


def _group_table(event, time, pred, tau, cause, n_groups) -> pd.DataFrame:
    ranks = pd.Series(pred).rank(method="first").to_numpy()
    n_groups = int(max(1, min(n_groups, pred.shape[0])))
    group = np.minimum((ranks - 1) * n_groups // pred.shape[0], n_groups - 1).astype(int)
    rows = []
    for gi in range(n_groups):
        sel = group == gi
        if not sel.any():
            continue
        est, lo, up = cumulative_incidence(time[sel], event[sel], cause, [tau])
        rows.append(
            {
                "group": gi + 1,
                "n": int(sel.sum()),
                "mean_predicted": float(pred[sel].mean()),
                "observed": float(est[0]),
                "observed_lower": float(lo[0]),
                "observed_upper": float(up[0]),
            }
        )
    return pd.DataFrame(rows)


def calibration_cr(
    event,
    time,
    cif_at_tau,
    tau: float,
    cause: int | Cause = Cause.RELAPSE,
    n_groups: int = 10,
    n_knots: int = 3,
    table: bool = True,
) -> CalibrationResult:
    """Calibration of the predicted CIF of cause k at ``tau`` (Austin et al. 2020, 2022).

    * Groups: patients split into ``n_groups`` equal-size groups of predicted risk (deciles); in each the mean
      prediction and the observed Aalen–Johansen CIF with its 95% CI (the calibration plot).
    * Smooth curve: jackknife pseudo-observations θ_i of the Aalen–Johansen CIF at τ (:func:`pseudo_observations`)
      regressed on a restricted cubic spline (``n_knots`` knots at Harrell's default quantiles, 3 knots as in Austin
      2020) of cloglog F̂_i with the inverse cloglog link, by least squares (a GEE with independence working
      correlation). F_obs(F̂_i) is the fitted value; ICI = mean |F̂_i − F_obs(F̂_i)|, E50 / E90 / Emax its median /
      90th percentile / maximum.
    * Calibration slope and intercept: the same regression with cloglog F̂ entering linearly,
      F_obs = 1 − exp(−exp(a + b · cloglog F̂)); b = 1, a = 0 is perfect (b < 1: predictions too extreme).

    Parameters
    ----------
    event, time : (n,). cif_at_tau : (n,) predicted F̂_k(τ | x_i). tau, cause, n_groups, n_knots (3–5).
    table : False skips the group table (an empty one with its columns is returned): bootstrap CIs of the ICI and
        slope need only the curve, and the table's ``n_groups`` Aalen–Johansen fits are half the cost.
    """
    event, time = _ev_time(event, time)
    pred = _pred(cif_at_tau, time.shape[0], "cif_at_tau")
    cause = int(cause)
    table = (
        _group_table(event, time, pred, tau, cause, n_groups)
        if table
        else pd.DataFrame(columns=["group", "n", "mean_predicted", "observed", "observed_lower", "observed_upper"])
    )
    theta = pseudo_observations(event, time, tau, cause)
    x = _cloglog(pred)
    nan = float("nan")
    constant = np.ptp(x) <= 1e-12
    if constant or not np.any((event == cause) & (time <= tau)) or time.shape[0] < 8:
        # A constant prediction has no calibration curve or slope; with no cause-k event by τ (every pseudo-value
        # is 0) or too few patients the slope/intercept are undefined too (a fit would run the intercept to −∞).
        # The observed curve is then the overall Aalen–Johansen value and ICI = mean |F̂ − observed overall|.
        obs = float(np.mean(theta))
        err = np.abs(pred - obs)
        xs = [float(pred[0])] if constant else [float(pred.min()), float(pred.max())]
        curve = pd.DataFrame({"predicted": xs, "observed": [obs] * len(xs)})
        return CalibrationResult(
            table,
            float(err.mean()),
            float(np.median(err)),
            float(np.quantile(err, 0.9)),
            float(err.max()),
            nan,
            nan,
            curve,
        )
    lin = np.column_stack([np.ones_like(x), x])
    a, b = _fit_cloglog(lin, theta, np.array([0.0, 1.0]))
    quantiles = {3: [0.10, 0.50, 0.90], 4: [0.05, 0.35, 0.65, 0.95], 5: [0.05, 0.275, 0.50, 0.725, 0.95]}
    if n_knots not in quantiles:
        raise ValueError("n_knots must be 3, 4 or 5")
    knots = np.unique(np.quantile(x, quantiles[n_knots]))
    if knots.size >= 3:
        design = np.column_stack([np.ones_like(x), _rcs_basis(x, knots)])
        start = np.zeros(design.shape[1])
        start[:2] = [a, b]
        beta = _fit_cloglog(design, theta, start)

        def smooth(xx):
            return _inv_cloglog(np.column_stack([np.ones_like(xx), _rcs_basis(xx, knots)]) @ beta)
    else:  # too few distinct predictions for a spline: the linear cloglog fit is the curve

        def smooth(xx):
            return _inv_cloglog(a + b * xx)

    observed = smooth(x)
    err = np.abs(pred - observed)
    grid_p = np.quantile(pred, np.linspace(0.01, 0.99, 50))
    curve = pd.DataFrame({"predicted": grid_p, "observed": smooth(_cloglog(grid_p))})
    return CalibrationResult(
        table=table,
        ici=float(err.mean()),
        e50=float(np.median(err)),
        e90=float(np.quantile(err, 0.9)),
        emax=float(err.max()),
        slope=float(b),
        intercept=float(a),
        curve=curve,
    )


def calibration_table(
    event, time, cif_at_tau, tau: float, cause: int | Cause = Cause.RELAPSE, n_groups: int = 10
) -> pd.DataFrame:
    """The decile table of :func:`calibration_cr` only (fast: no pseudo-observations).

    Columns ``group, n, mean_predicted, observed, observed_lower, observed_upper``.
    """
    event, time = _ev_time(event, time)
    pred = _pred(cif_at_tau, time.shape[0], "cif_at_tau")
    return _group_table(event, time, pred, float(tau), int(cause), n_groups)


# ----------------------------------------------------------------------------------------------------------------
# clinical usefulness
# ----------------------------------------------------------------------------------------------------------------
#: Default thresholds of the decision curve: 5% to 50% in steps of 5%.
DEFAULT_THRESHOLDS = tuple(np.arange(0.05, 0.55, 0.05))


def net_benefit(
    event, time, cif_at_tau, tau: float, cause: int | Cause = Cause.RELAPSE, thresholds=DEFAULT_THRESHOLDS
) -> pd.DataFrame:
    """Net benefit of "treat if F̂_k(τ) ≥ p" over thresholds p (decision curve; Vickers et al. 2008).

    NB(p) = F_obs · q − (1 − F_obs) · q · p / (1 − p), q the share of patients with
    F̂_k(τ) ≥ p and F_obs the Aalen–Johansen cause-k incidence at τ among them (which handles censoring and the
    competing event). Treat-all uses q = 1 and the overall incidence; treat-none is 0.

    Returns
    -------
    DataFrame with columns ``threshold, net_benefit, treat_all, treat_none, share_treated``.
    """
    event, time = _ev_time(event, time)
    pred = _pred(cif_at_tau, time.shape[0], "cif_at_tau")
    p = np.asarray(thresholds, dtype=float).ravel()
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError("thresholds must be in (0, 1)")
    cause = int(cause)
    overall = float(aalen_johansen(time, event, cause).at([tau])[0])
    odds = p / (1.0 - p)
    nb = np.zeros_like(p)
    share = np.zeros_like(p)
    for j, pj in enumerate(p):
        treated = pred >= pj
        q = treated.mean()
        share[j] = q
        if q > 0:
            f_obs = float(aalen_johansen(time[treated], event[treated], cause).at([tau])[0])
            nb[j] = f_obs * q - (1.0 - f_obs) * q * odds[j]
    return pd.DataFrame(
        {
            "threshold": p,
            "net_benefit": nb,
            "treat_all": overall - (1.0 - overall) * odds,
            "treat_none": np.zeros_like(p),
            "share_treated": share,
        }
    )


# ----------------------------------------------------------------------------------------------------------------
# overall survival (single event): scikit-survival's estimators
# ----------------------------------------------------------------------------------------------------------------
def _surv_struct(event_bool, time):
    from sksurv.util import Surv

    return Surv.from_arrays(np.asarray(event_bool, dtype=bool), np.asarray(time, dtype=float))


def harrell_c(event_bool, time, risk) -> float:
    """Harrell's C for a single event (e.g. any event, or death); higher ``risk`` = earlier event expected.

    Pairs (i, j) with an event for i and T_j > T_i (or j censored at T_i); ties in risk count ½ (Harrell et al.
    1982). Computed by :func:`concordance_index_cr` with one cause and no truncation; equal to
    ``sksurv.metrics.concordance_index_censored`` (checked in the tests).
    """
    e = np.asarray(event_bool, dtype=bool).astype(int)
    return concordance_index_cr(e, time, risk, tau=np.inf, cause=1)


def uno_c(event_bool, time, risk, tau: float) -> float:
    """Uno's IPCW C truncated at ``tau`` (Uno et al. 2011): pairs with an event for i at T_i ≤ τ and T_j > T_i,
    weighted by 1/Ĝ(T_i)², Ĝ estimated from the same data. Computed by :func:`concordance_index_cr` with one cause
    and ``ipcw=True``; equal to ``sksurv.metrics.concordance_index_ipcw`` without ties (checked in the tests).
    """
    e = np.asarray(event_bool, dtype=bool).astype(int)
    return concordance_index_cr(e, time, risk, tau=tau, cause=1, ipcw=True)


def integrated_brier_score_os(event_bool, time, surv, times) -> float:
    """Integrated Brier score of predicted survival ``surv`` (n, k) at ``times`` (Graf 1999), with
    ``sksurv.metrics.integrated_brier_score``; times beyond the last follow-up time are dropped (Ĝ undefined there).
    """
    from sksurv.metrics import integrated_brier_score

    y = _surv_struct(event_bool, time)
    times = np.asarray(times, dtype=float)
    surv = np.asarray(surv, dtype=float)
    ok = (times >= np.min(time)) & (times < np.max(time))
    if ok.sum() < 2:
        return float("nan")
    return float(integrated_brier_score(y, y, surv[:, ok], times[ok]))


# ----------------------------------------------------------------------------------------------------------------
# everything at once
# ----------------------------------------------------------------------------------------------------------------
def _horizon_label(days: float, months: float | None) -> str:
    m = months if months is not None else days / DAYS_PER_MONTH
    return f"{round(float(m), 1):g}m"


def evaluate_predictions(
    event,
    time,
    cif,
    horizons_days,
    *,
    causes: Sequence[int] = CAUSES,
    horizons_months: Sequence[float] | None = None,
    calibration: bool = True,
    thresholds: Sequence[float] = (),
    os_event=None,
    os_time=None,
    os_surv=None,
) -> dict[str, float]:
    """All competing-risks metrics per cause and horizon, as one flat dict (what training logs).

    ``cif`` of shape (n, 3, k) (event-free, relapse, TRM) at the k horizons ``horizons_days`` (days, the unit of
    ``time``). Names are ``{cause}_{metric}_{h}m`` with cause ``relapse``/``trm``, h in months (from
    ``horizons_months`` if given, else days / a month) and metric ``auc`` (Blanche), ``cindex`` (Wolbers 2009),
    ``brier``, ``ipa`` and, with ``calibration=True``, ``ici``, ``e50``, ``e90``, ``cal_slope``,
    ``cal_intercept``; ``netbenefit_p{100p}`` for each of ``thresholds``. Over all horizons: ``{cause}_ibs`` (needs
    k ≥ 2) and the event-free survival C-indices ``efs_harrell_c`` (risk = 1 − EFS at the last horizon) and
    ``efs_uno_c_{h}m``. With ``os_event``, ``os_time`` (overall survival data) and ``os_surv`` (n, k) predicted OS:
    ``os_harrell_c``, ``os_uno_c_{h}m``, ``os_ibs``.
    """
    event, time = _ev_time(event, time)
    n = time.shape[0]
    cif = _pred(cif, n, "cif")
    hd = np.atleast_1d(np.asarray(horizons_days, dtype=float))
    if cif.ndim != 3 or cif.shape[1] != 3 or cif.shape[2] != hd.shape[0]:
        raise ValueError(f"cif must have shape (n, 3, {hd.shape[0]}); got {cif.shape}")
    hm = list(horizons_months) if horizons_months is not None else [None] * hd.shape[0]
    labels = [_horizon_label(d, m) for d, m in zip(hd, hm, strict=True)]
    g = censoring_survival(time, event)
    out: dict[str, float] = {}
    for cause in causes:
        cause = int(cause)
        name = Cause(cause).key
        null = aalen_johansen(time, event, cause).at(hd)
        for j, (tau, lab) in enumerate(zip(hd, labels, strict=True)):
            f = cif[:, cause, j]
            out[f"{name}_auc_{lab}"] = time_dependent_auc(event, time, f, tau, cause, g)
            out[f"{name}_cindex_{lab}"] = concordance_index_cr(event, time, f, tau, cause)
            bs = brier_score_cr(event, time, f, tau, cause, g)
            bs0 = brier_score_cr(event, time, np.full(n, null[j]), tau, cause, g)
            out[f"{name}_brier_{lab}"] = bs
            out[f"{name}_ipa_{lab}"] = 1.0 - bs / bs0 if bs0 > 0 else float("nan")
            if calibration:
                cal = calibration_cr(event, time, f, tau, cause)
                out[f"{name}_ici_{lab}"] = cal.ici
                out[f"{name}_e50_{lab}"] = cal.e50
                out[f"{name}_e90_{lab}"] = cal.e90
                out[f"{name}_cal_slope_{lab}"] = cal.slope
                out[f"{name}_cal_intercept_{lab}"] = cal.intercept
            if len(thresholds):
                nb = net_benefit(event, time, f, tau, cause, thresholds)
                for p, v in zip(nb["threshold"], nb["net_benefit"], strict=True):
                    out[f"{name}_netbenefit_p{round(100 * p):d}_{lab}"] = float(v)
        if hd.shape[0] >= 2:
            out[f"{name}_ibs"] = integrated_brier_score_cr(event, time, cif[:, cause, :], hd, cause, g)
    any_event = event > 0
    last = int(np.argmax(hd))
    out["efs_harrell_c"] = harrell_c(any_event, time, 1.0 - cif[:, State.EFS, last])
    for j, lab in enumerate(labels):
        out[f"efs_uno_c_{lab}"] = uno_c(any_event, time, 1.0 - cif[:, State.EFS, j], hd[j])
    if os_event is not None and os_time is not None and os_surv is not None:
        os_surv = _pred(os_surv, n, "os_surv")
        out["os_harrell_c"] = harrell_c(os_event, os_time, 1.0 - os_surv[:, last])
        for j, lab in enumerate(labels):
            out[f"os_uno_c_{lab}"] = uno_c(os_event, os_time, 1.0 - os_surv[:, j], hd[j])
        out["os_ibs"] = integrated_brier_score_os(os_event, os_time, os_surv, hd)
    return out


# ----------------------------------------------------------------------------------------------------------------
# bootstrap replicates, all at once
# ----------------------------------------------------------------------------------------------------------------
def resample_counts(indices, n: int) -> np.ndarray:
    """(B, n) float counts: how often patient i appears in resample b of ``indices`` (B, n_b) (rows of patient
    indices with repeats). A metric of a resample equals the same metric with these frequency weights on the
    original data, which is what :func:`replicate_metrics` evaluates."""
    idx = np.atleast_2d(np.asarray(indices, dtype=np.int64))
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"resample indices must lie in [0, {n})")
    offset = (np.arange(idx.shape[0], dtype=np.int64) * n)[:, None]
    return np.bincount((idx + offset).ravel(), minlength=idx.shape[0] * n).reshape(idx.shape[0], n).astype(float)


def _time_sums(inverse: np.ndarray, m: int, w: np.ndarray) -> np.ndarray:
    """Σ of the weight columns ``w`` (B, n) per distinct time (``inverse`` from np.unique): (B, m)."""
    out = np.zeros((w.shape[0], m))
    order = np.argsort(inverse, kind="stable")
    inv = inverse[order]
    starts = np.flatnonzero(np.concatenate([[True], inv[1:] != inv[:-1]]))
    if order.size:
        out[:, inv[starts]] = np.add.reduceat(w[:, order], starts, axis=1)
    return out


def _weighted_nonparametric(time, event, weights, causes):
    """Kaplan–Meier Ĝ of censoring and Aalen–Johansen CIFs of ``causes`` under frequency weights (B, n).

    The same arithmetic as :func:`~nbrisk.models.nonparametric.censoring_survival` and
    :func:`~nbrisk.models.nonparametric.aalen_johansen` on the resample itself: the counts at each time are sums of
    integer weights (exact in floating point), and a time with weight 0 multiplies Ĝ and Ŝ by exactly 1 and adds
    exactly 0 to the CIF. Returns ``(times (m,), g (B, m), cif {cause: (B, m)})``.
    """
    times, inverse = np.unique(time, return_inverse=True)
    inverse = inverse.ravel()
    m = times.shape[0]
    total = weights.sum(axis=1, keepdims=True)
    d_cens = _time_sums(inverse, m, weights * (event == 0))
    d_any = _time_sums(inverse, m, weights * (event > 0))
    leaving = d_cens + d_any
    at_risk = total - np.concatenate([np.zeros((weights.shape[0], 1)), np.cumsum(leaving, axis=1)[:, :-1]], axis=1)
    g = np.cumprod(1.0 - _inv_ratio(d_cens, at_risk - d_any), axis=1)
    surv = np.cumprod(1.0 - _inv_ratio(d_any, at_risk), axis=1)
    s_prev = np.concatenate([np.ones((weights.shape[0], 1)), surv[:, :-1]], axis=1)
    cif = {}
    for k in causes:
        d_k = _time_sums(inverse, m, weights * (event == k))
        cif[k] = np.minimum(np.cumsum(s_prev * _inv_ratio(d_k, at_risk), axis=1), 1.0)
    return times, g, cif


def _inv_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape))
    np.divide(num, den, out=out, where=den > 0)
    return out


def replicate_metrics(
    event,
    time,
    cif,
    horizons_days,
    labels: Sequence[str],
    counts,
    causes: Sequence[int] = CAUSES,
    chunk: int = 2_000_000,
) -> dict[str, np.ndarray]:
    """The bootstrap metric set of many resamples at once: per cause and horizon the time-dependent AUC
    (:func:`time_dependent_auc`), the Wolbers C-index (:func:`concordance_index_cr`), the IPCW Brier score
    (:func:`brier_score_cr`) and the IPA against the resample's own Aalen–Johansen CIF (:func:`ipa`), each with Ĝ
    estimated from the resample — exactly what those functions give on each resample, to rounding.

    A resample with repeats is the original data with frequency weights ``counts`` (B, n) (:func:`resample_counts`):
    every Kaplan–Meier / Aalen–Johansen count, IPCW weight and pair sum is linear in them (a patient is never
    comparable with a copy of himself: the pair rules are strict in time). The sorting behind the pair sums depends
    only on the data and is done once for all resamples (:func:`_dominance_sums`), so B resamples cost a few
    cumulative sums over (B, n) arrays instead of B evaluations (Efron & Tibshirani 1993, ch. 6, for the bootstrap
    as a reweighting). ``cif`` (n, 3, k) in state order (event-free, relapse, TRM) at ``horizons_days``; names
    ``{cause}_{auc|cindex|brier|ipa}_{label}``. Rows are processed in chunks of about ``chunk`` (B × n) entries to
    bound memory. Returns name → (B,) replicate values (NaN where undefined, as the scalar functions).
    """
    event, time = _ev_time(event, time)
    n = time.shape[0]
    w_all = np.atleast_2d(np.asarray(counts, dtype=float))
    if w_all.shape[1] != n:
        raise ValueError(f"counts have {w_all.shape[1]} columns for {n} patients")
    cif = _pred(cif, n, "cif")
    hd = np.atleast_1d(np.asarray(horizons_days, dtype=float))
    rows = max(1, chunk // max(n, 1))
    parts = [
        _replicate_chunk(event, time, cif, hd, labels, w_all[s : s + rows], causes)
        for s in range(0, w_all.shape[0], rows)
    ]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


def _replicate_chunk(event, time, cif, hd, labels, w, causes) -> dict[str, np.ndarray]:
    n_b, n = w.shape
    times, g, aj = _weighted_nonparametric(time, event, w, [int(c) for c in causes])
    # Ĝ(T_i−) (B, n) and the step index of each horizon, as CensoringSurvival.left / .at look them up
    left_idx = np.searchsorted(times, time, side="left") - 1
    g_left = np.where(left_idx < 0, 1.0, g[:, np.clip(left_idx, 0, None)])
    total = w.sum(axis=1)
    # C-index keys: "j later than i" is (T_j, censored_j) > (T_i, 0) lexicographically, ties sharing a key
    cens = (event == 0).astype(float)
    order = np.lexsort((cens, time))
    key = np.empty(n)
    first = np.concatenate([[True], (np.diff(time[order]) != 0) | (np.diff(cens[order]) != 0)])
    key[order] = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    key_sorted = key[order]
    w_by_key = np.concatenate([np.zeros((n_b, 1)), np.cumsum(w[:, order], axis=1)], axis=1)
    out: dict[str, np.ndarray] = {}
    nan = np.full(n_b, np.nan)
    for cause in causes:
        cause = int(cause)
        name = Cause(cause).key
        competing = (event != 0) & (event != cause)
        for j, (tau, lab) in enumerate(zip(hd, labels, strict=True)):
            f = cif[:, cause, j]
            before = time <= tau
            case = before & (event == cause)
            ctrl = (before & competing) | ~before
            t_idx = np.searchsorted(times, tau, side="right") - 1
            g_tau = np.ones(n_b) if t_idx < 0 else g[:, t_idx]
            # IPCW weights of _ipcw_status: 1/Ĝ(T−) with an event by τ, 1/Ĝ(τ) beyond τ, 0 if censored before τ
            ipcw = np.where((case | (before & competing))[None, :], _inv(g_left), 0.0)
            ipcw[:, ~before] = _inv(g_tau)[:, None]
            wi = w * ipcw
            has_case = w[:, case].sum(axis=1) > 0
            has_ctrl = w[:, ctrl].sum(axis=1) > 0
            # AUC: weighted share of case-control pairs ordered by risk (ties ½)
            c_order = np.argsort(f[ctrl], kind="mergesort")
            r_sorted = f[ctrl][c_order]
            cum = np.concatenate([np.zeros((n_b, 1)), np.cumsum(wi[:, ctrl][:, c_order], axis=1)], axis=1)
            lo = np.searchsorted(r_sorted, f[case], side="left")
            hi = np.searchsorted(r_sorted, f[case], side="right")
            case_w = wi[:, case]
            num = np.sum(case_w * (cum[:, lo] + 0.5 * (cum[:, hi] - cum[:, lo])), axis=1)
            den = case_w.sum(axis=1) * cum[:, -1]
            auc = np.clip(_inv_ratio(num, den), 0.0, 1.0)
            out[f"{name}_auc_{lab}"] = np.where(has_case & has_ctrl & (den > 0), auc, nan)
            out[f"{name}_cindex_{lab}"] = _replicate_cindex(
                event, time, f, case, competing, key, key_sorted, order, w, w_by_key, has_case
            )
            bs = np.sum(wi * (case.astype(float) - f) ** 2, axis=1) / total
            null = aj[cause][:, t_idx] if t_idx >= 0 else np.zeros(n_b)
            bs0 = np.sum(wi * (case.astype(float)[None, :] - null[:, None]) ** 2, axis=1) / total
            out[f"{name}_brier_{lab}"] = bs
            out[f"{name}_ipa_{lab}"] = np.where(bs0 > 0, 1.0 - _inv_ratio(bs, bs0), nan)
    return out


def _replicate_cindex(event, time, f, case, competing, key, key_sorted, order, w, w_by_key, has_case) -> np.ndarray:
    """The Wolbers 2009 C-index (:func:`concordance_index_cr`, ``ipcw=False``) under frequency weights (B, n)."""
    ci = np.flatnonzero(case)
    n_b = w.shape[0]
    if not ci.size:
        return np.full(n_b, np.nan)
    rank = np.unique(f, return_inverse=True)[1].ravel()
    below_a, tied_a = _dominance_sums(key, rank, w, key[ci], rank[ci], greater=True)
    # Σ_j w_j over keys strictly later than each case's
    later = w_by_key[:, -1][:, None] - w_by_key[:, np.searchsorted(key_sorted, key[ci], side="right")]
    w_case = w[:, ci]
    num = np.sum(w_case * (below_a + 0.5 * tied_a), axis=1)
    den = np.sum(w_case * later, axis=1)
    comp_idx = np.flatnonzero(competing)
    if comp_idx.size:
        below_b, tied_b = _dominance_sums(time[comp_idx], rank[comp_idx], w[:, comp_idx], time[ci], rank[ci], False)
        t_sorted = np.argsort(time[comp_idx], kind="mergesort")
        cum_v = np.concatenate([np.zeros((n_b, 1)), np.cumsum(w[:, comp_idx[t_sorted]], axis=1)], axis=1)
        total_b = cum_v[:, np.searchsorted(time[comp_idx][t_sorted], time[ci], side="right")]
        num += np.sum(w_case * (below_b + 0.5 * tied_b), axis=1)
        den += np.sum(w_case * total_b, axis=1)
    return np.where(has_case & (den > 0), _inv_ratio(num, den), np.nan)


# ----------------------------------------------------------------------------------------------------------------
# bootstrap
# ----------------------------------------------------------------------------------------------------------------
def bootstrap_indices(n: int, n_boot: int = 200, seed: int = 0) -> np.ndarray:
    """Resamples of patients with replacement, shape (n_boot, n); the same ``(n, n_boot, seed)`` always gives the
    same resamples, so every model evaluated with them is compared on identical data."""
    if n < 1 or n_boot < 1:
        raise ValueError("n and n_boot must be >= 1")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity, not elementwise
class BootstrapResult:
    """Point estimates with percentile CIs: dicts ``name → value``; ``replicates`` (n_boot,) per name (NaN where a
    resample had no defined value, e.g. no cases); ``indices`` the resamples used (n_boot, n)."""

    estimate: dict[str, float]
    lower: dict[str, float]
    upper: dict[str, float]
    replicates: dict[str, np.ndarray]
    indices: np.ndarray


def bootstrap_ci(
    metric_fn: Callable[[np.ndarray], float | dict[str, float]],
    n: int,
    n_boot: int = 200,
    seed: int = 0,
    conf_level: float = 0.95,
    indices: np.ndarray | None = None,
) -> BootstrapResult:
    """Percentile bootstrap CIs of one or several metrics over resamples of patients.

    ``metric_fn(idx)`` computes the metric(s) on the patients ``idx`` (an int array, possibly with repeats) and
    returns a float or a dict of floats; ``metric_fn(np.arange(n))`` gives the point estimate. Resamples come from
    :func:`bootstrap_indices` ``(n, n_boot, seed)`` unless ``indices`` is given, so two models evaluated with the
    same seed share resamples — and ``metric_fn = lambda i: m(model_a, i) − m(model_b, i)`` gives a CI of their
    difference. Non-finite replicate values are ignored in the percentiles.
    """
    if not 0 < conf_level < 1:
        raise ValueError("conf_level must be in (0, 1)")
    idx = bootstrap_indices(n, n_boot, seed) if indices is None else np.asarray(indices)

    def as_dict(v) -> dict[str, float]:
        return {k: float(x) for k, x in v.items()} if isinstance(v, dict) else {"value": float(v)}

    point = as_dict(metric_fn(np.arange(n)))
    reps = [as_dict(metric_fn(row)) for row in idx]
    alpha = (1.0 - conf_level) / 2.0
    lower, upper, replicates = {}, {}, {}
    for name in point:
        vals = np.array([r.get(name, np.nan) for r in reps], dtype=float)
        replicates[name] = vals
        finite = vals[np.isfinite(vals)]
        if finite.size:
            lower[name], upper[name] = (float(q) for q in np.quantile(finite, [alpha, 1.0 - alpha]))
        else:
            lower[name] = upper[name] = float("nan")
    return BootstrapResult(point, lower, upper, replicates, idx)
