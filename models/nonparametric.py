"""Non-parametric competing-risks estimators: Kaplan–Meier, censoring survival Ĝ, Aalen–Johansen CIF, Gray's test.

Functional core (pure functions of arrays) and one thin estimator shell, :class:`AalenJohansen`, the null model of
the project (it ignores covariates). Times are in the unit of the input (days for nbrisk cohorts); causes follow
:class:`nbrisk.core.Cause` (0 censored, 1 relapse / first cause, 2 TRM / second cause).

Ties are handled exactly (no jitter): at a tied time every event is counted in the same step, and events are taken
to happen before censorings at the same time (a patient censored at ``t`` is still at risk at ``t``).

References
----------
Aalen O (1978). Nonparametric estimation of partial transition probabilities in multiple decrement models.
    Ann Stat 6:534–545 (the variance of the CIF used for the confidence intervals; written out as in
    Pintilie M, *Competing Risks: A Practical Perspective*, Wiley 2006, eq. 4.5, and the SAS PROC LIFETEST manual).
Aalen O, Johansen S (1978). An empirical transition matrix for non-homogeneous Markov chains based on censored
    observations. Scand J Stat 5:141–150.
Gray RJ (1988). A class of K-sample tests for comparing the cumulative incidence of a competing risk.
    Ann Stat 16:1141–1154.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from nbrisk.core import Cause
from nbrisk.models._base import CompetingRisksEstimator, check_competing_risks_target, step_lookup

__all__ = [
    "AalenJohansen",
    "AalenJohansenResult",
    "CensoringSurvival",
    "aalen_johansen",
    "censoring_survival",
    "cumulative_incidence",
    "gray_test",
    "kaplan_meier",
    "restricted_mean_cif",
]


# ----------------------------------------------------------------------------------------------------------------
# counting
# ----------------------------------------------------------------------------------------------------------------
def _as_arrays(time, event) -> tuple[np.ndarray, np.ndarray]:
    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event).ravel()
    if event.dtype == bool:
        event = event.astype(int)
    event = event.astype(int)
    if time.shape != event.shape:
        raise ValueError(f"time and event must have the same length; got {time.shape[0]} and {event.shape[0]}")
    if time.size == 0:
        raise ValueError("time and event must not be empty")
    if not np.all(np.isfinite(time)):
        raise ValueError("time must be finite")
    if np.any(event < 0):
        raise ValueError("event codes must be >= 0 (0 = censored)")
    return time, event


def _counts(time: np.ndarray, event: np.ndarray, n_causes: int | None = None):
    """Counts at each distinct observed time.

    Returns ``(times (m,), n_at_risk (m,), d (m, n_causes + 1))`` where ``d[:, 0]`` counts censorings and
    ``d[:, k]`` events of cause k at each time; ``n_at_risk`` is the number with ``T >= t`` (at risk just before t).
    """
    times, inverse = np.unique(time, return_inverse=True)
    if n_causes is None:
        n_causes = int(event.max()) if event.size else 0
    m = times.shape[0]
    d = np.zeros((m, n_causes + 1), dtype=float)
    np.add.at(d, (inverse, np.clip(event, 0, n_causes)), 1.0)
    leaving = d.sum(axis=1)
    n_at_risk = time.shape[0] - np.concatenate([[0.0], np.cumsum(leaving)[:-1]])
    return times, n_at_risk, d


def _safe_div(num, den):
    num, den = np.broadcast_arrays(np.asarray(num, dtype=float), np.asarray(den, dtype=float))
    out = np.zeros(num.shape, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Kaplan–Meier and the censoring distribution
# ----------------------------------------------------------------------------------------------------------------
def kaplan_meier(time, event_bool) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier estimate of the survival function S(t) = P(T > t).

    Parameters
    ----------
    time : (n,) observed times. event_bool : (n,) True if the event was observed, False if censored.

    Returns
    -------
    times : (m,) the distinct observed times (events and censorings), sorted.
    surv : (m,) Ŝ(t) just after each of those times (right-continuous).
    """
    time, event = _as_arrays(time, np.asarray(event_bool).astype(bool))
    times, n_at_risk, d = _counts(time, event, n_causes=1)
    surv = np.cumprod(1.0 - _safe_div(d[:, 1], n_at_risk))
    return times, surv


@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity, not elementwise
class CensoringSurvival:
    """Kaplan–Meier estimate Ĝ of the censoring survival function, G(t) = P(C > t), as a step function.

    ``times`` (m,) distinct observed times, ``surv`` (m,) Ĝ just after each. Use :meth:`at` for Ĝ(t) and
    :meth:`left` for the left limit Ĝ(t−) (the IPCW weight of a patient who had an event at t).
    """

    times: np.ndarray
    surv: np.ndarray

    def at(self, t) -> np.ndarray:
        """Ĝ(t), vectorised over ``t`` (any shape)."""
        t = np.asarray(t, dtype=float)
        return step_lookup(self.times, self.surv, t.ravel(), 1.0).reshape(t.shape)

    def left(self, t) -> np.ndarray:
        """Ĝ(t−) = value just before ``t``, vectorised over ``t`` (any shape)."""
        t = np.asarray(t, dtype=float)
        idx = np.searchsorted(self.times, t.ravel(), side="left") - 1
        out = np.where(idx < 0, 1.0, self.surv[np.clip(idx, 0, None)]) if self.surv.size else np.ones(idx.shape)
        return out.reshape(t.shape)


def censoring_survival(time, event) -> CensoringSurvival:
    """Kaplan–Meier estimate of the censoring distribution (censoring is "the event", any cause censors it).

    Ties between events and censorings at the same time: events come first, so the risk set for censoring at t is
    ``n(t) − d(t)`` (patients still at risk after the events at t). ``event`` may be an int code (0 = censored) or a
    boolean "event observed".
    """
    time, event = _as_arrays(time, event)
    times, n_at_risk, d = _counts(time, (event > 0).astype(int), n_causes=1)
    surv = np.cumprod(1.0 - _safe_div(d[:, 0], n_at_risk - d[:, 1]))
    return CensoringSurvival(times=times, surv=surv)


# ----------------------------------------------------------------------------------------------------------------
# Aalen–Johansen
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity, not elementwise
class AalenJohansenResult:
    """Aalen–Johansen estimate of the CIF of one cause, a right-continuous step function.

    All arrays have shape (m,) over the distinct observed times ``times``: ``cif`` F̂_k(t), ``variance`` Aalen's
    variance of F̂_k(t), ``surv`` the all-cause Kaplan–Meier Ŝ(t) (event-free survival), ``n_at_risk``,
    ``n_events`` (events of the cause) and ``n_any`` (events of any cause) at each time.
    """

    cause: int
    times: np.ndarray
    cif: np.ndarray
    variance: np.ndarray
    surv: np.ndarray
    n_at_risk: np.ndarray
    n_events: np.ndarray
    n_any: np.ndarray

    def at(self, t) -> np.ndarray:
        """F̂_k(t) at times ``t`` (0 before the first observed time)."""
        return step_lookup(self.times, self.cif, np.asarray(t, dtype=float), 0.0)

    def variance_at(self, t) -> np.ndarray:
        """Aalen's variance of F̂_k(t) at times ``t`` (O(m) per call)."""
        return _aalen_variance_at(self, np.asarray(t, dtype=float))


def _aalen_terms(n: np.ndarray, d_any: np.ndarray, d_k: np.ndarray, s_prev: np.ndarray):
    """Per-time pieces of Aalen's variance (Pintilie 2006, eq. 4.5).

    Var F̂_k(t) = Σ_{t_j ≤ t} [F̂_k(t) − F̂_k(t_j)]² a_j + Σ_{t_j ≤ t} b_j − 2 Σ_{t_j ≤ t} [F̂_k(t) − F̂_k(t_j)] c_j, with
    a_j = d_j / ((n_j − 1)(n_j − d_j)), b_j = Ŝ(t_{j−1})² d_kj (n_j − d_kj) / (n_j² (n_j − 1)),
    c_j = Ŝ(t_{j−1}) d_kj (n_j − d_kj) / (n_j (n_j − d_j)(n_j − 1)). A term whose denominator is 0 (last patient
    at risk) is 0, as in SAS and scikit-survival.
    """
    a = _safe_div(d_any, (n - 1.0) * (n - d_any))
    b = _safe_div(s_prev**2 * d_k * (n - d_k), n**2 * (n - 1.0))
    c = _safe_div(s_prev * d_k * (n - d_k), n * (n - d_any) * (n - 1.0))
    return a, b, c


def aalen_johansen(time, event, cause: int | Cause = Cause.RELAPSE) -> AalenJohansenResult:
    """Aalen–Johansen estimate of the cumulative incidence of ``cause`` with Aalen's variance.

    F̂_k(t) = Σ_{t_j ≤ t} Ŝ(t_{j−1}) d_kj / n_j, Ŝ the all-cause Kaplan–Meier, d_kj events of cause k at t_j, n_j at
    risk just before t_j (Aalen & Johansen 1978). Exact ties, no jitter.

    Parameters
    ----------
    time : (n,) observed times (> 0). event : (n,) int codes, 0 censored, 1..K causes. cause : the cause k.

    Returns
    -------
    AalenJohansenResult with arrays over the distinct observed times.
    """
    time, event = _as_arrays(time, event)
    cause = int(cause)
    if cause < 1:
        raise ValueError("cause must be a positive event code (1 = relapse, 2 = TRM)")
    n_causes = max(int(event.max()), cause)
    times, n, d = _counts(time, event, n_causes=n_causes)
    d_any = d[:, 1:].sum(axis=1)
    d_k = d[:, cause]
    surv = np.cumprod(1.0 - _safe_div(d_any, n))
    s_prev = np.concatenate([[1.0], surv[:-1]])
    cif = np.minimum(np.cumsum(s_prev * _safe_div(d_k, n)), 1.0)  # a sum of increments can pass 1 by an ulp
    a, b, c = _aalen_terms(n, d_any, d_k, s_prev)
    # Var(t_i) = F_i² ΣA − 2 F_i ΣAF + ΣAF² + ΣB − 2 (F_i ΣC − ΣCF): the quadratic form expanded into cumulative
    # sums, so the whole curve costs O(m) instead of the O(m²) double sum.
    ca, caf, caf2 = np.cumsum(a), np.cumsum(a * cif), np.cumsum(a * cif**2)
    cb, cc, ccf = np.cumsum(b), np.cumsum(c), np.cumsum(c * cif)
    var = cif**2 * ca - 2.0 * cif * caf + caf2 + cb - 2.0 * (cif * cc - ccf)
    return AalenJohansenResult(
        cause=cause,
        times=times,
        cif=cif,
        variance=np.clip(var, 0.0, None),
        surv=surv,
        n_at_risk=n,
        n_events=d_k,
        n_any=d_any,
    )


def _aalen_variance_at(res: AalenJohansenResult, t: np.ndarray) -> np.ndarray:
    return step_lookup(res.times, res.variance, t, 0.0)


def _loglog_interval(est: np.ndarray, var: np.ndarray, conf_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise CI on the log(−log) scale: F^exp(±z·se/(F·log F)) (what SAS, cmprsk/tidycmprsk report).

    Where F is 0 (or 1) or the variance is 0 the interval collapses to the estimate.
    """
    z = stats.norm.isf((1.0 - conf_level) / 2.0)
    est = np.asarray(est, dtype=float)
    se = np.sqrt(np.clip(var, 0.0, None))
    ok = (est > 0) & (est < 1) & (se > 0)
    f = np.where(ok, est, 0.5)
    theta = np.where(ok, z * se / (f * np.log(f)), 0.0)
    # log F < 0, so exp(−θ) > 1 gives the lower limit F^{exp(−θ)} < F. For F next to 1, θ is huge: exp(−θ)
    # overflows to inf and F^inf = 0 (and F^{exp(θ)} = F^0 = 1), the correct limits of a degenerate interval.
    with np.errstate(over="ignore"):
        lower = np.where(ok, f ** np.exp(-theta), est)
        upper = np.where(ok, f ** np.exp(theta), est)
    return lower, upper


def cumulative_incidence(
    time, event, cause: int | Cause, eval_times, conf_level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aalen–Johansen CIF of ``cause`` at ``eval_times`` with its pointwise log(−log) confidence interval.

    The variance is Aalen's (1978), the interval F̂^exp(±z·se/(F̂ log F̂)), which is what SAS PROC LIFETEST
    (ERROR=AALEN, CONFTYPE=LOGLOG) and R cmprsk/tidycmprsk report.

    Parameters
    ----------
    time : (n,) observed times; event : (n,) codes (0 censored); cause : event code of interest;
    eval_times : (k,) times in the unit of ``time``; conf_level : e.g. 0.95.

    Returns
    -------
    (estimate, lower, upper), each of shape (k,).
    """
    if not 0.0 < conf_level < 1.0:
        raise ValueError("conf_level must be in (0, 1)")
    res = aalen_johansen(time, event, cause)
    t = np.atleast_1d(np.asarray(eval_times, dtype=float))
    est = res.at(t)
    var = res.variance_at(t)
    lower, upper = _loglog_interval(est, var, conf_level)
    return est, lower, upper


def restricted_mean_cif(time, event, tau: float) -> dict[str, float]:
    """Restricted mean time lost to each cause and restricted mean event-free time up to ``tau``.

    For cause k, ∫_0^τ F̂_k(t) dt is the expected time (within [0, τ]) spent *after* a cause-k event, and
    ∫_0^τ Ŝ(t) dt the restricted mean event-free time; the three add up to τ (Andersen 2013, Stat Med
    32:5381; this is what R ``survival`` prints as the restricted mean for the states of a multi-state ``survfit``).

    Returns
    -------
    dict ``{"event_free": ..., 1: ..., 2: ..., ...}`` in the unit of ``time``.
    """
    time, event = _as_arrays(time, event)
    n_causes = int(event.max())
    out: dict = {}
    grid_res = [aalen_johansen(time, event, k) for k in range(1, max(n_causes, 1) + 1)]
    times = grid_res[0].times
    # integrate right-continuous steps over [0, tau]: value on [t_j, t_{j+1}) times its length
    knots = np.concatenate([[0.0], times[times < tau], [tau]])
    widths = np.diff(knots)
    left_points = knots[:-1]
    s = step_lookup(times, grid_res[0].surv, left_points, 1.0)
    out["event_free"] = float(np.sum(s * widths))
    for k, res in enumerate(grid_res, start=1):
        out[k] = float(np.sum(res.at(left_points) * widths))
    return out


# ----------------------------------------------------------------------------------------------------------------
# The null model
# ----------------------------------------------------------------------------------------------------------------
class AalenJohansen(CompetingRisksEstimator):
    """The null competing-risks model: Aalen–Johansen CIFs of relapse and TRM, the same for every patient.

    It ignores ``X`` (it is the reference "no covariates" model of the index of prediction accuracy, IPA) and gives
    pointwise 95% log(−log) intervals with Aalen's variance.

    Parameters
    ----------
    conf_level : level of the pointwise intervals (default 0.95).

    Attributes
    ----------
    time_grid_ : (m,) distinct observed times in training. cif_ : (2, m) F̂_1 and F̂_2 on that grid.
    variance_ : (2, m) Aalen's variances. event_free_ : (m,) all-cause Kaplan–Meier; any_variance_ : (m,) Aalen's
    variance of the all-cause incidence 1 − event_free_. n_features_in_ : number of columns of X seen in fit.
    """

    supports_intervals = True

    def __init__(self, conf_level: float = 0.95):
        self.conf_level = conf_level

    def fit(self, X, y):
        """Estimate the two CIFs from ``y`` (DataFrame ``event``, ``time``); ``X`` is only checked for its length."""
        if not 0.0 < self.conf_level < 1.0:
            raise ValueError("conf_level must be in (0, 1)")
        event, time = check_competing_risks_target(y)
        if X is not None:
            X_arr = np.asarray(X)
            if X_arr.ndim != 2 or X_arr.shape[0] != time.shape[0]:
                raise ValueError("X must be 2-dimensional with one row per patient in y")
            self._set_features(X)
        r1 = aalen_johansen(time, event, Cause.RELAPSE)
        r2 = aalen_johansen(time, event, Cause.TRM)
        self.time_grid_ = r1.times
        self.cif_ = np.vstack([r1.cif, r2.cif])
        self.variance_ = np.vstack([r1.variance, r2.variance])
        r_any = aalen_johansen(time, (event > 0).astype(int), 1)
        self.event_free_ = r1.surv
        self.any_variance_ = r_any.variance
        return self

    def predict_cumulative_incidence(self, X, times, return_interval: bool = False):
        """CIFs ``(n_samples, 3, n_times)`` (event-free, relapse, TRM), identical for every row of ``X``.

        ``times`` in the unit of ``y['time']``. With ``return_interval=True`` returns ``(estimate, lower, upper)``
        (pointwise, log(−log) scale, Aalen's variance); the event-free interval is 1 − the interval of the
        all-cause incidence F_1 + F_2 = 1 − Ŝ (the same estimator with every cause pooled).
        """
        check_is_fitted(self, "cif_")
        if X is None:
            n = 1
        else:
            n = self._check_X(X).shape[0]
            if hasattr(self, "n_features_in_") and np.asarray(X).shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {np.asarray(X).shape[1]} features; the model was fitted with {self.n_features_in_}"
                )
        t = np.atleast_1d(np.asarray(times, dtype=float))
        f = step_lookup(self.time_grid_, self.cif_, t, 0.0)  # (2, k)
        efs = np.clip(1.0 - f.sum(axis=0), 0.0, 1.0)
        est = np.empty((n, 3, t.shape[0]))
        est[:, 0] = efs
        est[:, 1] = f[0]
        est[:, 2] = f[1]
        if not return_interval:
            return est
        v = step_lookup(self.time_grid_, self.variance_, t, 0.0)
        lo1, up1 = _loglog_interval(f[0], v[0], self.conf_level)
        lo2, up2 = _loglog_interval(f[1], v[1], self.conf_level)
        v_any = step_lookup(self.time_grid_, self.any_variance_, t, 0.0)
        lo_any, up_any = _loglog_interval(1.0 - efs, v_any, self.conf_level)
        lower = np.empty_like(est)
        upper = np.empty_like(est)
        lower[:, 0], upper[:, 0] = 1.0 - up_any, 1.0 - lo_any
        lower[:, 1], upper[:, 1] = lo1, up1
        lower[:, 2], upper[:, 2] = lo2, up2
        return est, lower, upper


# ----------------------------------------------------------------------------------------------------------------
# Gray's K-sample test
# ----------------------------------------------------------------------------------------------------------------
def gray_test(time, event, group, cause: int | Cause = Cause.RELAPSE, rho: float = 0.0) -> tuple[float, int, float]:
    """Gray's (1988) K-sample test of equal cumulative incidence of ``cause`` across groups.

    The score for group k compares its subdistribution hazard with the pooled one on the "subdistribution risk
    set" R_k(t) = Y_k(t) (1 − F̂_k(t−)) / Ŝ_k(t−) (Y_k at risk, F̂_k the group's Aalen–Johansen CIF of ``cause``,
    Ŝ_k its all-cause Kaplan–Meier):

        z_k = Σ_t L(t) [ d_k(t) − d(t) R_k(t) / Σ_r R_r(t) ],   L(t) = (1 − F̄(t−))^ρ.

    Its covariance comes from the martingale representation of z (Gray 1988, §2): z_k ≈ Σ_r ∫ a_kr dM_1r +
    Σ_r ∫ b_kr dM_2r, where M_1r, M_2r are the cause-specific counting-process martingales of group r and the
    second parts of a_kr and b_kr carry the uncertainty of F̂_r and Ŝ_r inside R_r, through
    C_kr(t) = Σ_{s ≤ t} L u_r (δ_kr − u_k/U) dF̄ / (1 − F̄(s−)), u_r = Y_r / Ŝ_r(t−), U = Σ_r u_r, and the pooled
    null estimate of the CIF, dF̄(t) = d(t) / U(t):

        a_kr(t) = L u_r (δ_kr − u_k/U) − [(1 − F̄(t)) / Ŝ_r(t) − 1] (C_kr(τ) − C_kr(t)),
        b_kr(t) = (1 − F̄(t)) / Ŝ_r(t) · (C_kr(τ) − C_kr(t)),
        σ_kl = Σ_t Σ_r a_kr a_lr Ŝ_r(t−) dF̄ / Y_r · c1 + Σ_t Σ_r b_kr b_lr Ŝ_r(t−)² d_2r / Y_r² · c2,

    with the usual finite-sample corrections for tied events c1 = 1 − (d − 1)/(U Ŝ_r(t−) − 1) and
    c2 = 1 − (d_2r − 1)/(Y_r − 1). The statistic z'σ⁻¹z over the first K − 1 groups is χ² with K − 1 df.
    The discrete-time plug-ins (right limits Ŝ_r(t) and F̄(t) in a and b, the pooled u_k/U in place of R_k/R in the
    coefficients, and the tie corrections) are the choices with which the test reproduces the values published for
    R cmprsk and SAS on KMsurv::bmt to 1e-7; other asymptotically equivalent plug-ins (e.g. group CIFs instead of
    the pooled F̄) move the statistic in the second decimal.

    Parameters
    ----------
    time : (n,) observed times; event : (n,) codes (0 censored; ``cause`` = of interest; any other > 0 competing);
    group : (n,) group labels (at least two distinct); cause : the event of interest;
    rho : ρ ≥ 0 of the weight (1 − F̄(t−))^ρ; 0 (default, as cmprsk and SAS) weighs all times equally. Only ρ = 0
        is checked against published values.

    Returns
    -------
    (statistic, df, p_value)
    """
    time, event = _as_arrays(time, event)
    group = np.asarray(group).ravel()
    if group.shape != time.shape:
        raise ValueError("group must have one label per patient")
    labels, g_idx = np.unique(group, return_inverse=True)
    n_groups = labels.shape[0]
    if n_groups < 2:
        raise ValueError("Gray's test needs at least two groups")
    if rho < 0:
        raise ValueError("rho must be >= 0")
    cause = int(cause)
    times, t_idx = np.unique(time, return_inverse=True)
    m = times.shape[0]
    code = np.where(event == cause, 1, np.where(event > 0, 2, 0))
    counts = np.zeros((3, n_groups, m))
    np.add.at(counts, (code, g_idx, t_idx), 1.0)
    d1, d2 = counts[1], counts[2]  # (K, m) events of interest / competing events per group and time
    at_risk = np.cumsum(counts.sum(axis=0)[:, ::-1], axis=1)[:, ::-1]
    surv = np.cumprod(1.0 - _safe_div(d1 + d2, at_risk), axis=1)
    surv_m = np.concatenate([np.ones((n_groups, 1)), surv[:, :-1]], axis=1)
    cif = np.cumsum(surv_m * _safe_div(d1, at_risk), axis=1)
    cif_m = np.concatenate([np.zeros((n_groups, 1)), cif[:, :-1]], axis=1)
    d1_all = d1.sum(axis=0)

    # score
    r_sub = _safe_div(at_risk * (1.0 - cif_m), surv_m)  # subdistribution risk sets R_k(t)
    u = _safe_div(at_risk, surv_m)
    u_all = u.sum(axis=0)
    df_bar = _safe_div(d1_all, u_all)  # pooled CIF increment under H0
    f_bar = np.cumsum(df_bar)
    f_bar_m = f_bar - df_bar
    weight = (1.0 - f_bar_m) ** rho
    score = np.sum(weight * (d1 - d1_all * _safe_div(r_sub, r_sub.sum(axis=0))), axis=1)

    # covariance; arrays indexed [k (score component), r (group), t]
    a0 = weight * u[None, :, :] * (np.eye(n_groups)[:, :, None] - _safe_div(u, u_all)[:, None, :])
    c_cum = np.cumsum(a0 * _safe_div(df_bar, 1.0 - f_bar_m), axis=2)
    c_after = c_cum[:, :, -1:] - c_cum  # C(τ) − C(t)
    z1 = np.where(surv > 0, 1.0 - _safe_div(1.0 - f_bar, surv), 1.0)
    a = a0 + z1[None] * c_after
    c1 = np.where(d1_all > 1, 1.0 - _safe_div(d1_all - 1.0, u_all * surv_m - 1.0), 1.0)
    w1 = c1 * _safe_div(surv_m * d1_all, u_all * at_risk)
    b = _safe_div(1.0 - f_bar, surv)[None] * c_after
    c2 = np.where(d2 > 1, 1.0 - _safe_div(d2 - 1.0, at_risk - 1.0), 1.0)
    w2 = c2 * _safe_div(surv_m**2 * d2, at_risk**2)
    sigma = np.einsum("krt,lrt,rt->kl", a, a, w1) + np.einsum("krt,lrt,rt->kl", b, b, w2)

    z = score[:-1]
    v = sigma[:-1, :-1]
    statistic = float(z @ np.linalg.lstsq(v, z, rcond=None)[0])
    dof = n_groups - 1
    return statistic, dof, float(stats.chi2.sf(statistic, dof))
