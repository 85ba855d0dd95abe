"""Cause-specific Cox regression for two competing causes (relapse vs TRM), combined into cumulative incidences.

Model (Prentice et al. 1978; Putter, Fiocco & Geskus 2007, Stat Med 26:2389): each cause k has its own hazard
λ_k(t | x) = λ_k0(t) exp(β_kᵀx), fitted by a Cox model in which the other cause counts as censoring. The baseline is
the Breslow estimator ΔΛ_k0(s) = d_k(s) / Σ_{j ∈ R(s)} exp(β_kᵀx_j) at the distinct event times. The two hazards
are combined by the product-limit (Aalen–Johansen) rule, which keeps F1 + F2 + EFS = 1 exactly:

    EFS(s | x) = Π_{u ≤ s} (1 − ΔΛ_1(u | x) − ΔΛ_2(u | x)),   F_k(t | x) = Σ_{s ≤ t} EFS(s− | x) ΔΛ_k(s | x).

Time-varying effects (optional, ``time_varying``): a feature's log hazard ratio may be a step function of time with
steps at ``time_varying_knots`` (e.g. disease status at HSCT, whose effect is strongest in the first months). The
follow-up is split into episodes (start, stop] at the knots and each later period gets a deviation coefficient
(Therneau & Grambsch 2000, §6.3; R's ``survSplit``); the hazard is then λ_k0(t) exp(β_k(t)ᵀx) with β_k(t) constant
within a period, and the CIF formulas below use the period of each event time. A pre-specified subset of the columns
(``features``) keeps the model to the predictors chosen from the literature.

Intervals: a patient's CIF depends on both causes' coefficients and baselines; we use the nonparametric bootstrap of
the whole fit (``n_bootstrap`` resamples of patients, refitted; 95% percentile intervals), the fallback that
``docs/statistics.md`` prescribes when a closed-form delta method is not available for the combined quantity. All
replicates are evaluated at once in closed form: the baselines are stacked on one shared grid of event times
(a resample's event times are a subset of the original ones), so prediction is a few array operations.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from nbrisk.core import CAUSES, Cause
from nbrisk.models._base import (
    CompetingRisksEstimator,
    bootstrap_draws,
    feature_names,
    match_features,
    percentile_interval,
    used_columns,
)
from nbrisk.models._cox_kernels import (
    CoxReplicateStack,
    binned_cause_specific_cif,
    cox_linear_predictors,
    periods_of,
    stacked_cause_specific_cif,
)
from nbrisk.models._coxph import TIES, fit_coxph


def split_episodes(time: np.ndarray, knots: np.ndarray):
    """Split each patient's follow-up (0, time_i] at ``knots`` into episodes (start, stop] (counting-process form).

    Returns ``(row, start, stop, period, last)``: the patient of each episode, its interval, its period (see
    :func:`periods_of`) and whether it is the patient's last (the one that carries the patient's event).
    """
    knots = np.asarray(knots, dtype=float)
    n_ep = periods_of(time, knots) + 1
    row = np.repeat(np.arange(len(time)), n_ep)
    first = np.repeat(np.cumsum(n_ep) - n_ep, n_ep)
    period = np.arange(len(row)) - first
    lower = np.concatenate([[0.0], knots])
    upper = np.concatenate([knots, [np.inf]])
    start = lower[period]
    stop = np.minimum(time[row], upper[period])
    last = period == n_ep[row] - 1
    return row, start, stop, period, last


class CauseSpecificCox(CompetingRisksEstimator):
    """Cause-specific Cox models for relapse (cause 1) and TRM (cause 2), combined into CIFs.

    Parameters
    ----------
    alpha : ridge penalty ½·alpha·‖β_k‖² applied to each cause's partial log-likelihood (0 = plain Cox).
    ties : "breslow" (default; as SAS PHREG, cmprsk and R's multi-state coxph) or "efron".
    n_bootstrap : number of bootstrap refits for 95% percentile intervals (0: no intervals; then
        ``predict_cumulative_incidence(..., return_interval=True)`` raises ``NotImplementedError``). The point
        estimate is the exact product-limit combination; the replicates are evaluated all at once in the binned
        closed form of :func:`~nbrisk.models._cox_kernels.binned_cause_specific_cif` (error ~1e-3, well inside
        their Monte-Carlo spread).
    random_state : seed for the bootstrap resamples.
    features : feature names (shell-style patterns) to use; default all. The others get coefficient 0 (so
        ``coef_`` and contributions keep the width of X): a pre-specified predictor set (TRIPOD) instead of
        every column.
    time_varying : feature names (shell-style patterns, e.g. ``"disease_status_at_hsct=*"``) whose log hazard
        ratio may change at ``time_varying_knots``: a step-function time-varying coefficient (Therneau & Grambsch
        2000, §6.3; the follow-up is split into episodes at the knots, as R's ``survSplit``, and each period after
        the first gets its own deviation of the coefficient). Default none (proportional hazards).
    time_varying_knots : increasing times (unit of ``y['time']``) at which those effects may change.

    Attributes
    ----------
    coef_ : (2, p) log hazard ratios, cause 1 (relapse) row first; for a time-varying feature, its effect in the
        first period (before the first knot).
    coef_by_period_ : (P, 2, p) the log hazard ratios in each period (P = number of knots + 1).
    coef_se_ : (2, p) model-based standard errors (inverse information; what R's coxph prints as se(coef)).
    coef_se_robust_ : (2, p) robust sandwich (Lin & Wei 1989) standard errors (clustered by patient).
    used_features_ : indices of the features used. time_varying_features_ : indices of the time-varying
    features. tv_coef_, tv_se_, tv_se_robust_ : (2, P − 1, q)
        the deviations of their coefficients in periods 2..P from the first period, and standard errors.
    coef_infinite_ : (2, p) bool, coefficients whose MLE looks infinite (a level with no events of the cause;
        R's "coefficient may be infinite"): the fit converged in likelihood, predictions are usable, the
        coefficient and its SE are not interpretable. Use ``alpha > 0`` to keep them finite.
    center_ : (p,) training mean of X (reference point of contributions).
    intercept_ : (2,) the linear predictor of the baselines' reference point (lp = coef_by_period_ · x − intercept_).
    event_times_ : (m,) distinct times with an event of either cause (the shared grid).
    baseline_hazard_ : (S, 2, m) Breslow baseline hazard increments per stratum and cause.
    strata_ : list of stratum labels (``[None]`` if unstratified).
    time_grid_ : alias of ``event_times_``.
    """

    supports_intervals = True

    def __init__(
        self,
        alpha: float = 0.0,
        ties: str = "breslow",
        n_bootstrap: int = 0,
        random_state=None,
        features: tuple[str, ...] = (),
        time_varying: tuple[str, ...] = (),
        time_varying_knots: tuple[float, ...] = (),
    ):
        self.alpha = alpha
        self.features = features
        self.ties = ties
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.time_varying = time_varying
        self.time_varying_knots = time_varying_knots

    # ------------------------------------------------------------------ fitting
    def _resolve_columns(self, p: int) -> None:
        """``used_features_``, ``time_varying_features_`` (indices into X) and ``knots_`` from the parameters."""
        self.used_features_ = used_columns(self, p, self.features)
        knots = np.asarray(self.time_varying_knots or (), dtype=float)
        if self.time_varying and not len(knots):
            raise ValueError("time_varying needs time_varying_knots (the times at which the effects may change)")
        if len(knots) and (not np.all(np.isfinite(knots)) or np.any(knots <= 0) or np.any(np.diff(knots) <= 0)):
            raise ValueError(f"time_varying_knots must be positive and strictly increasing, got {list(knots)}")
        self.time_varying_features_ = np.empty(0, dtype=int)
        if self.time_varying:  # among the used columns (sorted, as match_features returns them)
            names = feature_names(self, p)
            self.time_varying_features_ = self.used_features_[
                match_features([names[j] for j in self.used_features_], self.time_varying, "time_varying")
            ]
        self.knots_ = knots if len(self.time_varying_features_) else np.empty(0)

    def _fit_once(self, X, event, time, strata, weights, grid, strata_labels):
        """Fit both causes on one data set.

        Returns (coef_by_period (P, 2, p), intercept (2,), se, se_robust (2, p + q(P−1)), baseline on ``grid``,
        converged, infinite (2, p)).
        """
        n, p_all = X.shape
        used = self.used_features_
        X = X[:, used]  # unused features get coefficient 0
        p = len(used)
        tv = np.searchsorted(used, self.time_varying_features_)  # positions among the used columns
        knots = self.knots_
        P = len(knots) + 1
        if len(tv):
            row, start, stop, period, last = split_episodes(time, knots)
            Z = np.concatenate([X[row]] + [X[row][:, tv] * (period == q)[:, None] for q in range(1, P)], axis=1)
            kw = dict(
                start=start,
                cluster=row,
                weights=None if weights is None else weights[row],
                strata=None if strata is None else strata[row],
            )
        else:
            row, stop, last, Z = np.arange(n), time, np.ones(n, dtype=bool), X
            kw = dict(weights=weights, strata=strata)
        coef = np.zeros((P, 2, p_all))
        intercept = np.zeros(2)
        q_tv = len(tv) * (P - 1)
        se = np.zeros((2, p_all + q_tv))
        se_r = np.zeros((2, p_all + q_tv))
        cols = np.concatenate([used, p_all + np.arange(q_tv)])  # fitted column → slot of the full-width arrays
        base = np.zeros((len(strata_labels), 2, len(grid)))
        converged = True
        infinite = np.zeros((2, p_all), dtype=bool)
        for k, cause in enumerate(CAUSES):
            d = ((event[row] == cause) & last).astype(int)
            res = fit_coxph(Z, stop, d, ties=self.ties, alpha=self.alpha, **kw)
            converged &= res.converged
            infinite[k, used] = res.possibly_infinite[:p]
            coef[:, k, used] = res.coef[:p]
            for q in range(1, P):
                coef[q, k, used[tv]] += res.coef[p + (q - 1) * len(tv) : p + q * len(tv)]
            intercept[k] = res.coef @ res.center
            se[k, cols], se_r[k, cols] = res.se_model, res.se_robust
            for s, lab in enumerate(strata_labels):
                t_s, h_s = res.baseline.get(lab, (np.empty(0), np.empty(0)))
                base[s, k, np.searchsorted(grid, t_s)] = h_s
        return coef, intercept, se, se_r, base, converged, infinite

    def fit(self, X, y, strata=None, sample_weight=None):
        """Fit one Cox model per cause.

        Parameters
        ----------
        X : (n, p) DataFrame or array of numeric covariates. y : DataFrame with ``event`` (0/1/2) and ``time`` (> 0).
        strata : optional (n,) labels; each stratum gets its own baselines (predict then needs ``strata`` too).
        sample_weight : optional (n,) case weights.
        """
        if self.ties not in TIES:
            raise ValueError(f"ties must be one of {TIES}, got {self.ties!r}")
        Xa, event, time = self._fit_data(X, y)
        p = Xa.shape[1]
        self._resolve_columns(p)
        strata_arr = None if strata is None else np.asarray(strata)
        self.strata_ = [None] if strata_arr is None else np.unique(strata_arr).tolist()
        self.event_times_ = np.unique(time[event != Cause.CENSORED])
        self.time_grid_ = self.event_times_
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        coef, intercept, se, se_r, base, conv, self.coef_infinite_ = self._fit_once(
            Xa, event, time, strata_arr, w, self.event_times_, self.strata_
        )
        q = len(self.time_varying_features_)
        self.coef_by_period_, self.intercept_ = coef, intercept
        self.coef_ = coef[0]
        self.coef_se_, self.coef_se_robust_ = se[:, :p], se_r[:, :p]
        self.tv_coef_ = (coef[1:, :, self.time_varying_features_] - coef[:1, :, self.time_varying_features_]).transpose(
            1, 0, 2
        )
        self.tv_se_ = se[:, p:].reshape(2, len(self.knots_), q)
        self.tv_se_robust_ = se_r[:, p:].reshape(2, len(self.knots_), q)
        self.center_ = Xa.mean(axis=0) if w is None else np.average(Xa, axis=0, weights=w)
        self.baseline_hazard_ = base
        self.converged_ = conv
        self.n_events_ = np.array([(event == c).sum() for c in CAUSES])

        for stale in ("bootstrap_coef_", "bootstrap_intercept_", "bootstrap_baseline_", "bootstrap_not_converged_"):
            self.__dict__.pop(stale, None)
        B = int(self.n_bootstrap)
        if B > 0:
            # the refits are array work on the design, not estimator fits: one loop here, no refit_on_resamples
            bc = np.empty((B, *coef.shape))
            bint = np.empty((B, 2))
            bbase = np.empty((B, len(self.strata_), 2, len(self.event_times_)))
            not_conv = 0
            for b, idx in enumerate(bootstrap_draws(self.random_state, len(event), B)):
                with warnings.catch_warnings():
                    # a resample can separate a rare covariate; counted in bootstrap_not_converged_ instead
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    c, ic, _, _, bs, ok, _ = self._fit_once(
                        Xa[idx],
                        event[idx],
                        time[idx],
                        None if strata_arr is None else strata_arr[idx],
                        None if w is None else w[idx],
                        self.event_times_,
                        self.strata_,
                    )
                bc[b], bint[b], bbase[b] = c, ic, bs
                not_conv += not ok
            self.bootstrap_coef_, self.bootstrap_intercept_, self.bootstrap_baseline_ = bc, bint, bbase
            self.bootstrap_not_converged_ = not_conv
        return self

    # --------------------------------------------------------------- prediction
    def _strata_index(self, strata, n):
        if self.strata_ == [None]:
            return np.zeros(n, dtype=int)
        if strata is None:
            raise ValueError("the model was fitted with strata: pass strata= to predict")
        lookup = {lab: i for i, lab in enumerate(self.strata_)}
        try:
            return np.array([lookup[s] for s in np.asarray(strata).tolist()], dtype=int)
        except KeyError as exc:
            raise ValueError(f"unknown stratum {exc.args[0]!r}") from None

    def predict_cumulative_incidence(self, X, times, return_interval: bool = False, strata=None):
        """Event-free probability and CIFs of relapse and TRM.

        Parameters
        ----------
        X : (n, p) covariates. times : (k,) times in the unit of ``y['time']`` (days for nbrisk cohorts).
        return_interval : also return 95% bootstrap percentile intervals (needs ``n_bootstrap > 0``).

        Returns
        -------
        (n, 3, k) array (0 event-free, 1 relapse, 2 TRM), or ``(estimate, lower, upper)`` of that shape.
        """
        check_is_fitted(self, "baseline_hazard_")
        Xa = self._check_X(X)
        times = np.atleast_1d(np.asarray(times, dtype=float))
        sidx = self._strata_index(strata, Xa.shape[0])
        if return_interval and getattr(self, "bootstrap_coef_", None) is None:
            raise NotImplementedError("intervals need n_bootstrap > 0 at fit time")
        lp = cox_linear_predictors(self.coef_by_period_[None], self.intercept_[None], Xa)
        est = stacked_cause_specific_cif(self.event_times_, self.baseline_hazard_[None], lp, times, sidx, self.knots_)[
            0
        ]
        if not return_interval:
            return est
        # replicates: binned closed form (see binned_cause_specific_cif), all at once
        lp = cox_linear_predictors(self.bootstrap_coef_, self.bootstrap_intercept_, Xa)
        reps = binned_cause_specific_cif(self.event_times_, self.bootstrap_baseline_, lp, times, sidx, self.knots_)
        lo, hi = percentile_interval(reps, est)
        return est, lo, hi

    @classmethod
    def replicate_stack(cls, members: list) -> CoxReplicateStack | None:
        """All members evaluated at once in closed form (:class:`~nbrisk.models._cox_kernels.CoxReplicateStack`)
        when they are unstratified cause-specific Cox fits with the same knots; else ``None`` (the generic path)."""
        knots = getattr(members[0], "knots_", None)
        if knots is not None and all(
            isinstance(m, CauseSpecificCox) and m.strata_ == [None] and np.array_equal(m.knots_, knots) for m in members
        ):
            return CoxReplicateStack(members)
        return None

    def predict_linear_predictor(self, X) -> np.ndarray:
        """(2, n) linear predictors β_kᵀ(x − training mean) per cause (log hazard ratio vs the average patient;
        with time-varying effects, in the first period)."""
        check_is_fitted(self, "coef_")
        Xa = self._check_X(X)
        return self.coef_ @ (Xa - self.center_).T

    def contributions(self, X) -> np.ndarray:
        """(n, 2, p) per-feature log-HR contributions β_kj (x_j − mean_j); summed over features = the linear predictor.

        With time-varying effects these are the contributions in the first period (before the first knot).
        """
        check_is_fitted(self, "coef_")
        Xa = self._check_X(X)
        return (Xa - self.center_)[:, None, :] * self.coef_[None, :, :]

    def summary(self) -> pd.DataFrame:
        """Coefficient table of the used features: cause, feature, coef, HR, se (model-based), robust se, z, p (Wald).

        A time-varying feature has one more row per later period, named ``<feature> × (a, b]``: the change of its
        log hazard ratio in that period from the first period.
        """
        from scipy.stats import norm

        names = getattr(self, "feature_names_in_", np.array([f"x{j}" for j in range(self.coef_.shape[1])]))
        bounds = np.concatenate([[0.0], self.knots_, [np.inf]])
        rows = []
        for k, cause in enumerate(CAUSES):
            entries = [
                (str(names[j]), self.coef_[k, j], self.coef_se_[k, j], self.coef_se_robust_[k, j])
                for j in self.used_features_
            ]
            for q in range(1, len(bounds) - 1):
                for i, j in enumerate(self.time_varying_features_):
                    entries.append(
                        (
                            f"{names[j]} × ({bounds[q]:g}, {bounds[q + 1]:g}]",
                            self.tv_coef_[k, q - 1, i],
                            self.tv_se_[k, q - 1, i],
                            self.tv_se_robust_[k, q - 1, i],
                        )
                    )
            for name, c, s, sr in entries:
                z = c / s if s > 0 else np.nan
                rows.append(
                    dict(
                        cause=cause.key,
                        feature=name,
                        coef=c,
                        hr=np.exp(c),
                        se=s,
                        se_robust=sr,
                        z=z,
                        p=2 * norm.sf(abs(z)),
                    )
                )
        return pd.DataFrame(rows)
