"""Estimator contract and the functional core shared by every competing-risks model.

Every model in :mod:`nbrisk.models` follows the scikit-learn contract (``__init__`` only stores parameters, work in
``fit`` which returns ``self``, learned attributes end in ``_``) and the one prediction shape of this project:
``predict_cumulative_incidence(X, times)`` → array ``(n_samples, 3, n_times)`` with index 0 = event-free,
1 = relapse (cause 1), 2 = TRM (cause 2); ``times`` in the unit of ``y['time']`` (days for nbrisk cohorts).
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from nbrisk.core import Cause


def match_features(names, patterns, what: str = "features") -> np.ndarray:
    """Sorted indices of ``names`` matching any of the shell-style ``patterns`` (a str is one pattern).

    Raises ValueError naming a pattern that matches nothing (a typo would otherwise silently drop a predictor).
    """
    pats = [patterns] if isinstance(patterns, str) else list(patterns)
    names = [str(n) for n in names]
    hit: set[int] = set()
    for pat in pats:
        found = [j for j, name in enumerate(names) if fnmatch.fnmatchcase(name, pat)]
        if not found:
            raise ValueError(f"{what} pattern {pat!r} matches no feature")
        hit.update(found)
    return np.array(sorted(hit), dtype=int)


def used_columns(estimator, n_features: int, patterns) -> np.ndarray:
    """Indices of the columns an estimator with a ``features`` parameter uses: all of them when ``patterns`` is empty,
    else those matching (:func:`match_features`) the names seen in fit (``x0``, ``x1``, … for an array)."""
    if not patterns:
        return np.arange(n_features)
    return match_features(feature_names(estimator, n_features), patterns)


def feature_names(estimator, n_features: int) -> list[str]:
    """The column names seen in fit, or ``x0``, ``x1``, … when X was an array."""
    return [str(c) for c in getattr(estimator, "feature_names_in_", [f"x{j}" for j in range(n_features)])]


def percentile_interval(
    reps: np.ndarray, estimate: np.ndarray, level: float = 0.95, replicates_last: bool = False, overwrite: bool = False
):
    """Pointwise percentile interval over the first axis of ``reps``, widened to contain ``estimate``.

    The quantiles are numpy's default ("linear", type 7 of Hyndman & Fan 1996), computed by sorting the replicate axis
    moved last (contiguous: ~10× faster than ``np.quantile`` over a leading axis); a cell with a NaN replicate (a
    diverged refit) gets NaN bounds, as ``np.quantile`` gives.

    The bootstrap percentile interval of a quantity whose estimate sits at the edge of its bootstrap distribution
    (e.g. a CIF of 0 before the first event) may exclude the estimate by round-off or skew; the contract requires
    lower ≤ estimate ≤ upper, so the interval is clipped to include it.

    ``replicates_last``: the replicates are on the last axis of ``reps`` instead of the first; ``overwrite`` (with
    it): sort ``reps`` in place.
    """
    q = (1.0 - level) / 2.0
    reps = np.asarray(reps)
    if replicates_last and overwrite:
        reps.sort(axis=-1)  # in place: no copy of a large array (NaN sorts last)
        srt = reps
    elif replicates_last:
        srt = np.sort(reps, axis=-1)
    else:
        srt = np.sort(np.ascontiguousarray(np.moveaxis(reps, 0, -1)), axis=-1)
    R = srt.shape[-1]
    nan = np.isnan(srt[..., -1])

    def quantile(p):
        h = p * (R - 1)
        i = int(np.floor(h))
        j = min(i + 1, R - 1)
        a, b = srt[..., i], srt[..., j]
        return np.where(nan, np.nan, a + (h - i) * (b - a))

    return np.minimum(quantile(q), estimate), np.maximum(quantile(1.0 - q), estimate)


def bootstrap_draws(random_state, n: int, n_bootstrap: int) -> list[np.ndarray]:
    """Patient indices of ``n_bootstrap`` resamples of ``n`` patients with replacement, each of size ``n`` (Efron &
    Tibshirani 1993, ch. 6), drawn in order from ``check_random_state(random_state)``."""
    rng = check_random_state(random_state)
    return [rng.randint(0, n, size=n) for _ in range(int(n_bootstrap))]


def refit_on_resamples(
    fit: Callable[..., object], draws: Sequence[np.ndarray], n_jobs: int = 1, data: tuple = ()
) -> tuple[list, int]:
    """``fit(idx, *data)`` for every resample ``idx`` of ``draws``, in parallel (joblib ``Parallel``, so any joblib
    backend applies).

    Pass the training data through ``data`` and a module-level ``fit`` rather than a closure over the data: a
    cluster backend (joblib's Dask backend) then scatters each argument to the workers once per loop instead of
    shipping it with every refit.

    A resample can separate a rare covariate and a Cox-type fit then warns that it did not converge: such replicates
    are kept and counted rather than warned about one by one; any other warning is passed on as it came.

    Returns ``(fits, n_not_converged)``: the fitted replicates in the order of ``draws``.
    """
    out = Parallel(n_jobs=n_jobs)(delayed(_fit_counting_nonconvergence)(fit, idx, *data) for idx in draws)
    return [model for model, _ in out], int(sum(bad for _, bad in out))


def _fit_counting_nonconvergence(fit, idx, *data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = fit(idx, *data)
    bad = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in caught:  # anything but non-convergence on a resample is passed on
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return model, bad


class CIFCoherenceWarning(UserWarning):
    """Raised when cause-specific hazard increments had to be rescaled to keep F1 + F2 + EFS = 1."""


def check_competing_risks_target(y: pd.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a competing-risks target and return ``(event, time)``.

    Parameters
    ----------
    y : DataFrame with columns ``event`` (0 censored, 1 relapse / first cause, 2 TRM / second cause) and
        ``time`` (> 0), or a structured array with the same fields.

    Returns
    -------
    event : int array (n,), time : float array (n,)
    """
    if isinstance(y, pd.DataFrame):
        missing = {"event", "time"} - set(y.columns)
        if missing:
            raise ValueError(f"y must have columns 'event' and 'time'; missing {sorted(missing)}")
        event = y["event"].to_numpy()
        time = y["time"].to_numpy(dtype=float)
    elif isinstance(y, np.ndarray) and y.dtype.names is not None:
        event = y["event"]
        time = y["time"].astype(float)
    else:
        raise TypeError("y must be a DataFrame with columns 'event' and 'time'")
    event = np.asarray(event).astype(int)
    allowed = {int(c) for c in Cause}
    bad = set(np.unique(event).tolist()) - allowed
    if bad:
        raise ValueError(f"y['event'] must be 0 (censored), 1 (relapse) or 2 (TRM); found {sorted(bad)}")
    if not np.all(np.isfinite(time)) or np.any(time <= 0):
        raise ValueError("y['time'] must be finite and > 0")
    return event, time


def step_lookup(grid: np.ndarray, values: np.ndarray, times: np.ndarray, before: float) -> np.ndarray:
    """Evaluate right-continuous step functions at ``times``.

    ``grid`` (m,) sorted jump times, ``values`` (..., m) value after each jump, ``before`` the value before the first
    jump. Returns (..., len(times)).
    """
    idx = np.searchsorted(grid, np.asarray(times, dtype=float), side="right") - 1
    if values.shape[-1]:
        out = np.take(values, np.clip(idx, 0, None), axis=-1)
    else:
        out = np.zeros((*values.shape[:-1], len(idx)))
    return np.where(idx < 0, before, out)


def cif_from_cause_specific_hazards(
    event_times: np.ndarray, dh1: np.ndarray, dh2: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """Combine cause-specific hazard increments into CIFs by the product-limit rule.

    EFS(s) = Π_{u ≤ s} (1 − ΔΛ1(u) − ΔΛ2(u)); F_k(t) = Σ_{s ≤ t} EFS(s−) ΔΛ_k(s) (Aalen–Johansen form), so that
    F1 + F2 + EFS = 1 exactly. If ΔΛ1 + ΔΛ2 > 1 at a time the two are scaled so the sum is 1 (warning).

    Parameters
    ----------
    event_times : (m,) sorted distinct jump times.
    dh1, dh2 : (n, m) hazard increments of cause 1 and 2 per patient at ``event_times``.
    times : (k,) evaluation times.

    Returns
    -------
    (n, 3, k) array: event-free, cause 1, cause 2.
    """
    dh1 = np.clip(np.atleast_2d(np.asarray(dh1, dtype=float)), 0.0, None)
    dh2 = np.clip(np.atleast_2d(np.asarray(dh2, dtype=float)), 0.0, None)
    total = dh1 + dh2
    over = total > 1.0
    if np.any(over):
        warnings.warn(
            f"cause-specific hazard increments summed to > 1 at {int(over.sum())} patient-times; rescaled to 1",
            CIFCoherenceWarning,
            stacklevel=2,
        )
        scale = np.where(over, 1.0 / np.where(over, total, 1.0), 1.0)
        dh1, dh2, total = dh1 * scale, dh2 * scale, np.minimum(total, 1.0)
    efs = np.cumprod(1.0 - total, axis=1)
    efs_minus = np.concatenate([np.ones((efs.shape[0], 1)), efs[:, :-1]], axis=1)
    f1 = np.cumsum(efs_minus * dh1, axis=1)
    f2 = np.cumsum(efs_minus * dh2, axis=1)
    times = np.asarray(times, dtype=float)
    out = np.empty((dh1.shape[0], 3, len(times)))
    out[:, 1] = step_lookup(event_times, f1, times, 0.0)
    out[:, 2] = step_lookup(event_times, f2, times, 0.0)
    out[:, 1:] = np.clip(out[:, 1:], 0.0, 1.0)
    out[:, 0] = np.clip(1.0 - out[:, 1] - out[:, 2], 0.0, 1.0)
    return out


class CompetingRisksEstimator(BaseEstimator):
    """Base class: subclasses implement ``fit(X, y)`` and ``predict_cumulative_incidence``.

    ``supports_intervals`` tells whether ``predict_cumulative_incidence(X, times, return_interval=True)`` returns
    ``(estimate, lower, upper)``; a model that cannot give intervals raises ``NotImplementedError`` instead of
    returning a fake one.
    """

    supports_intervals: bool = False

    def predict_cumulative_incidence(self, X, times, return_interval: bool = False):  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def replicate_stack(cls, members: list):
        """The fast bootstrap-replicate hook: an object that evaluates all ``members`` at once, or ``None``.

        ``members`` are fitted estimators of one specification, the fit on all data first and then its bootstrap
        replicates (as :class:`~nbrisk.models.illness_death.IllnessDeathModel` holds them). A family whose
        predictions have a closed form returns an object with

        * ``extra_edges(t_max)`` → bin edges the caller must add below ``t_max`` (e.g. knots of time-varying
          effects), and
        * ``evaluate(X, Xa, edges, n_members)`` → ``(main, replicates)``: the first member's ``(n, 3, E)`` CIFs at
          ``edges``, and ``None`` when ``n_members`` is 1, else a callable ``replicates(a, b, small)`` giving EFS and
          relapse CIF of members ``1 … n_members − 1`` for patients ``a:b`` at the edges, two ``(E, R − 1, b − a)``
          arrays (``small``: the caller's hint that the chunk is small enough for whole-array work).

        The default, ``None``, makes the caller ask each replicate's ``predict_cumulative_incidence`` in turn:
        always correct, only slower. Examples: :meth:`nbrisk.models.cox.CauseSpecificCox.replicate_stack`,
        :meth:`nbrisk.models.fine_gray.FineGray.replicate_stack`.
        """
        return None

    def _check_X(self, X) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            if hasattr(self, "feature_names_in_") and list(X.columns) != list(self.feature_names_in_):
                raise ValueError(
                    "X columns differ from those seen in fit: "
                    f"expected {list(self.feature_names_in_)}, got {list(X.columns)}"
                )
            arr = X.to_numpy(dtype=float)
        else:
            arr = np.asarray(X, dtype=float)
        if arr.ndim != 2:
            raise ValueError("X must be 2-dimensional")
        if not np.all(np.isfinite(arr)):
            raise ValueError("X contains NaN or infinite values; impute first (the feature pipeline does)")
        return arr

    def _fit_data(self, X, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What every ``fit`` starts with: ``(X as a float array, event, time)`` after checking the target, X and
        that they have the same rows; the feature names and count seen in fit are stored."""
        event, time = check_competing_risks_target(y)
        self._set_features(X)
        Xa = self._check_X(X)
        if Xa.shape[0] != len(event):
            raise ValueError(f"X has {Xa.shape[0]} rows but y has {len(event)}")
        return Xa, event, time

    def _set_features(self, X) -> None:
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = int(np.asarray(X).shape[1])
