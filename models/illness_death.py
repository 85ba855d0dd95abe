"""Illness–death model: relapse / TRM competing risks plus death after relapse, giving a coherent overall survival.

States 0 = alive event-free, 1 = relapsed alive, 2 = dead; transitions 0→1 (relapse), 0→2 (TRM) from the
competing-risks model, 1→2 (death after relapse) from :class:`PostRelapseModel` — a Cox model with the clock reset
at relapse and the time to relapse (log months) as a covariate (a semi-Markov "clock-reset" model; Putter, Fiocco &
Geskus 2007, Stat Med 26:2389, §4). Overall survival is

    OS(t | x) = EFS(t | x) + Σ_{s ≤ t} ΔF1(s | x) · S12(t − s | x, s),

the probability of being event-free plus that of having relapsed at s and survived the t − s days since. Because
0 ≤ S12 ≤ 1, OS ≥ EFS and 1 − OS ≥ F2 (TRM) hold by construction for every patient.

Time grid (the approximation, and its size). The sum over relapse times s is evaluated on a shared grid of bins:
monthly edges (``grid_months``, default 1 month = 30.44 days) plus the requested horizons, from day 0 to the largest
horizon. F1 at the bin edges is exact (the competing-risks model's own CIF); within a bin the relapse mass
ΔF1 = F1(e_b) − F1(e_{b−1}) is placed at the bin midpoint, so S12 is evaluated at t − s_mid instead of t − s for an s
up to half a bin (≈ 15 days) away. With a post-relapse hazard h12 the error in OS is at most about
F1(t) · h12 · 15 days (e.g. 0.6 × (ln 2 / 6 months) × 0.5 month ≈ 0.03 for a 6-month median post-relapse survival,
much less in practice because the errors of early and late relapses within a bin partly cancel); a finer
``grid_months`` shrinks it proportionally. The coherence invariants hold exactly for any grid.

Intervals. ``n_bootstrap`` resamples of patients; on each the competing-risks model *and* the post-relapse model are
refitted, so the four curves' 95% percentile intervals come from the same replicates (coherent). The post-relapse
Cox models of all replicates are always evaluated at once; so are the competing-risks models when their family
offers the fast replicate hook (:meth:`~nbrisk.models._base.CompetingRisksEstimator.replicate_stack`: the
cause-specific Cox and Fine–Gray families), which is what makes one patient with intervals take a few milliseconds
and 10,000 patients about a second. Any other family is asked for each replicate's predictions in turn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from nbrisk.core import DAYS_PER_MONTH, NbriskError, RiskCurves, State, months_to_days
from nbrisk.models._base import (
    CompetingRisksEstimator,
    bootstrap_draws,
    check_competing_risks_target,
    percentile_interval,
    refit_on_resamples,
    used_columns,
)
from nbrisk.models._cox_kernels import LP_CLIP
from nbrisk.models._coxph import TIES, fit_coxph
from nbrisk.models.cox import CauseSpecificCox

POST_COLUMNS = ("relapse_time", "post_relapse_time", "post_relapse_event")
#: Up to this many (replicate × patient) cells, the OS convolution works on whole arrays over all bins at once.
_SMALL_CELLS = 4_000
#: Replicates × patients per chunk of the OS convolution (arrays of ~160 kB in float32: they stay in cache).
_CHUNK_CELLS = 40_000


def _log_months(days: np.ndarray) -> np.ndarray:
    # a relapse on day 0.5 is log(0.016) ≈ −4: finite; clip at half a day so the covariate is always defined
    return np.log(np.maximum(np.asarray(days, dtype=float), 0.5) / DAYS_PER_MONTH)


#: Relapses earlier than this (days after HSCT) get the early-relapse indicator of the post-relapse model.
EARLY_RELAPSE_DAYS = 6 * DAYS_PER_MONTH
#: Number of relapse-time covariates of the post-relapse model (the last columns of its design).
N_RELAPSE_TERMS = 2


def _relapse_terms(days: np.ndarray) -> np.ndarray:
    """(..., 2) relapse-time covariates: log(months HSCT → relapse) and 1{relapse < 6 months after HSCT}."""
    d = np.asarray(days, dtype=float)
    return np.stack([_log_months(d), (d < EARLY_RELAPSE_DAYS).astype(float)], axis=-1)


class PostRelapseModel(BaseEstimator):
    """Cox model for death after relapse (transition 1→2), clock reset at relapse.

    Covariates: the baseline predictors X plus two terms of the time s from HSCT to relapse, g(s) = (log months,
    1{s < 6 months}): early relapse carries a worse prognosis (London et al. 2011 JCO 29:3286), and a relapse within
    6 months of an allogeneic transplant is the usual "early relapse" cut of the transplant literature. Hazard
    λ12(u | x, s) = λ12,0(u) exp(βᵀx + γᵀg(s)), u the days since relapse, s the day of relapse. Survival
    S12(u | x, s) = exp(−Λ12,0(u) exp(βᵀx + γᵀg(s))) with the Breslow baseline.

    Parameters
    ----------
    alpha : ridge penalty ½·alpha·‖(β, γ)‖². Default 1.0: few patients relapse, and a mild ridge keeps the fit
        finite when a rare category separates deaths after relapse (this is a nuisance model for OS).
    ties : "breslow" | "efron".
    features : feature names (shell-style patterns) of X to use; default all (the others get coefficient 0).

    Attributes
    ----------
    coef_ : (p + 2,) β then γ (last two). coef_se_ : model-based SEs (NaN for unused features). center_ : (p + 2,)
    covariate means. event_times_ : (m,) distinct death times after relapse (days since relapse).
    cumulative_hazard_ : (m,) Λ12,0.
    """

    def __init__(self, alpha: float = 1.0, ties: str = "breslow", features: tuple[str, ...] = ()):
        self.alpha = alpha
        self.ties = ties
        self.features = features

    def fit(self, X, y: pd.DataFrame):
        """Fit on the patients who relapsed.

        Parameters
        ----------
        X : (n, p) covariates of all patients (rows without a relapse are ignored).
        y : DataFrame with ``relapse_time`` (days, NaN without relapse), ``post_relapse_time`` (days, > 0) and
            ``post_relapse_event`` (1 death after relapse, 0 alive at last follow-up); other columns are ignored.
        """
        post = y
        if self.ties not in TIES:
            raise ValueError(f"ties must be one of {TIES}, got {self.ties!r}")
        missing = set(POST_COLUMNS) - set(post.columns)
        if missing:
            raise ValueError(f"post must have columns {list(POST_COLUMNS)}; missing {sorted(missing)}")
        Xa = np.asarray(X, dtype=float)
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = Xa.shape[1]
        rel = post["relapse_time"].to_numpy(dtype=float)
        has = np.isfinite(rel)
        u = post["post_relapse_time"].to_numpy(dtype=float)[has]
        d = post["post_relapse_event"].to_numpy(dtype=float)[has]
        if np.any(~np.isfinite(u)) or np.any(u <= 0):
            raise ValueError("post_relapse_time must be > 0 for every patient with a relapse")
        used = used_columns(self, Xa.shape[1], self.features)
        cols = np.concatenate([used, Xa.shape[1] + np.arange(N_RELAPSE_TERMS)])  # fitted column → slot
        Z = np.column_stack([Xa[has][:, used], _relapse_terms(rel[has])])
        self.n_relapsed_ = int(has.sum())
        self.n_events_ = int(d.sum())
        if self.n_relapsed_ == 0:
            # nothing to learn: no death after relapse is ever predicted (S12 = 1); coefficients 0
            p = Xa.shape[1] + N_RELAPSE_TERMS
            self.coef_, self.coef_se_, self.center_ = np.zeros(p), np.full(p, np.nan), np.zeros(p)
            self.event_times_, self.cumulative_hazard_ = np.empty(0), np.empty(0)
            return self
        res = fit_coxph(Z, u, d.astype(int), ties=self.ties, alpha=self.alpha)
        width = Xa.shape[1] + N_RELAPSE_TERMS
        self.coef_, self.coef_se_, self.center_ = np.zeros(width), np.full(width, np.nan), np.zeros(width)
        self.coef_[cols], self.coef_se_[cols], self.center_[cols] = res.coef, res.se_model, res.center
        self.event_times_, dh = res.baseline[None]
        self.cumulative_hazard_ = np.cumsum(dh)
        self.converged_ = res.converged
        return self

    def linear_predictor(self, X) -> np.ndarray:
        """(n,) βᵀ(x − mean), the part of the log hazard that does not depend on the relapse time."""
        check_is_fitted(self, "coef_")
        Xa = np.asarray(X, dtype=float)
        return (Xa - self.center_[:-N_RELAPSE_TERMS]) @ self.coef_[:-N_RELAPSE_TERMS]

    def hazard_table(self, relapse_days: np.ndarray, elapsed_days: np.ndarray) -> np.ndarray:
        """Λ12,0(u) exp(γ (g(s) − mean g)) for relapse days s (S,) and elapsed days u (S, H) → (S, H).

        S12(u | x, s) = exp(−table · exp(linear_predictor(x))).
        """
        u = np.asarray(elapsed_days, dtype=float)
        idx = np.searchsorted(self.event_times_, u, side="right") - 1
        base = np.where(
            idx >= 0, self.cumulative_hazard_[np.clip(idx, 0, None)] if len(self.event_times_) else 0.0, 0.0
        )
        g = np.exp(
            np.clip(
                (_relapse_terms(relapse_days) - self.center_[-N_RELAPSE_TERMS:]) @ self.coef_[-N_RELAPSE_TERMS:],
                -LP_CLIP,
                LP_CLIP,
            )
        )
        return base * g[:, None]

    def predict_survival(self, X, relapse_days, elapsed_days) -> np.ndarray:
        """S12(u | x, s): (n, k) probability of being alive ``elapsed_days`` (k,) after a relapse on ``relapse_days``
        (n,) (days from HSCT)."""
        s = np.asarray(relapse_days, dtype=float)
        u = np.asarray(elapsed_days, dtype=float)
        table = np.stack([self.hazard_table(s, np.broadcast_to(v, s.shape)[:, None])[:, 0] for v in u], axis=1)
        return np.exp(-table * np.exp(np.clip(self.linear_predictor(X), -LP_CLIP, LP_CLIP))[:, None])


def _fit_pair(cr_model, post_model, X, y, post, cr_params):
    cr = clone(cr_model).set_params(**cr_params).fit(X, y)
    pm = clone(post_model).fit(X, post)
    return cr, pm


def _bootstrap_pair(idx, cr_model, post_model, X, y_cr, post, inner):
    """One interval refit on the patient resample ``idx`` (a module-level task: see :func:`refit_on_resamples`)."""
    rows = [frame.iloc[idx].reset_index(drop=True) for frame in (X, y_cr, post)]
    return _fit_pair(cr_model, post_model, rows[0], rows[1], rows[2], inner)


class IllnessDeathModel(CompetingRisksEstimator):
    """Relapse / TRM competing-risks model + post-relapse survival → relapse, TRM, EFS and coherent OS with intervals.

    Parameters
    ----------
    cr_model : an unfitted competing-risks estimator (e.g. :class:`~nbrisk.models.cox.CauseSpecificCox`); cloned.
    post_relapse : an unfitted :class:`PostRelapseModel` (default ``PostRelapseModel()``, on the competing-risks
        model's ``features`` when it has that parameter set).
    n_bootstrap : refits of both models on patient resamples for 95% percentile intervals (0: no intervals).
    random_state : seed of the resamples (None: fresh randomness, as in scikit-learn). n_jobs : parallel refits
        (joblib).
    grid_months : width of the relapse-time bins of the OS convolution (see the module docstring).

    Attributes
    ----------
    cr_model_, post_relapse_ : the models fitted on all data. replicates_ : list of (cr, post) bootstrap fits.
    bootstrap_not_converged_ : number of replicates in which a Cox fit did not converge (kept; counted).
    """

    def __init__(
        self,
        cr_model=None,
        post_relapse=None,
        n_bootstrap: int = 50,
        random_state=None,
        n_jobs: int = 1,
        grid_months: float = 1.0,
    ):
        self.cr_model = cr_model
        self.post_relapse = post_relapse
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.grid_months = grid_months

    @property  # per instance (refits or not), where the estimators' flag is per class
    def supports_intervals(self) -> bool:  # type: ignore[override]
        return int(self.n_bootstrap) > 0

    def fit(self, X, y):
        """Fit the competing-risks model on (X, y) and the post-relapse model on the relapsed patients.

        Parameters
        ----------
        X : (n, p) DataFrame of numeric predictors.
        y : DataFrame with ``event`` and ``time`` (days) and the post-relapse follow-up ``relapse_time``,
            ``post_relapse_time``, ``post_relapse_event`` (NaN / 0 for patients without relapse): the frame of
            :func:`nbrisk.features.outcomes.derive_outcomes` as is.
        """
        if not isinstance(y, pd.DataFrame):
            raise TypeError("y must be a DataFrame with columns 'event' and 'time'")
        missing = set(POST_COLUMNS) - set(y.columns)
        if missing:
            raise NbriskError(f"the illness–death model needs post-relapse follow-up columns {sorted(missing)}")
        event, time = check_competing_risks_target(y)
        post = y[list(POST_COLUMNS)].reset_index(drop=True)
        y_cr = pd.DataFrame({"event": event, "time": time})
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X, dtype=float))
        X = X.reset_index(drop=True)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        cr_model = CauseSpecificCox() if self.cr_model is None else self.cr_model
        if self.post_relapse is not None:
            post_model = self.post_relapse
        else:  # the default post-relapse model uses the competing-risks model's pre-specified predictors, if any
            chosen = cr_model.get_params().get("features") if hasattr(cr_model, "get_params") else None
            post_model = PostRelapseModel(features=chosen) if chosen else PostRelapseModel()
        self.cr_model_, self.post_relapse_ = _fit_pair(cr_model, post_model, X, y_cr, post, {})

        B = int(self.n_bootstrap)
        self.replicates_ = []
        self.bootstrap_not_converged_ = 0
        if B > 0:
            # replicates never bootstrap internally (that would be B² fits)
            inner = {"n_bootstrap": 0} if "n_bootstrap" in cr_model.get_params() else {}

            draws = bootstrap_draws(self.random_state, len(event), B)
            # the data go as task arguments, not in a closure: on a cluster backend joblib then sends X, y and
            # post once per loop instead of with every refit (nbrisk.training.cluster)
            self.replicates_, self.bootstrap_not_converged_ = refit_on_resamples(
                _bootstrap_pair, draws, self.n_jobs, data=(cr_model, post_model, X, y_cr, post, inner)
            )
        self._build_stack()
        return self

    # ------------------------------------------------------------------ all members evaluated at once
    def _build_stack(self):
        members = [(self.cr_model_, self.post_relapse_), *self.replicates_]
        # post-relapse models of all members on one grid of death times after relapse: (R, m12) cumulative hazards
        posts = [pm for _, pm in members]
        grid12 = np.unique(np.concatenate([pm.event_times_ for pm in posts]))
        cum = np.zeros((len(posts), len(grid12)))
        for r, pm in enumerate(posts):
            inc = np.zeros(len(grid12))
            if len(pm.event_times_):
                inc[np.searchsorted(grid12, pm.event_times_)] = np.diff(pm.cumulative_hazard_, prepend=0.0)
            cum[r] = np.cumsum(inc)
        self._post_stack_ = dict(
            grid=grid12,
            cumhaz=cum,
            coef=np.stack([pm.coef_ for pm in posts]),
            center=np.stack([pm.center_ for pm in posts]),
        )
        # the competing-risks family's fast replicate hook (None: each replicate is asked in turn)
        hook = getattr(self.cr_model_, "replicate_stack", None)
        self._cr_stack_ = hook([cr for cr, _ in members]) if callable(hook) else None
        self._plans_: dict = {}

    def predict_states(self, X, times, return_interval: bool = False):
        """Relapse, TRM, EFS and OS at ``times`` (days after HSCT).

        Returns
        -------
        (n, 4, k) array, axis 1 in :class:`~nbrisk.core.State` order (EFS, relapse, TRM, OS), or
        ``(estimate, lower, upper)`` of that shape with 95% bootstrap percentile intervals (needs
        ``n_bootstrap > 0``, else ``NotImplementedError``).
        """
        check_is_fitted(self, "replicates_")
        if return_interval and not self.replicates_:
            raise NotImplementedError("intervals need n_bootstrap > 0 at fit time")
        if isinstance(X, pd.DataFrame):
            if list(X.columns) != list(self.feature_names_in_):
                raise ValueError("X columns differ from those seen in fit")
        Xa = np.asarray(X, dtype=float)
        if Xa.ndim != 2 or not np.all(np.isfinite(Xa)):
            raise ValueError("X must be a finite 2-dimensional array")
        times = np.atleast_1d(np.asarray(times, dtype=float))
        if np.any(times < 0) or not np.all(np.isfinite(times)):
            raise ValueError("times must be finite and >= 0")
        uniq, inv = np.unique(times, return_inverse=True)
        est, reps = self._states(Xa, X, uniq, return_interval)  # (n, 4, k_uniq), (n, 4, k_uniq, R − 1)
        if len(uniq) != len(times) or np.any(uniq != times):
            est, reps = est[..., inv], reps[..., inv, :]
        if not return_interval:
            return est
        lo, hi = percentile_interval(reps, est, replicates_last=True, overwrite=True)  # reps is ours
        return est, lo, hi

    def _states(self, Xa, X, times, with_replicates):
        """The states at sorted ``times``: the main fit (n, 4, k) and the replicates (n, 4, k, R − 1)
        (replicates last, ready for the percentiles; float32 for Cox replicates: they only feed the percentiles)."""
        reps = self.replicates_ if with_replicates else []
        R, n, k = 1 + len(reps), Xa.shape[0], len(times)
        if float(times.max()) <= 0:  # only day 0: everyone event-free and alive
            out = np.empty((n, 4, k, R))
            out[:, [State.RELAPSE, State.TRM]], out[:, [State.EFS, State.OS]] = 0.0, 1.0
            return out[..., 0], out[..., 1:]
        plan = self._plan(times, R)
        edges, stack = plan.edges, self._cr_stack_
        # S12(u | x, s) = exp(−tables[r, h, b] · exp(βᵀ(x − x̄))) (see _HorizonPlan)
        post_lp = Xa @ plan.post_coef_t - plan.post_offset
        post_risk = np.exp(np.clip(post_lp.T, -LP_CLIP, LP_CLIP))  # (R, n)
        combine = _StateCombiner(plan)

        # the main fit: exact CIFs at the edges (float64); the replicates in closed form if the family offers it
        if stack is not None:
            main, binned = stack.evaluate(X, Xa, edges, R)
        else:
            main, binned = self.cr_model_.predict_cumulative_incidence(X, edges), None
        est = combine(main[:, State.EFS].T[:, None], main[:, State.RELAPSE].T[:, None], post_risk[:1], slice(0, 1))[0]
        est = np.ascontiguousarray(est)
        if not reps:
            return est, np.empty((n, 4, k, 0))
        # the replicates (float32 where in closed form: they only feed the percentiles), else each replicate's own
        # predictions
        closed = binned is not None
        if not closed:
            rep_cif = np.stack([cr.predict_cumulative_incidence(X, edges) for cr, _ in reps])  # (R−1, n, 3, E)
        chunk = max(1, _CHUNK_CELLS // (R - 1))
        reps_out = np.empty((n, 4, k, R - 1), dtype=np.float32 if closed else float)
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            if closed:
                efs, f1 = binned(a, b, (R - 1) * (b - a) <= _SMALL_CELLS)
            else:
                efs = np.moveaxis(rep_cif[:, a:b, State.EFS], -1, 0)
                f1 = np.moveaxis(rep_cif[:, a:b, State.RELAPSE], -1, 0)
            reps_out[a:b] = np.moveaxis(combine(efs, f1, post_risk[1:, a:b].astype(efs.dtype), slice(1, R)), 0, -1)
        return est, reps_out

    def _plan(self, times: np.ndarray, R: int) -> _HorizonPlan:
        """The :class:`_HorizonPlan` of sorted ``times`` (> 0 somewhere) and the first ``R`` members, cached: the
        service asks for the same horizons again and again, and for one patient building it costs more than the
        patient's own arithmetic."""
        key = (times.tobytes(), R)
        cache = self.__dict__.setdefault("_plans_", {})
        plan = cache.get(key)
        if plan is None:
            if len(cache) >= 16:
                cache.clear()
            plan = _HorizonPlan(self, times, R)
            cache[key] = plan
        return plan

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns the live __dict__
        state.pop("_cr_stack_", None)  # derived from the fitted members: rebuilt on load
        state.pop("_plans_", None)  # derived: rebuilt on demand
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "replicates_" in state:
            self._build_stack()

    def predict_cumulative_incidence(self, X, times, return_interval: bool = False):
        """(n, 3, k) event-free, relapse, TRM (as every estimator: the first three states), intervals from the same
        replicates."""
        res = self.predict_states(X, times, return_interval=return_interval)
        cif = slice(State.EFS, State.TRM + 1)
        if return_interval:
            return tuple(r[:, cif] for r in res)
        return res[:, cif]

    def predict_curves(self, X, horizons_months, intervals: bool = True) -> RiskCurves:
        """:class:`~nbrisk.core.RiskCurves` at ``horizons_months`` (months after HSCT), with intervals if available
        (and ``intervals``: ``False`` skips the replicates)."""
        h = np.atleast_1d(np.asarray(horizons_months, dtype=float))
        times = months_to_days(h)
        # (predict_states checks that the model is fitted: once per request, it costs ~10 µs)
        if intervals and self.supports_intervals and getattr(self, "replicates_", None):
            return RiskCurves.from_states(h, *self.predict_states(X, times, return_interval=True))
        return RiskCurves.from_states(h, self.predict_states(X, times))


class _HorizonPlan:
    """What :meth:`IllnessDeathModel._states` needs that does not depend on the patients, for one set of sorted
    times (days) and the first ``R`` members (the main fit, then the replicates). Read-only once built: it is cached
    on the model and shared by the service's threads.

    * ``edges`` (E,): the right ends of the relapse-time bins of the OS convolution (monthly, the times, the knots of
      the competing-risks family), ``mid`` the relapse time assumed in each bin, ``hcol`` the edge of each time;
    * ``tables`` (R, k, E): Λ12,0(t_h − s_b) exp(γ (g(s_b) − ḡ)) per member, time and relapse bin (zero for bins
      after the time, never used), so that S12(t_h − s_b | x, s_b) = exp(−tables · exp(βᵀ(x − x̄)));
    * ``post_coef_t`` (p, R), ``post_offset`` (R,): the post-relapse linear predictor βᵀx − βᵀx̄ of every member.
    """

    def __init__(self, model: IllnessDeathModel, times: np.ndarray, R: int):
        k = len(times)
        step = float(model.grid_months) * DAYS_PER_MONTH
        edges = np.union1d(np.arange(0.0, float(times.max()), step)[1:], times[times > 0])  # bin right-ends
        stack = model._cr_stack_
        extra = stack.extra_edges(float(times.max())) if stack is not None else ()
        if len(extra):  # e.g. the knots of time-varying effects: a bin lies within one period
            edges = np.union1d(edges, extra)
        E = len(edges)
        mid = 0.5 * (np.concatenate([[0.0], edges[:-1]]) + edges)  # relapse time assumed for each bin
        self.edges, self.mid = edges, mid
        self.hcol = np.searchsorted(edges, times)  # column of each horizon (times > 0 are edges)
        self.zero = times <= 0
        elapsed = np.maximum(times[:, None] - mid[None, :], 0.0)  # (k, E)
        ps = model._post_stack_
        idx = np.searchsorted(ps["grid"], elapsed, side="right") - 1
        base12 = (
            np.where(idx >= 0, ps["cumhaz"][:R, np.clip(idx, 0, None)], 0.0) if len(ps["grid"]) else np.zeros((R, k, E))
        )
        nt = N_RELAPSE_TERMS
        gam = ps["coef"][:R, -nt:]  # (R, nt)
        rel_lp = np.einsum("rj,rej->re", gam, _relapse_terms(mid)[None, :, :] - ps["center"][:R, None, -nt:])
        tables = base12 * np.exp(np.clip(rel_lp, -LP_CLIP, LP_CLIP))[:, None, :]  # (R, k, E)
        self.neg_tables = -tables
        # per dtype of the replicates' arrays: the main fit (float64) and the replicates (float32 in closed form)
        self._neg_tables_as = {
            (0, 1, np.dtype(float)): self.neg_tables[0:1].astype(float),
            (1, R, np.dtype(np.float32)): self.neg_tables[1:R].astype(np.float32),
        }
        coef = ps["coef"][:R, :-nt]
        self.post_coef_t = coef.T
        self.post_offset = np.sum(coef * ps["center"][:R, :-nt], axis=1)

    def neg_tables_as(self, members: slice, dtype: np.dtype) -> np.ndarray:
        """−tables of ``members`` in ``dtype`` (kept for the main fit in float64 and the replicates in float32)."""
        got = self._neg_tables_as.get((members.start, members.stop, np.dtype(dtype)))
        return got if got is not None else self.neg_tables[members].astype(dtype)


class _StateCombiner:
    """Relapse, TRM, EFS and OS at the horizons from EFS and F1 at the bin edges (the OS convolution).

    ``plan``: the :class:`_HorizonPlan` (tables of Λ12,0(t_h − s_b) exp(γ (g(s_b) − ḡ)) per member, horizon and
    relapse bin). Called with ``efs``, ``f1`` (E, R', c) and ``post_risk`` (R', c) for the members ``members`` (a
    slice of R); returns (R', c, 4, k) in :class:`~nbrisk.core.State` order. Loops over the (horizon, bin) pairs on
    (members × patients) arrays, in the dtype of ``f1``. One per call of ``_states`` (it keeps a buffer reused from
    chunk to chunk).
    """

    def __init__(self, plan: _HorizonPlan):
        self.plan = plan
        self.hcol, self.zero = plan.hcol, plan.zero
        self._df1: np.ndarray | None = None

    def __call__(self, efs: np.ndarray, f1: np.ndarray, post_risk: np.ndarray, members: slice) -> np.ndarray:
        _, Rm, c = f1.shape
        k = len(self.hcol)
        dt = f1.dtype
        neg_tables = self.plan.neg_tables_as(members, dt)  # (R', k, E)
        if self._df1 is None or self._df1.shape != f1.shape or self._df1.dtype != dt:
            self._df1 = np.empty_like(f1)  # reused from chunk to chunk
        df1 = self._df1
        df1[0] = f1[0]
        np.subtract(f1[1:], f1[:-1], out=df1[1:])  # relapse mass per bin
        hcol = self.hcol
        e, fr = efs[hcol], f1[hcol]  # (k, R', c) at each horizon's edge
        f2 = np.clip(1.0 - e - fr, 0.0, 1.0)
        alive = np.empty(fr.shape, dtype=dt)
        for h in range(k):
            col = int(hcol[h])
            if Rm * c <= _SMALL_CELLS:  # few patients: one array over all bins (Python overhead dominates)
                surv = np.exp(neg_tables[:, h, : col + 1].T[:, :, None] * post_risk[None])  # (bins, R', c)
                alive[h] = np.einsum("brc,brc->rc", surv, df1[: col + 1])
            else:  # a loop over the bins on cache-sized arrays
                tmp = np.empty((Rm, c), dtype=dt)
                acc = alive[h]
                acc[:] = 0.0
                for bb in range(col + 1):
                    np.multiply(neg_tables[:, h, bb, None], post_risk, out=tmp)
                    np.exp(tmp, out=tmp)
                    tmp *= df1[bb]
                    acc += tmp
        # built state by state in a (4, k, R', c) buffer (contiguous writes), returned as its (R', c, 4, k) view
        out = np.empty((4, k, Rm, c))
        out[State.EFS], out[State.RELAPSE], out[State.TRM] = e, fr, f2
        # OS = EFS + relapsed-and-alive; the clip only guards round-off (OS ≤ 1 − TRM since S12 ≤ 1)
        out[State.OS] = np.clip(e + alive, e, 1.0 - f2)
        if self.zero.any():  # day 0: everyone event-free and alive
            z = self.zero
            out[State.RELAPSE, z], out[State.TRM, z] = 0.0, 0.0
            out[State.EFS, z], out[State.OS, z] = 1.0, 1.0
        return out.transpose(2, 3, 0, 1)
