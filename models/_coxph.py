"""A weighted Cox partial-likelihood engine, written from the definitions (numpy only).

Every regression model of nbrisk (cause-specific Cox, Fine–Gray, the post-relapse model) is a Cox model on some data
set: the cause-specific Cox on the original data with the other cause as censoring, Fine–Gray on a counting-process
expansion with inverse-probability-of-censoring weights (Fine & Gray 1999), the post-relapse model on the relapsed
patients with the clock reset. They all share this engine.

Model and likelihood (Cox 1972; Andersen & Gill 1982 for counting-process data; Therneau & Grambsch 2000, ch. 3)
---------------------------------------------------------------------------------------------------------------
Row i is at risk on the interval (start_i, stop_i], has case weight w_i, covariates x_i and ``event_i`` = 1 if it
ends with the event at stop_i. With r_i = exp(βᵀx_i), at each distinct event time t of a stratum let
S0(t) = Σ_{i ∈ R(t)} w_i r_i (R(t) = rows with start_i < t ≤ stop_i of the same stratum), D(t) the rows with an event
at t, d(t) = |D(t)|, dw(t) = Σ_{D(t)} w_i and D0(t) = Σ_{D(t)} w_i r_i.

* Breslow ties: log L = Σ_t [ Σ_{D(t)} w_i βᵀx_i − dw(t) log S0(t) ].
* Efron ties (Efron 1977; weighted as in R's ``coxph``: each of the d tied events carries the mean weight dw/d):
  log L = Σ_t [ Σ_{D(t)} w_i βᵀx_i − (dw/d) Σ_{l=0}^{d−1} log(S0(t) − (l/d) D0(t)) ].

Both are written as sums over "denominator rows" (t, f_l, m_l): Breslow has one row per time (f = 0, m = dw), Efron d
rows (f = l/d, m = dw/d). A row's denominator is S0(t) − f D0(t). Sums over risk sets are never formed row by row:
with H(t) = Σ_{u ≤ t} Σ_l m_l / den_l(u) a cumulative sum over event times, Σ_t over the risk sets containing row i
is H(stop_i) − H(start_i) (two ``searchsorted``), so gradient and information cost O(n p²) per Newton step.

The penalised criterion is log L − ½ α ‖β‖² (ridge; the same objective as scikit-survival's
``CoxPHSurvivalAnalysis(alpha=…)``), maximised by Newton–Raphson with step halving.

Outputs: β, the information matrix I = −∂² (penalised log L) (model-based variance I⁻¹), per-row score residuals
U_i (Σ_i w_i U_i = the score; Lin & Wei 1989), the robust sandwich variance I⁻¹ (Σ_c (Σ_{i ∈ c} w_i U_i)^{⊗2}) I⁻¹
clustered by subject, and the baseline cumulative-hazard increments per stratum at the distinct event times:
ΔΛ0(t) = Σ_l m_l / den_l(t) (Breslow: dw(t) / S0(t), the weighted Breslow estimator; Efron: its tie-corrected form),
for covariates centred at ``center`` (the weighted mean of x), i.e. ΔΛ(t | x) = ΔΛ0(t) exp(βᵀ(x − center)).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import ThreadpoolController

TIES = ("breslow", "efron")


@dataclass
class CoxPHResult:
    """The fitted Cox model returned by :func:`fit_coxph`.

    Attributes
    ----------
    coef : (p,) β for the original (uncentred) covariates.
    center : (p,) the covariate centre used for the baseline (weighted mean of x).
    information : (p, p) observed information of the penalised log-likelihood at β.
    var_model : (p, p) model-based variance I⁻¹.
    var_robust : (p, p) sandwich variance clustered by ``cluster`` (each row its own cluster if None).
    score_residuals : (n, p) U_i in the input row order (unweighted: Σ_i w_i U_i = score).
    loglik : penalised log partial likelihood at β (loglik_null at β = 0).
    baseline : dict stratum → (event_times (m,), hazard increments (m,)) at centred covariates.
    n_iter, converged. possibly_infinite : (p,) bool, coefficients whose MLE looks infinite (separation: the
    log-likelihood converged while the Newton step for them stays large; R's coxph warns "coefficient may be
    infinite"). Predictions stay usable (the hazard for that level is ~0), the coefficient and its SE are not.
    """

    coef: np.ndarray
    center: np.ndarray
    information: np.ndarray
    var_model: np.ndarray
    var_robust: np.ndarray
    score_residuals: np.ndarray
    loglik: float
    loglik_null: float
    baseline: dict = field(default_factory=dict)
    n_iter: int = 0
    converged: bool = True
    possibly_infinite: np.ndarray | None = None

    @property
    def se_model(self) -> np.ndarray:
        return _sqrt_diag(self.var_model)

    @property
    def se_robust(self) -> np.ndarray:
        return _sqrt_diag(self.var_robust)


def _sqrt_diag(v: np.ndarray) -> np.ndarray:
    """Standard errors from a variance matrix; NaN where the variance is not positive (a singular information,
    e.g. a constant or perfectly separating covariate), never a warning."""
    d = np.diag(v)
    return np.where(d > 0, np.sqrt(np.where(d > 0, d, 1.0)), np.nan)


class _Stratum:
    """Sort orders and event-time structure of one stratum; everything that does not depend on β."""

    def __init__(self, rows, start, stop, event, weights, ties):
        self.rows = rows
        st, sp, ev, w = start[rows], stop[rows], event[rows], weights[rows]
        self.start, self.stop, self.w = st, sp, w
        self.order_stop = np.argsort(sp, kind="stable")
        self.stop_sorted = sp[self.order_stop]
        self.order_start = np.argsort(st, kind="stable")
        self.start_sorted = st[self.order_start]
        is_ev = (ev == 1) & (w > 0)
        ev_idx = np.flatnonzero(is_ev)
        # events sorted by time, so that per-time sums are contiguous segments (np.add.reduceat)
        self.ev_idx = ev_idx[np.argsort(sp[ev_idx], kind="stable")]  # local row indices of events
        ev_t = sp[self.ev_idx]
        self.times, self.ev_time_idx = np.unique(ev_t, return_inverse=True)
        m = len(self.times)
        self.d = np.bincount(self.ev_time_idx, minlength=m).astype(float)
        self.dw = np.bincount(self.ev_time_idx, weights=w[self.ev_idx], minlength=m)
        # positions of the risk-set boundaries at each event time
        self.pos_stop = np.searchsorted(self.stop_sorted, self.times, side="left")  # stop >= t from here
        self.pos_start = np.searchsorted(self.start_sorted, self.times, side="left")  # start >= t from here
        # for each row: number of event times <= stop / <= start
        self.k_stop = np.searchsorted(self.times, sp, side="right")
        self.k_start = np.searchsorted(self.times, st, side="right")
        # denominator rows
        if ties == "efron":
            dd = self.d.astype(int)
            self.den_t = np.repeat(np.arange(m), dd)
            offs = np.arange(len(self.den_t)) - np.repeat(np.cumsum(dd) - dd, dd)
            self.den_f = offs / np.repeat(self.d, dd)
            self.den_m = np.repeat(self.dw / np.maximum(self.d, 1.0), dd)
        else:
            self.den_t = np.arange(m)
            self.den_f = np.zeros(m)
            self.den_m = self.dw.copy()
        self.ev_starts = np.concatenate([[0], np.cumsum(self.d.astype(int))[:-1]]).astype(int)
        self.den_starts = np.searchsorted(self.den_t, np.arange(m))


def _segment_sum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums of consecutive segments of ``values`` (first axis) beginning at ``starts`` (non-empty segments)."""
    if len(starts) == 0:
        return np.zeros((0, *values.shape[1:]))
    return np.add.reduceat(values, starts, axis=0)


def _rev_cumsum_at(sorted_vals: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Σ_{j ≥ pos} sorted_vals[j] for each pos (first axis), as a reverse cumulative sum."""
    tot = np.concatenate([np.cumsum(sorted_vals[::-1], axis=0)[::-1], np.zeros((1, *sorted_vals.shape[1:]))])
    return tot[pos]


def _stratum_terms(s: _Stratum, X: np.ndarray, eta: np.ndarray, want_hess: bool):
    """Log-likelihood, gradient, Hessian part and per-time quantities of one stratum at linear predictor eta."""
    Xs = X[s.rows]
    wr = s.w * np.exp(eta)
    wrx = wr[:, None] * Xs
    # risk-set sums at each event time: rows with stop >= t minus rows with start >= t
    S0 = _rev_cumsum_at(wr[s.order_stop], s.pos_stop) - _rev_cumsum_at(wr[s.order_start], s.pos_start)
    S1 = _rev_cumsum_at(wrx[s.order_stop], s.pos_stop) - _rev_cumsum_at(wrx[s.order_start], s.pos_start)
    m = len(s.times)
    D0 = np.bincount(s.ev_time_idx, weights=wr[s.ev_idx], minlength=m)
    D1 = _segment_sum(wrx[s.ev_idx], s.ev_starts)
    t, f, mm = s.den_t, s.den_f, s.den_m
    den = S0[t] - f * D0[t]
    if not np.all(den > 0):
        # a whole risk set underflowed (exp(η − max η) = 0 for every row in it, or only cancellation left): β is
        # in the region a diverging fit runs into (separation), where the partial likelihood can no longer be
        # evaluated; the caller treats this β as having no finite log-likelihood and steps back
        return -np.inf, None, None, None
    a = (S1[t] - f[:, None] * D1[t]) / den[:, None]  # (rows, p) weighted mean of x over the (reduced) risk set
    ll = float(np.sum(s.w[s.ev_idx] * eta[s.ev_idx]) - np.sum(mm * np.log(den)))
    h = np.bincount(t, weights=mm / den, minlength=m)  # baseline hazard increments ΔΛ0(t)
    g = np.bincount(t, weights=mm * f / den, minlength=m)  # Efron correction for rows dying at t
    H = np.concatenate([[0.0], np.cumsum(h)])
    expo = H[s.k_stop] - H[s.k_start]  # Σ over risk sets containing the row of h
    dying = np.zeros(len(s.rows))
    dying[s.ev_idx] = g[s.ev_time_idx]
    c = wr * (expo - dying)
    grad = np.sum(s.w[s.ev_idx, None] * Xs[s.ev_idx], axis=0) - c @ Xs
    hess = None
    if want_hess:
        sq = np.sqrt(mm)[:, None] * a
        hess = (Xs * c[:, None]).T @ Xs - sq.T @ sq
    return ll, grad, hess, dict(S0=S0, h=h, g=g, a=a, expo=expo, c=c, wr=wr)


def _score_residuals(s: _Stratum, X: np.ndarray, eta: np.ndarray, q: dict) -> np.ndarray:
    """Per-row score residuals U_i (unweighted) of one stratum, so that Σ_i w_i U_i is the score.

    U_i = δ_i (x_i − ā(t_i)) − r_i Σ_{t: i ∈ R(t)} Σ_l c_il m_l (x_i − a_l(t)) / den_l(t), with c_il = 1 − f_l if i
    dies at t and 1 otherwise; ā(t) = Σ_l m_l a_l / dw the (Efron-averaged) risk-set mean.
    """
    Xs = X[s.rows]
    p = Xs.shape[1]
    m = len(s.times)
    t, f, mm = s.den_t, s.den_f, s.den_m
    S0, a = q["S0"], q["a"]
    D0 = np.bincount(s.ev_time_idx, weights=q["wr"][s.ev_idx], minlength=m)
    den = np.maximum(S0[t] - f * D0[t], 1e-300)
    Q = _segment_sum((mm / den)[:, None] * a, s.den_starts)
    Qg = _segment_sum((mm * f / den)[:, None] * a, s.den_starts)
    abar = _segment_sum(mm[:, None] * a, s.den_starts) / np.maximum(s.dw, 1e-300)[:, None]
    Qc = np.concatenate([np.zeros((1, p)), np.cumsum(Q, axis=0)])
    r = np.exp(eta)
    U = -r[:, None] * (Xs * q["expo"][:, None] - (Qc[s.k_stop] - Qc[s.k_start]))
    ei, ti = s.ev_idx, s.ev_time_idx
    U[ei] += Xs[ei] - abar[ti]
    # rows dying at t are only partly in the Efron denominators: add back their f-share
    U[ei] += r[ei, None] * (Xs[ei] * q["g"][ti][:, None] - Qg[ti])
    return U


def fit_coxph(*args, **kwargs) -> CoxPHResult:
    """Fit a (weighted, stratified, ridge-penalised) Cox model to counting-process data.

    See :func:`_fit_coxph` for the parameters. The p × p products here are small: a multi-threaded BLAS only adds
    contention (measured 40× slower on a busy 2-core machine), so the fit runs with one BLAS thread.
    """
    global _CONTROLLER
    if _CONTROLLER is None:  # inspecting the loaded libraries costs ~10 ms: do it once
        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=1, user_api="blas"):
        return _fit_coxph(*args, **kwargs)


_CONTROLLER = None


def _fit_coxph(
    X,
    stop,
    event,
    *,
    start=None,
    weights=None,
    strata=None,
    cluster=None,
    ties: str = "breslow",
    alpha: float = 0.0,
    max_iter: int = 100,
    tol: float = 1e-9,
    init=None,
) -> CoxPHResult:
    """The Cox fit (see :func:`fit_coxph`).

    Parameters
    ----------
    X : (n, p) covariates. stop : (n,) end of each at-risk interval (event or censoring time).
    event : (n,) 1 if the row ends with the event, else 0. start : (n,) start of the interval (default 0; must be
    < stop). weights : (n,) non-negative case weights (default 1). strata : (n,) labels; each stratum has its own
    baseline. cluster : (n,) subject ids for the robust variance (rows of one subject are summed).
    ties : "breslow" | "efron". alpha : ridge penalty ½·alpha·‖β‖² (alpha ≥ 0).

    Returns
    -------
    :class:`CoxPHResult`. Issues a ``ConvergenceWarning`` if Newton–Raphson does not converge (e.g. a covariate
    that separates events perfectly: β → ∞; use alpha > 0).
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    if alpha < 0:
        raise ValueError("alpha must be >= 0")
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError("X must be 2-dimensional")
    n, p = X.shape
    stop = np.asarray(stop, dtype=float)
    event = np.asarray(event).astype(int)
    start = np.zeros(n) if start is None else np.asarray(start, dtype=float)
    weights = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if np.any(start >= stop):
        raise ValueError("every row needs start < stop")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("weights must be finite and >= 0")
    wsum = weights.sum()
    center = (weights @ X) / wsum if wsum > 0 else np.zeros(p)
    Xc = X - center
    if strata is None:
        groups = {None: np.arange(n)}
    else:
        strata = np.asarray(strata)
        labels, inv = np.unique(strata, return_inverse=True)
        groups = {lab: np.flatnonzero(inv == k) for k, lab in enumerate(labels.tolist())}
    strata_objs = {lab: _Stratum(rows, start, stop, event, weights, ties) for lab, rows in groups.items()}

    def evaluate(beta, want_hess=True):
        eta = Xc @ beta
        ll, grad, hess = 0.0, np.zeros(p), np.zeros((p, p))
        qs = {}
        for lab, s in strata_objs.items():
            if len(s.times) == 0:
                continue
            # shift eta within the stratum for overflow safety; the partial likelihood is invariant to it
            shift = float(np.max(eta[s.rows]))
            lls, gs, hs, q = _stratum_terms(s, Xc, eta[s.rows] - shift, want_hess)
            if q is None:  # not evaluable at this β (see _stratum_terms)
                return -np.inf, np.full(p, np.nan), np.full((p, p), np.nan), None
            lls += shift * float(np.sum(s.w[s.ev_idx])) - shift * float(np.sum(s.den_m))
            q["shift"] = shift
            ll += lls
            grad += gs
            if want_hess:
                hess += hs
            qs[lab] = q
        ll -= 0.5 * alpha * float(beta @ beta)
        grad -= alpha * beta
        if want_hess:
            hess += alpha * np.eye(p)
        return ll, grad, hess, qs

    beta = np.zeros(p) if init is None else np.asarray(init, dtype=float).copy()
    ll, grad, info, qs = evaluate(beta)
    if qs is None:
        raise ValueError("the initial coefficients make a whole risk set's relative risk underflow to 0")
    ll_null = ll if init is None else evaluate(np.zeros(p), want_hess=False)[0]
    converged = p == 0
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - it is reported
        if p == 0:
            break
        if not (np.all(np.isfinite(grad)) and np.all(np.isfinite(info))):
            break  # not evaluable any further: keep β, reported as not converged
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            step = None
        if step is None or not np.all(np.isfinite(step)):  # (near-)singular information: minimum-norm step
            step = np.linalg.lstsq(info, grad, rcond=None)[0]
        new_beta = beta + step
        new_ll, new_grad, new_info, new_qs = evaluate(new_beta)
        halvings = 0
        while (not np.isfinite(new_ll) or new_ll < ll - 1e-12 * abs(ll)) and halvings < 30:
            step = step / 2.0
            new_beta = beta + step
            new_ll, new_grad, new_info, new_qs = evaluate(new_beta)
            halvings += 1
        if not np.isfinite(new_ll) or not np.all(np.isfinite(new_beta)):
            # no finite improvement left (a Newton step so large — a near-singular information under separation —
            # that even 2⁻³⁰ of it reaches β where risk sets underflow): keep the last finite β, not converged
            break
        # converged when the log-likelihood is flat (relative change ≤ tol, R's coxph rule); Newton's quadratic
        # convergence leaves β within ~step² ≪ 1e-6 of the maximum. Under separation the log-likelihood flattens
        # while β keeps growing: that is also "converged", with the coefficient flagged as possibly infinite.
        done = abs(new_ll - ll) <= tol * max(1.0, abs(new_ll))
        beta, ll, grad, info, qs = new_beta, new_ll, new_grad, new_info, new_qs
        if done:
            converged = True
            break
    if not converged:
        warnings.warn(
            f"Cox partial likelihood did not converge (stopped after {it} of at most {max_iter} iterations, "
            f"max |beta| = {np.max(np.abs(beta)):.3g}); a covariate may separate the events — consider alpha > 0",
            ConvergenceWarning,
            stacklevel=3,
        )
    try:
        var_model = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        var_model = np.linalg.pinv(info)
    # R's check (coxph.fit): the next Newton step is still large for a coefficient whose MLE is at infinity
    # (a covariate level with no events of the cause); the fit is kept, the flag says so
    next_step = np.abs(var_model @ grad) if p else np.zeros(0)
    infinite = (next_step > 1e-5) & (next_step > np.sqrt(tol) * np.abs(beta) * 1e-2)

    eta = Xc @ beta
    U = np.zeros((n, p))
    baseline: dict[Any, tuple[np.ndarray, np.ndarray]] = {}
    for lab, s in strata_objs.items():
        if len(s.times) == 0:
            baseline[lab] = (np.empty(0), np.empty(0))
            continue
        q = qs[lab]
        shift = q["shift"]
        U[s.rows] = _score_residuals(s, Xc, eta[s.rows] - shift, q) if p else 0.0
        # q's h is for risks scaled by exp(-shift): undo it
        baseline[lab] = (s.times.copy(), q["h"] * np.exp(-shift))
    if p:
        wu = weights[:, None] * U
        if cluster is not None:
            _, cinv = np.unique(np.asarray(cluster), return_inverse=True)
            agg = np.zeros((cinv.max() + 1, p))
            np.add.at(agg, cinv, wu)
            wu = agg
        var_robust = var_model @ (wu.T @ wu) @ var_model
    else:
        var_robust = var_model
    return CoxPHResult(
        coef=beta,
        center=center,
        information=info,
        var_model=var_model,
        var_robust=var_robust,
        score_residuals=U,
        loglik=ll,
        loglik_null=ll_null,
        baseline=baseline,
        n_iter=it,
        converged=converged,
        possibly_infinite=infinite,
    )
