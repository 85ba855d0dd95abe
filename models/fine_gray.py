"""Fine–Gray subdistribution-hazard regression for two competing causes (Fine & Gray 1999, JASA 94:496).

For cause k the subdistribution hazard λ̃_k(t | x) = −d log(1 − F_k(t | x)) / dt = λ̃_k0(t) exp(γ_kᵀx) models the
cumulative incidence directly: F_k(t | x) = 1 − exp(−Λ̃_k0(t) exp(γ_kᵀx)).

Estimation (Fine & Gray 1999, §3). The risk set at time t holds everyone with T_j ≥ t *plus* those who had the
other cause before t, the latter weighted by w_j(t) = Ĝ(t−) / Ĝ(T_j−), Ĝ the Kaplan–Meier estimate of the censoring
distribution (:func:`censoring_survival`); γ_k maximises the weighted Cox partial likelihood over these risk sets and
the baseline is the weighted Breslow estimator ΔΛ̃_k0(t) = dN_k(t) / Σ_j w_j(t) exp(γ_kᵀx_j).

The textbook route (Geskus 2011, Biometrics 67:39; R's ``finegray``) materialises the weights as a counting-process
expansion: each patient with the other cause becomes one row per step of Ĝ after T_j, ~n × (censoring times) rows
(8.6 GB at n = 10,000). Because w_j(t) factorises into Ĝ(t−) times 1/Ĝ(T_j−), the risk-set sums are instead a
suffix sum over patients still event-free plus Ĝ(t−) times a prefix sum over re-entered patients, both read off
one time-ordered pass — the forward–backward scan of Kawaguchi, Shen, Suchard & Li (2020, Biometrics 77:1381; R
package ``fastcmprsk``). :func:`fit_fine_gray_cause` does this for score, information and score residuals:
O(n p²) time and O(n p) memory per Newton step, the same estimates as the expansion to round-off.

Standard errors: ``coef_se_`` is the robust sandwich SE clustered by patient (Lin & Wei 1989, the form of
``coxph(..., cluster = id)`` on ``finegray`` data); it treats Ĝ as known, whereas ``cmprsk::crr`` adds a term for
its estimation (usually a small difference). ``coef_se_model_`` is the model-based SE of the weighted fit (what R's
``finegray`` + ``coxph`` prints as ``se(coef)``).

Coherence. The two causes are fitted separately and nothing ties them, so F_1 + F_2 can exceed 1 for some x (Austin
et al. 2021, Stat Med 40:4035). It is detected and reported — ``incoherent_fraction_`` (share of training
patients affected) and
:meth:`FineGray.incoherent_patients` (which patients of a prediction) — and the output is kept coherent: on
the joint grid of event times of both causes, at the first time the sum would exceed 1,
that time's increments of both CIFs are scaled proportionally so the sum is exactly 1, and both CIFs stay constant
afterwards (EFS = 0). This keeps both CIFs non-decreasing, leaves every patient with F_1 + F_2 ≤ 1 untouched, and does
not depend on which times are requested.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

from nbrisk.core import CAUSES, Cause
from nbrisk.models._base import (
    CompetingRisksEstimator,
    step_lookup,
)
from nbrisk.models._cox_kernels import LP_CLIP
from nbrisk.models._coxph import TIES, CoxPHResult
from nbrisk.models.nonparametric import censoring_survival


class _RiskSets:
    """Everything of one cause's Fine–Gray risk sets that does not depend on γ (built once per fit, O(n + m)).

    ``ek`` (m,) distinct event times of the cause; per patient ``K`` = number of them ≤ T_i (the patient is in the
    ordinary risk set at t_l for l < K) and ``inv_g`` = 1/Ĝ(T_i−) for a patient with the other cause before the last
    event time of the cause (0 otherwise; such a patient re-enters at t_l for l ≥ K with weight ĝ_l·inv_g);
    ``g`` (m,) ĝ_l = Ĝ(t_l−). Patients are kept in time order (``order``) so that the sums over "K_i > l" and
    "K_j ≤ l" are suffix and prefix sums read at ``pos`` (O(n) per Newton step, no per-time loop).
    """

    def __init__(self, time: np.ndarray, event: np.ndarray, cause: int, G, ties: str):
        ek = np.unique(time[event == cause])
        self.ek, m = ek, len(ek)
        t_max = ek[-1] if m else 0.0
        self.order = np.argsort(time, kind="stable")
        self.K = np.searchsorted(ek, time, side="right")
        K_sorted = self.K[self.order]
        # Σ_{i: K_i > l} = suffix sum from the first sorted position with K > l; Σ_{j: K_j ≤ l} = prefix up to it
        self.pos = np.searchsorted(K_sorted, np.arange(m), side="right")
        # Ĝ(t_l−): Ĝ after its jumps strictly before t_l (the weight numerator of the counting-process form)
        drops = np.flatnonzero(np.diff(np.concatenate([[1.0], G.surv])) < 0)
        cj, gv = G.times[drops], G.surv[drops]
        nj = np.searchsorted(cj, ek, side="left")
        self.g = np.where(nj > 0, gv[np.clip(nj - 1, 0, None)], 1.0) if gv.size else np.ones(m)
        other = (event != cause) & (event != Cause.CENSORED) & (time < t_max)
        g_minus = G.left(time)
        self.inv_g = np.divide(1.0, g_minus, out=np.zeros(len(time)), where=other & (g_minus > 0))
        self.inv_g_sorted = self.inv_g[self.order]
        # events of the cause, time-ordered, and the denominator rows (t, f, m) of the engine's tie handling
        self.ev_idx = self.order[event[self.order] == cause]
        self.ev_time_idx = self.K[self.ev_idx] - 1
        self.d = np.bincount(self.ev_time_idx, minlength=m).astype(float)
        self.ev_starts = np.concatenate([[0], np.cumsum(self.d.astype(int))[:-1]]).astype(int)
        if ties == "efron":
            dd = self.d.astype(int)
            self.den_t = np.repeat(np.arange(m), dd)
            offs = np.arange(len(self.den_t)) - np.repeat(np.cumsum(dd) - dd, dd)
            self.den_f = offs / np.repeat(self.d, dd)
            self.den_m = np.ones(len(self.den_t))  # dw / d with unit weights
        else:
            self.den_t, self.den_f, self.den_m = np.arange(m), np.zeros(m), self.d.copy()
        self.den_starts = np.searchsorted(self.den_t, np.arange(m))
        # total weight of each re-entering patient over the rows of the counting-process form, Σ_q ĝ_q·inv_g over the
        # blocks q of event times after T_j that share ĝ (only for the covariate centre; see _fit_cause)
        new = np.concatenate([[True], nj[1:] != nj[:-1]]) if m else np.zeros(0, dtype=bool)
        block_start = np.maximum.accumulate(np.where(new, np.arange(m), 0)) if m else np.zeros(0, dtype=int)
        suffix = _suffix(np.where(new, self.g, 0.0))
        idx = np.flatnonzero(self.inv_g > 0)
        self.extra_weight = np.zeros(len(time))
        self.extra_weight[idx] = self.inv_g[idx] * suffix[block_start[self.K[idx]]]

    def risk_sums(self, V: np.ndarray) -> np.ndarray:
        """(m, q) Σ_i ω_i(t_l) V_i for per-patient values V (n, q), ω the Fine–Gray risk-set weight:
        1 while T_i ≥ t_l, ĝ_l / Ĝ(T_i−) after an other-cause event at T_i < t_l."""
        Vs = V[self.order]
        ordinary = _suffix(Vs)[self.pos]
        reentered = np.concatenate([np.zeros((1, V.shape[1])), np.cumsum(Vs * self.inv_g_sorted[:, None], axis=0)])
        return ordinary + self.g[:, None] * reentered[self.pos]

    def per_patient(self, A: np.ndarray) -> np.ndarray:
        """(n, q) Σ_l ω_i(t_l) A_l for per-time values A (m, q): a prefix sum over l < K_i plus inv_g_i times a
        suffix sum of ĝ_l A_l over l ≥ K_i."""
        prefix = np.concatenate([np.zeros((1, A.shape[1])), np.cumsum(A, axis=0)])
        return prefix[self.K] + self.inv_g[:, None] * _suffix(self.g[:, None] * A)[self.K]


def _suffix(a: np.ndarray) -> np.ndarray:
    """Suffix sums with a trailing zero: out[k] = Σ_{j ≥ k} a[j] (first axis), len(a) + 1 entries."""
    return np.concatenate([np.cumsum(a[::-1], axis=0)[::-1], np.zeros((1, *a.shape[1:]))])


def _terms(rs: _RiskSets, X: np.ndarray, eta: np.ndarray, want_hess: bool):
    """Log partial likelihood, score, information and per-time quantities of one cause at linear predictor eta
    (already shifted so that max(eta) = 0). The same formulas as :mod:`nbrisk.models._coxph`, with the risk-set sums
    of the counting-process rows replaced by :meth:`_RiskSets.risk_sums` / :meth:`_RiskSets.per_patient`."""
    n, p = X.shape
    m = len(rs.ek)
    r = np.exp(eta)
    S = rs.risk_sums(np.column_stack([r, r[:, None] * X]))
    S0, S1 = S[:, 0], S[:, 1:]
    D0 = np.bincount(rs.ev_time_idx, weights=r[rs.ev_idx], minlength=m)
    D1 = np.add.reduceat(r[rs.ev_idx, None] * X[rs.ev_idx], rs.ev_starts, axis=0) if m else np.zeros((0, p))
    t, f, mm = rs.den_t, rs.den_f, rs.den_m
    den = np.maximum(S0[t] - f * D0[t], 1e-300)
    a = (S1[t] - f[:, None] * D1[t]) / den[:, None]
    ll = float(np.sum(eta[rs.ev_idx]) - np.sum(mm * np.log(den)))
    h = np.bincount(t, weights=mm / den, minlength=m)  # ΔΛ̃0(t_l) (at the shifted eta)
    g = np.bincount(t, weights=mm * f / den, minlength=m)  # Efron share of the rows dying at t_l
    expo = rs.per_patient(h[:, None])[:, 0]  # Σ_l ω_i(t_l) h_l
    dying = np.zeros(n)
    dying[rs.ev_idx] = g[rs.ev_time_idx]
    c = r * (expo - dying)
    grad = np.sum(X[rs.ev_idx], axis=0) - c @ X
    hess = None
    if want_hess:
        sq = np.sqrt(mm)[:, None] * a
        hess = (X * c[:, None]).T @ X - sq.T @ sq
    return ll, grad, hess, dict(h=h, g=g, a=a, den=den, expo=expo, r=r)


def _score_residuals(rs: _RiskSets, X: np.ndarray, q: dict) -> np.ndarray:
    """(n, p) per-patient score residuals: the sum over a patient's counting-process rows of w·U (Lin & Wei 1989),
    so that the sandwich clustered by patient is V (Σ_i U_i U_iᵀ) V."""
    f, mm, den, a = rs.den_f, rs.den_m, q["den"], q["a"]
    Q = np.add.reduceat((mm / den)[:, None] * a, rs.den_starts, axis=0)
    Qg = np.add.reduceat((mm * f / den)[:, None] * a, rs.den_starts, axis=0)
    abar = np.add.reduceat(mm[:, None] * a, rs.den_starts, axis=0) / np.maximum(rs.d, 1e-300)[:, None]
    r = q["r"]
    U = -r[:, None] * (X * q["expo"][:, None] - rs.per_patient(Q))
    ei, ti = rs.ev_idx, rs.ev_time_idx
    U[ei] += X[ei] - abar[ti] + r[ei, None] * (X[ei] * q["g"][ti][:, None] - Qg[ti])
    return U


def fit_fine_gray_cause(
    X,
    time,
    event,
    cause: int,
    *,
    censoring=None,
    ties: str = "breslow",
    alpha: float = 0.0,
    max_iter: int = 100,
    tol: float = 1e-9,
) -> CoxPHResult:
    """Fit the subdistribution-hazard model of ``cause`` by Newton–Raphson on the weighted partial likelihood,
    without building the counting-process expansion (Kawaguchi et al. 2020, Biometrics 77:1381).

    The risk set at a cause time t holds patients with T ≥ t (weight 1) and patients with the other cause at
    T_j < t, weighted Ĝ(t−)/Ĝ(T_j−). The weight factorises into a function of t and one of j, so
    S0(t) = Σ_{T_i ≥ t} r_i + Ĝ(t−) Σ_{other, T_j < t} r_j / Ĝ(T_j−) (and S1 likewise) is a suffix sum plus a prefix
    sum over patients sorted by time (the forward–backward scan), and the per-patient sums of the information and
    of the score residuals are a prefix plus a weighted suffix sum over event times. Each Newton step costs
    O(n p²) time and O(n p) memory, against O(N p²) for the N ≫ n rows of the expansion.

    Same criterion, convergence rule, step halving and outputs as :func:`nbrisk.models._coxph.fit_coxph` on that
    expansion (``cluster`` = patient), including the covariate centre: the weighted mean of x over the expansion's
    rows. ``score_residuals`` are per patient (the sum over a patient's rows of w·U).
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    if alpha < 0:
        raise ValueError("alpha must be >= 0")
    X = np.asarray(X, dtype=float)
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(int)
    n, p = X.shape
    G = censoring_survival(time, event) if censoring is None else censoring
    rs = _RiskSets(time, event, cause, G, ties)
    w_total = 1.0 + rs.extra_weight
    center = (w_total @ X) / w_total.sum() if n else np.zeros(p)
    Xc = X - center
    n_events = float(len(rs.ev_idx))

    def evaluate(beta, want_hess=True):
        eta = Xc @ beta
        if len(rs.ek) == 0:
            ll, grad, hess, q = 0.0, np.zeros(p), np.zeros((p, p)), dict(shift=0.0, h=np.zeros(0))
        else:
            shift = float(np.max(eta))
            ll, grad, hess, q = _terms(rs, Xc, eta - shift, want_hess)
            ll += shift * n_events - shift * float(np.sum(rs.den_m))
            q["shift"] = shift
        ll -= 0.5 * alpha * float(beta @ beta)
        grad = grad - alpha * beta
        if want_hess:
            hess = hess + alpha * np.eye(p)
        return ll, grad, hess, q

    with _one_blas_thread():
        beta, ll, ll_null, grad, info, q, it, converged = _newton(evaluate, p, max_iter, tol)
        try:
            var_model = np.linalg.inv(info)
        except np.linalg.LinAlgError:
            var_model = np.linalg.pinv(info)
        next_step = np.abs(var_model @ grad) if p else np.zeros(0)
        infinite = (next_step > 1e-5) & (next_step > np.sqrt(tol) * np.abs(beta) * 1e-2)
        if len(rs.ek) and p:
            U = _score_residuals(rs, Xc, q)
            var_robust = var_model @ (U.T @ U) @ var_model
        else:
            U, var_robust = np.zeros((n, p)), var_model
    return CoxPHResult(
        coef=beta,
        center=center,
        information=info,
        var_model=var_model,
        var_robust=var_robust,
        score_residuals=U,
        loglik=ll,
        loglik_null=ll_null,
        baseline={None: (rs.ek.copy(), q["h"] * np.exp(-q["shift"]))},
        n_iter=it,
        converged=converged,
        possibly_infinite=infinite,
    )


def _newton(evaluate, p: int, max_iter: int, tol: float):
    """Newton–Raphson with step halving, the rules of :func:`nbrisk.models._coxph.fit_coxph` (converged when the
    log-likelihood is flat to ``tol`` relative; a non-finite or singular step keeps the last finite β)."""
    beta = np.zeros(p)
    ll, grad, info, q = evaluate(beta)
    ll_null = ll
    converged = p == 0
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - it is reported
        if p == 0 or not (np.all(np.isfinite(grad)) and np.all(np.isfinite(info))):
            break
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            step = None
        if step is None or not np.all(np.isfinite(step)):
            step = np.linalg.lstsq(info, grad, rcond=None)[0]
        new = evaluate(beta + step)
        halvings = 0
        while (not np.isfinite(new[0]) or new[0] < ll - 1e-12 * abs(ll)) and halvings < 30:
            step = step / 2.0
            new = evaluate(beta + step)
            halvings += 1
        if not np.isfinite(new[0]) or not np.all(np.isfinite(beta + step)):
            break
        done = abs(new[0] - ll) <= tol * max(1.0, abs(new[0]))
        beta = beta + step
        ll, grad, info, q = new
        if done:
            converged = True
            break
    if not converged:
        warnings.warn(
            f"Fine–Gray partial likelihood did not converge in {max_iter} iterations (max |beta| = "
            f"{np.max(np.abs(beta)):.3g}); a covariate may separate the events — consider alpha > 0",
            ConvergenceWarning,
            stacklevel=4,
        )
    return beta, ll, ll_null, grad, info, q, it, converged


_CONTROLLER = None


@contextmanager
def _one_blas_thread():
    """The p × p products are small: one BLAS thread (see :func:`nbrisk.models._coxph.fit_coxph`)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=1, user_api="blas"):
        yield


def coherent_cifs(f1: np.ndarray, f2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cap F1 + F2 at 1 along the last (time) axis: at the first time the sum exceeds 1 the increments of both are
    scaled so the sum is 1; afterwards both stay constant. Returns (f1, f2, incoherent mask per row)."""
    total = f1 + f2
    over = total > 1.0
    bad = over.any(axis=-1)
    if not bad.any():
        return f1, f2, bad
    f1, f2 = f1.copy(), f2.copy()
    rows = np.flatnonzero(bad)
    j = np.argmax(over[rows], axis=-1)  # first time over 1
    prev1 = np.where(j > 0, f1[rows, np.maximum(j - 1, 0)], 0.0)
    prev2 = np.where(j > 0, f2[rows, np.maximum(j - 1, 0)], 0.0)
    d1, d2 = f1[rows, j] - prev1, f2[rows, j] - prev2
    room = 1.0 - prev1 - prev2
    scale = np.divide(room, d1 + d2, out=np.zeros_like(room), where=(d1 + d2) > 0)
    new1, new2 = prev1 + d1 * scale, prev2 + d2 * scale
    cols = np.arange(f1.shape[-1])
    after = cols[None, :] >= j[:, None]
    f1[rows] = np.where(after, new1[:, None], f1[rows])
    f2[rows] = np.where(after, new2[:, None], f2[rows])
    return f1, f2, bad


class FineGray(CompetingRisksEstimator):
    """Fine–Gray subdistribution-hazard models for relapse (cause 1) and TRM (cause 2).

    Parameters
    ----------
    alpha : ridge penalty ½·alpha·‖γ_k‖² on each cause's weighted partial log-likelihood.
    ties : "breslow" (default; as ``cmprsk::crr``) or "efron" (as R's ``finegray`` + ``coxph``).

    Attributes
    ----------
    coef_ : (2, p) subdistribution log hazard ratios γ, cause 1 row first.
    coef_se_ : (2, p) robust sandwich SEs clustered by patient (Ĝ treated as known; see the module docstring).
    coef_se_model_ : (2, p) model-based SEs of the weighted fit.
    center_ : (2, p) covariate centre of each cause's baseline.
    event_times_ : (m,) distinct event times of either cause (the joint grid); time_grid_ alias.
    cumulative_baseline_ : (2, m) Λ̃_k0 on ``event_times_`` at ``center_``.
    coef_infinite_ : (2, p) bool, coefficients whose MLE looks infinite (see CauseSpecificCox).
    incoherent_fraction_ : share of training patients whose predicted F1 + F2 exceeds 1 at some time.
    """

    supports_intervals = False

    def __init__(self, alpha: float = 0.0, ties: str = "breslow"):
        self.alpha = alpha
        self.ties = ties

    def fit(self, X, y):
        """Fit one subdistribution-hazard model per cause (:func:`fit_fine_gray_cause`, linear in n).

        X : (n, p) numeric covariates. y : DataFrame with ``event`` (0/1/2) and ``time`` (> 0).
        """
        if self.ties not in TIES:
            raise ValueError(f"ties must be one of {TIES}, got {self.ties!r}")
        Xa, event, time = self._fit_data(X, y)
        p = Xa.shape[1]
        G = censoring_survival(time, event)
        self.event_times_ = np.unique(time[event != Cause.CENSORED])
        self.time_grid_ = self.event_times_
        self.coef_ = np.zeros((2, p))
        self.coef_se_ = np.zeros((2, p))
        self.coef_se_model_ = np.zeros((2, p))
        self.center_ = np.zeros((2, p))
        self.cumulative_baseline_ = np.zeros((2, len(self.event_times_)))
        self.converged_ = True
        self.coef_infinite_ = np.zeros((2, p), dtype=bool)
        for k, cause in enumerate(CAUSES):
            res = fit_fine_gray_cause(Xa, time, event, int(cause), censoring=G, ties=self.ties, alpha=self.alpha)
            self.converged_ &= res.converged
            self.coef_infinite_[k] = res.possibly_infinite
            self.coef_[k], self.center_[k] = res.coef, res.center
            self.coef_se_[k], self.coef_se_model_[k] = res.se_robust, res.se_model
            t_k, dh = res.baseline[None]
            inc = np.zeros(len(self.event_times_))
            inc[np.searchsorted(self.event_times_, t_k)] = dh
            self.cumulative_baseline_[k] = np.cumsum(inc)
        # F1 + F2 only grows with time: a patient is incoherent iff the sum exceeds 1 at the last event time (O(n),
        # not the (n, m) grid)
        if len(self.event_times_) and len(Xa):
            risk = np.exp(np.clip(self._lp(Xa), -LP_CLIP, LP_CLIP))
            last = 1.0 - np.exp(-self.cumulative_baseline_[:, -1][:, None] * risk)
            self.incoherent_fraction_ = float(np.mean(last[0] + last[1] > 1.0))
        else:
            self.incoherent_fraction_ = 0.0
        return self

    def _raw_cifs(self, Xa, keep: int):
        """Coherent (F1, F2) on the first ``keep`` grid times, (n, keep) each, and the per-patient capped mask."""
        lp = self._lp(Xa)
        cum = self.cumulative_baseline_[:, None, :keep] * np.exp(np.clip(lp, -LP_CLIP, LP_CLIP))[:, :, None]
        f = 1.0 - np.exp(-cum)
        f1, f2, bad = coherent_cifs(f[0], f[1])
        return (f1, f2), bad

    def predict_cumulative_incidence(self, X, times, return_interval: bool = False):
        """(n, 3, k): event-free, relapse and TRM CIFs at ``times`` (coherent; see the module docstring).

        Patients whose F1 + F2 had to be capped are reported by :meth:`incoherent_patients` (and their share in
        the training data by ``incoherent_fraction_``); no warning, so batch scoring stays quiet.
        Intervals are not available in closed form here: wrap in :class:`~nbrisk.models.intervals.BootstrapIntervals`.
        """
        if return_interval:
            raise NotImplementedError("FineGray has no closed-form intervals; wrap it in BootstrapIntervals")
        check_is_fitted(self, "cumulative_baseline_")
        Xa = self._check_X(X)
        times = np.atleast_1d(np.asarray(times, dtype=float))
        keep = int(np.searchsorted(self.event_times_, times.max(), side="right")) if len(times) else 0
        grid = self.event_times_[:keep]
        out = np.empty((Xa.shape[0], 3, len(times)))
        if keep == 0:
            out[:, 0], out[:, 1:] = 1.0, 0.0
            return out
        # F1 + F2 only grows with time: a patient whose uncapped sum is ≤ 1 at the last event time ≤ max(times) is
        # coherent throughout, and only the requested times need evaluating (O(k) instead of O(m) per patient); the
        # few others take the full-grid capping of coherent_cifs
        risk = np.exp(np.clip(self._lp(Xa), -LP_CLIP, LP_CLIP))  # (2, n)
        cum = step_lookup(grid, self.cumulative_baseline_[:, :keep], times, 0.0)  # (2, k)
        f = -np.expm1(-cum[:, None, :] * risk[:, :, None])  # (2, n, k)
        last = 1.0 - np.exp(-self.cumulative_baseline_[:, keep - 1][:, None] * risk)  # (2, n) at grid[keep − 1]
        bad = last[0] + last[1] > 1.0
        out[:, 1], out[:, 2] = f[0], f[1]
        if bad.any():
            (f1, f2), _ = self._raw_cifs(Xa[bad], keep)
            out[bad, 1] = step_lookup(grid, f1, times, 0.0)
            out[bad, 2] = step_lookup(grid, f2, times, 0.0)
        out[:, 0] = np.clip(1.0 - out[:, 1] - out[:, 2], 0.0, 1.0)
        return out

    def incoherent_patients(self, X, times) -> np.ndarray:
        """(n,) bool: whose uncapped F1 + F2 exceeds 1 at some event time ≤ max(times) (capped in predictions)."""
        check_is_fitted(self, "cumulative_baseline_")
        Xa = self._check_X(X)
        keep = int(np.searchsorted(self.event_times_, np.max(times), side="right"))
        if keep == 0:
            return np.zeros(Xa.shape[0], dtype=bool)
        return self._raw_cifs(Xa, keep)[1]

    @classmethod
    def replicate_stack(cls, members: list):
        """All members evaluated at once in closed form (:mod:`nbrisk.models._fine_gray_kernels`) when every one is
        a Fine–Gray fit; else ``None`` (the generic path)."""
        if not all(isinstance(m, FineGray) for m in members):
            return None
        from nbrisk.models._fine_gray_kernels import FineGrayReplicateStack

        return FineGrayReplicateStack(members)

    def predict_linear_predictor(self, X) -> np.ndarray:
        """(2, n) γ_kᵀ(x − centre) per cause."""
        check_is_fitted(self, "coef_")
        return self._lp(self._check_X(X))

    def _lp(self, Xa: np.ndarray) -> np.ndarray:
        return np.einsum("kp,nkp->kn", self.coef_, Xa[:, None, :] - self.center_[None])

    def contributions(self, X) -> np.ndarray:
        """(n, 2, p) per-feature log subdistribution-HR contributions γ_kj (x_j − centre_kj)."""
        check_is_fitted(self, "coef_")
        Xa = self._check_X(X)
        return (Xa[:, None, :] - self.center_[None]) * self.coef_[None]
