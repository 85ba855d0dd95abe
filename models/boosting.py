"""Cause-specific gradient-boosted Cox models (xgboost ``survival:cox``) for relapse vs TRM.

For each cause k, xgboost fits a boosted log-relative hazard f_k(x) by maximising the Cox partial likelihood
(Breslow ties) with the other cause treated as censoring; the label is ``+time`` for an event of cause k and ``−time``
for a censored or competing observation (xgboost's convention). Given the fitted margin, the cumulative baseline hazard
is Breslow's estimator (Breslow 1972, discussion of Cox; see ``docs/statistics.md``):

    ΔΛ_k0(s) = d_k(s) / Σ_{j : T_j ≥ s} exp(f_k(x_j)),        ΔΛ_k(s | x) = ΔΛ_k0(s) · exp(f_k(x)),

and the two causes are combined by the product-limit rule
(:func:`nbrisk.models._base.cif_from_cause_specific_hazards`), so relapse + TRM + EFS = 1 exactly, in closed form for
all patients at once. Any constant in the margin (xgboost's ``base_score``) cancels in ΔΛ_k, which is why the baseline
is estimated on the margin rather than taken from xgboost.
"""

from __future__ import annotations

import numpy as np
import xgboost as xgb
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from nbrisk.core import CAUSES, Cause
from nbrisk.models._base import (
    CompetingRisksEstimator,
    cif_from_cause_specific_hazards,
)

#: Patients per block in prediction: bounds the (n, m) hazard matrices in memory for large batches.
_PREDICT_BLOCK = 2048


def breslow_increments(time: np.ndarray, is_event: np.ndarray, margin: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Breslow baseline hazard increments at ``grid`` for relative hazards ``exp(margin)``.

    ``time`` (n,), ``is_event`` (n,) bool for the cause, ``margin`` (n,) log relative hazard, ``grid`` (m,) sorted.
    Returns (m,) ΔΛ_0(s) = d(s) / Σ_{T_j ≥ s} exp(margin_j), zero where no event of the cause occurs.
    """
    order = np.argsort(time, kind="stable")
    t_sorted = time[order]
    w_sorted = np.exp(margin[order])
    # risk-set sums: sum of weights of everyone with T_j >= s (reverse cumulative sum over sorted times)
    tail = np.concatenate([np.cumsum(w_sorted[::-1])[::-1], [0.0]])
    at_risk = tail[np.searchsorted(t_sorted, grid, side="left")]
    deaths = np.bincount(np.searchsorted(grid, time[is_event]), minlength=len(grid)).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(deaths > 0, deaths / at_risk, 0.0)


class CauseSpecificBoosting(CompetingRisksEstimator):
    """Cause-specific xgboost Cox boosters with Breslow baselines, combined into coherent CIFs.

    Parameters
    ----------
    n_estimators : boosting rounds per cause.
    learning_rate, max_depth, subsample, reg_lambda : xgboost ``eta``, ``max_depth``, ``subsample``, ``lambda``.
    random_state : int, RandomState or None; each cause's booster gets a seed drawn from it (``tree_method="hist"``
        so the fit is deterministic given the seed).
    n_jobs : xgboost threads.
    min_child_weight : xgboost ``min_child_weight`` (a minimum Cox-hessian mass per leaf).

    Attributes
    ----------
    boosters_ : list of two ``xgboost.Booster``, cause 1 (relapse) then cause 2 (TRM); ``None`` for a cause with no
        event in the training data (its hazard is then 0). Pickled as raw UBJSON bytes.
    baseline_hazard_ : (2, m) Breslow increments ΔΛ_k0 at ``time_grid_`` on the scale exp(margin − margin_offset_).
    margin_offset_ : (2,) mean training margin per cause, subtracted before ``exp`` for numerical stability.
    time_grid_ : (m,) sorted distinct event times of either cause (unit of ``y['time']``).

    Intervals: not available in closed form (``supports_intervals = False``); wrap the estimator in
    :class:`nbrisk.models.intervals.BootstrapIntervals` for percentile intervals from refits.
    """

    supports_intervals = False

    def __init__(
        self,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        max_depth: int = 3,
        subsample: float = 0.8,
        reg_lambda: float = 1.0,
        random_state=None,
        n_jobs: int = 1,
        *,
        min_child_weight: float = 1.0,
    ):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.min_child_weight = min_child_weight

    def _params(self, seed: int) -> dict:
        return {
            "objective": "survival:cox",
            "eta": float(self.learning_rate),
            "max_depth": int(self.max_depth),
            "subsample": float(self.subsample),
            "lambda": float(self.reg_lambda),
            "min_child_weight": float(self.min_child_weight),
            "tree_method": "hist",
            "nthread": int(self.n_jobs),
            "seed": int(seed),
            "verbosity": 0,
        }

    def fit(self, X, y):
        """Fit one Cox booster per cause on ``X`` (n, p) numeric and ``y`` (``event``, ``time``); returns ``self``."""
        arr, event, time = self._fit_data(X, y)
        seeds = check_random_state(self.random_state).randint(0, np.iinfo(np.int32).max, size=len(CAUSES))
        self.time_grid_ = np.unique(time[event != Cause.CENSORED])
        boosters, offsets, baselines = [], [], []
        for cause, seed in zip(CAUSES, seeds, strict=True):
            is_event = event == cause
            if not is_event.any():
                # No event of this cause (a bootstrap resample or CV fold can lose rare TRM events): its
                # Breslow/Nelson–Aalen hazard is 0 at every time, which is what the data say; no booster is fitted.
                boosters.append(None)
                offsets.append(0.0)
                baselines.append(np.zeros(len(self.time_grid_)))
                continue
            dtrain = xgb.DMatrix(arr, label=np.where(is_event, time, -time), nthread=int(self.n_jobs))
            booster = xgb.train(self._params(seed), dtrain, num_boost_round=int(self.n_estimators))
            margin = booster.predict(dtrain, output_margin=True).astype(float)
            offset = float(margin.mean())
            boosters.append(booster)
            offsets.append(offset)
            baselines.append(breslow_increments(time, is_event, margin - offset, self.time_grid_))
        self.boosters_ = boosters
        self.margin_offset_ = np.asarray(offsets)
        self.baseline_hazard_ = np.vstack(baselines)
        return self

    def predict_log_relative_hazard(self, X) -> np.ndarray:
        """Centred margins f_k(x) − margin_offset_k, shape (n, 2): column 0 relapse, column 1 TRM."""
        check_is_fitted(self, "boosters_")
        arr = self._check_X(X)
        # inplace_predict skips building a DMatrix (~1 ms per call): it matters for one patient × many refits
        return np.column_stack(
            [
                np.zeros(arr.shape[0])
                if b is None
                else np.asarray(b.inplace_predict(arr, predict_type="margin"), dtype=float) - off
                for b, off in zip(self.boosters_, self.margin_offset_, strict=True)
            ]
        )

    def predict_cumulative_incidence(self, X, times, return_interval: bool = False):
        """Predicted state probabilities, shape (n_samples, 3, n_times): event-free, relapse, TRM.

        ``times`` in the unit of ``y['time']`` (days for nbrisk cohorts). ``return_interval=True`` raises
        ``NotImplementedError``: boosting has no closed-form interval (use ``BootstrapIntervals``).
        """
        if return_interval:
            raise NotImplementedError(
                "CauseSpecificBoosting gives no closed-form intervals; wrap it in "
                "nbrisk.models.intervals.BootstrapIntervals for bootstrap intervals"
            )
        times = np.atleast_1d(np.asarray(times, dtype=float))
        risk = np.exp(self.predict_log_relative_hazard(X))
        # hazard jumps after the last requested time cannot change the answer: drop them to save work
        m = int(np.searchsorted(self.time_grid_, times.max(), side="right")) if len(times) else 0
        grid, h0 = self.time_grid_[:m], self.baseline_hazard_[:, :m]
        out = np.empty((risk.shape[0], 3, len(times)))
        for start in range(0, risk.shape[0], _PREDICT_BLOCK):
            r = risk[start : start + _PREDICT_BLOCK]
            dh1 = r[:, [0]] * h0[0][None, :]
            dh2 = r[:, [1]] * h0[1][None, :]
            out[start : start + _PREDICT_BLOCK] = cif_from_cause_specific_hazards(grid, dh1, dh2, times)
        return out

    # xgboost boosters pickle through their raw model bytes; doing it explicitly keeps pickles independent of
    # xgboost's own pickling path and lets the bytes be inspected (UBJSON).
    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ may return __dict__ itself
        if "boosters_" in state:
            state["boosters_"] = [
                None if b is None else bytes(b.save_raw(raw_format="ubj")) for b in state["boosters_"]
            ]
        return state

    def __setstate__(self, state):
        if "boosters_" in state:
            boosters = []
            for raw in state["boosters_"]:
                if raw is None:
                    boosters.append(None)
                    continue
                b = xgb.Booster()
                b.load_model(bytearray(raw))
                boosters.append(b)
            state["boosters_"] = boosters
        super().__setstate__(state)
