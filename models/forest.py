"""Cause-specific random survival forests for relapse vs TRM.

One :class:`sksurv.ensemble.RandomSurvivalForest` is grown per cause, the other cause being treated as censoring
(Ishwaran et al. 2008, Ann Appl Stat 2:841 for the forest; Ishwaran et al. 2014, Biostatistics 15:757 for competing
risks). Each forest's ensemble cumulative hazard is the average over trees of the Nelson–Aalen estimate in the leaf the
patient falls into, i.e. an estimate of the *cause-specific* cumulative hazard Λ_k(t | x). Its increments on the union
of event times are combined by the product-limit rule (:func:`nbrisk.models._base.cif_from_cause_specific_hazards`):

    EFS(s | x) = Π_{u ≤ s} (1 − ΔΛ_1(u | x) − ΔΛ_2(u | x)),   F_k(t | x) = Σ_{s ≤ t} EFS(s− | x) ΔΛ_k(s | x),

so that relapse + TRM + EFS = 1 exactly. With a single root-only tree and no bootstrap this is exactly the
Aalen–Johansen estimator (a property the tests check).

Rows per tree (``max_tree_samples``): at scale a tree need not see every patient. Each tree is grown on a bootstrap
sample of at most ``max_tree_samples`` rows (all n rows below it, so smaller cohorts are untouched) — ranger's
``sample.fraction`` and randomForestSRC's ``sampsize`` with an absolute cap. Forests grown on subsamples of size
a_n → ∞ with a_n / n → 0 stay consistent (Scornet, Biau & Vert 2015, Ann Stat 43:1716; Wager & Athey 2018, JASA
113:1228); the cost of a tree grows like a_n log a_n instead of n log n, and its leaves (``min_samples_leaf``
patients each) hold the same number of patients, so the leaf Nelson–Aalen curves are as stable as at a_n = n.
What is lost is the extra depth a tree could grow on more rows; with 100 trees per cause every patient is still in
~100 a_n / n trees' samples.

Memory: a survival tree stores the whole leaf curve at every distinct training time, so the fitted size grows as
(nodes × distinct times). Like ``randomForestSRC``'s ``ntime`` (default 150), ``max_time_points`` maps the training
times up to a grid of event-time quantiles before growing the trees; ``None`` keeps the exact times.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from sksurv.ensemble import RandomSurvivalForest

from nbrisk.core import CAUSES, Cause
from nbrisk.models._base import (
    CompetingRisksEstimator,
    cif_from_cause_specific_hazards,
)


def time_point_grid(time: np.ndarray, event: np.ndarray, max_points: int | None) -> np.ndarray | None:
    """Grid of at most ``max_points`` quantiles of the distinct event times, plus the largest observed time.

    Returns ``None`` when no coarsening is needed (``max_points`` is ``None`` or there are few event times).
    """
    if max_points is None:
        return None
    event_times = np.unique(time[event != Cause.CENSORED])
    if len(event_times) <= max_points:
        return None
    qs = np.quantile(event_times, np.linspace(0.0, 1.0, int(max_points)), method="higher")
    return np.unique(np.concatenate([qs, [time.max()]]))


def coarsen_times(time: np.ndarray, grid: np.ndarray | None) -> np.ndarray:
    """Map each time up to the smallest grid point ≥ it (events are counted at the end of their interval)."""
    if grid is None:
        return time
    return grid[np.searchsorted(grid, time, side="left")]


class CauseSpecificForest(CompetingRisksEstimator):
    """Cause-specific random survival forests combined into coherent cumulative incidence functions.

    Parameters
    ----------
    n_estimators : int, trees per cause.
    min_samples_leaf, min_samples_split, max_depth, max_features, bootstrap, max_samples :
        passed to each :class:`sksurv.ensemble.RandomSurvivalForest` (log-rank splitting, Nelson–Aalen leaves).
    max_time_points : int or None, default 150. Training times are mapped up to at most this many event-time
        quantiles (see the module docstring): bounds memory and pickle size; ``None`` = exact times.
    max_tree_samples : int or None, default None. Each tree's bootstrap sample has min(n, ``max_tree_samples``)
        rows (see the module docstring); ``None`` = n rows (or ``max_samples``). Below the cap the forest is the
        same, draw for draw, as without it. Cannot be combined with ``max_samples``; needs ``bootstrap``.
    n_jobs : int, threads per forest.
    random_state : int, RandomState or None; the two forests get seeds drawn from it.

    Attributes
    ----------
    forests_ : list of the two fitted forests, cause 1 (relapse) then cause 2 (TRM); ``None`` for a cause with no
        event in the training data (its hazard is then 0).
    time_grid_ : (m,) sorted distinct event times (any cause, after coarsening), in the unit of ``y['time']``.

    Intervals: not available in closed form (``supports_intervals = False``); wrap the estimator in
    :class:`nbrisk.models.intervals.BootstrapIntervals` for percentile intervals from refits.
    """

    supports_intervals = False

    def __init__(
        self,
        n_estimators: int = 200,
        min_samples_leaf: int = 15,
        max_features="sqrt",
        n_jobs: int = 1,
        random_state=None,
        *,
        min_samples_split: int = 6,
        max_depth: int | None = None,
        bootstrap: bool = True,
        max_samples=None,
        max_time_points: int | None = 150,
        max_tree_samples: int | None = None,
    ):
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.min_samples_split = min_samples_split
        self.max_depth = max_depth
        self.bootstrap = bootstrap
        self.max_samples = max_samples
        self.max_time_points = max_time_points
        self.max_tree_samples = max_tree_samples

    def _rows_per_tree(self, n: int):
        """``max_samples`` for sksurv: ``max_samples`` as given, or the cap when the cohort exceeds it."""
        cap = self.max_tree_samples
        if cap is None:
            return self.max_samples
        if isinstance(cap, bool) or not isinstance(cap, int | np.integer) or cap < 2:
            raise ValueError(f"max_tree_samples must be an integer >= 2 or None, got {cap!r}")
        if self.max_samples is not None:
            raise ValueError("give max_tree_samples or max_samples, not both")
        if not self.bootstrap:
            raise ValueError("max_tree_samples needs bootstrap=True (it sizes each tree's bootstrap sample)")
        # None below the cap: sklearn then draws n rows, exactly as a forest without the cap
        return int(cap) if n > cap else None

    def fit(self, X, y):
        """Grow one forest per cause on ``X`` (n, p) numeric and ``y`` (``event``, ``time``); returns ``self``."""
        arr, event, time = self._fit_data(X, y)
        if self.max_time_points is not None and int(self.max_time_points) < 2:
            raise ValueError("max_time_points must be >= 2 or None")
        grid = time_point_grid(time, event, self.max_time_points)
        time_c = coarsen_times(time, grid)
        if len(np.unique(time_c)) < 2:
            # sksurv's trees squeeze a single-time output to the wrong shape; nothing to learn from one time anyway
            raise ValueError("CauseSpecificForest needs at least 2 distinct times in y['time']")
        rows_per_tree = self._rows_per_tree(len(time))
        seeds = check_random_state(self.random_state).randint(0, np.iinfo(np.int32).max, size=len(CAUSES))
        self.forests_ = []
        for cause, seed in zip(CAUSES, seeds, strict=True):
            y_k = np.empty(len(time_c), dtype=[("event", bool), ("time", float)])
            y_k["event"] = event == cause
            y_k["time"] = time_c
            if not y_k["event"].any():
                # No event of this cause (a bootstrap resample or CV fold can lose rare TRM events): its
                # Nelson–Aalen hazard is 0 at every time, which is what the data say; no forest is grown.
                self.forests_.append(None)
                continue
            forest = RandomSurvivalForest(
                n_estimators=self.n_estimators,
                min_samples_leaf=self.min_samples_leaf,
                min_samples_split=self.min_samples_split,
                max_depth=self.max_depth,
                max_features=self.max_features,
                bootstrap=self.bootstrap,
                max_samples=rows_per_tree,
                n_jobs=self.n_jobs,
                random_state=int(seed),
                low_memory=False,  # low_memory forests cannot return the cumulative hazard we need
            )
            self.forests_.append(forest.fit(arr, y_k))
        self.time_grid_ = np.unique(time_c[event != Cause.CENSORED])
        self._node_chf_cache = None
        return self

    def predict_cumulative_hazard_increments(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Cause-specific hazard increments ΔΛ_k(s | x) at ``time_grid_``: two arrays of shape (n, m)."""
        check_is_fitted(self, "forests_")
        arr = self._check_X(X)
        X32 = np.ascontiguousarray(arr, dtype=np.float32)  # the dtype sksurv's trees are grown on
        out = []
        for forest, node_chf in zip(self.forests_, self._node_cumulative_hazards(), strict=True):
            # Same numbers as forest.predict_cumulative_hazard_function (leaf Nelson–Aalen curves averaged over
            # trees), read straight from the leaves: sksurv's per-tree checks and thread pool cost ~0.4 ms per
            # tree, which dominated the time for one patient.
            chf = np.zeros((arr.shape[0], len(self.time_grid_)))
            if forest is None:  # no event of this cause in training: zero hazard
                out.append(chf)
                continue
            for tree, table in zip(forest.estimators_, node_chf, strict=True):
                chf += table[tree.tree_.apply(X32)]
            chf /= len(forest.estimators_)
            out.append(np.diff(chf, axis=1, prepend=0.0))
        return out[0], out[1]

    def _node_cumulative_hazards(self) -> list[list[np.ndarray]]:
        """Per forest, per tree: (nodes, m) cumulative hazard of every node at ``time_grid_`` (cached, not pickled).

        sksurv keeps each node's curve at every distinct training time with its survival curve interleaved;
        gathering the grid columns once makes a prediction one small table lookup per tree.
        """
        cache = getattr(self, "_node_chf_cache", None)
        if cache is None:
            cache = []
            for forest in self.forests_:
                if forest is None:
                    cache.append(None)
                    continue
                pos = np.searchsorted(forest.unique_times_, self.time_grid_)
                # value[..., 0] is each node's Nelson–Aalen cumulative hazard, value[..., 1] its survival
                cache.append([np.ascontiguousarray(t.tree_.value[:, pos, 0]) for t in forest.estimators_])
            self._node_chf_cache = cache
        return cache

    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ may return __dict__ itself
        state.pop("_node_chf_cache", None)  # derived from the trees; rebuilt on first prediction
        return state

    def predict_cumulative_incidence(self, X, times, return_interval: bool = False):
        """Predicted state probabilities, shape (n_samples, 3, n_times): event-free, relapse, TRM.

        ``times`` in the unit of ``y['time']`` (days for nbrisk cohorts). ``return_interval=True`` raises
        ``NotImplementedError``: a forest has no closed-form interval (use ``BootstrapIntervals``).
        """
        if return_interval:
            raise NotImplementedError(
                "CauseSpecificForest gives no closed-form intervals; wrap it in "
                "nbrisk.models.intervals.BootstrapIntervals for bootstrap intervals"
            )
        dh1, dh2 = self.predict_cumulative_hazard_increments(X)
        return cif_from_cause_specific_hazards(self.time_grid_, dh1, dh2, np.atleast_1d(times))
