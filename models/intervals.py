"""Bootstrap percentile intervals for any competing-risks estimator (docs/statistics.md, "Intervals for a patient's
prediction": where no closed form is available, refit on resamples and take percentiles).

:class:`BootstrapIntervals` fits the base estimator on the data and on ``n_bootstrap`` resamples of patients
(with replacement, same size; Efron & Tibshirani 1993, ch. 13) and returns, for each patient, time and state, the
2.5% and 97.5% percentiles of the replicates' predictions. The interval is widened where needed so that
lower ≤ estimate ≤ upper (the estimate comes from the fit on all data, which can sit at the edge of the bootstrap
distribution, e.g. a CIF of 0 before the first event).

Honest by construction: the whole estimator — including any tuning it does inside ``fit`` — is refitted on every
resample, so the interval reflects the estimator's sampling variability, not a model-based approximation. It is
pointwise (per time and state), not a simultaneous band. For Cox models prefer the built-in
``CauseSpecificCox(n_bootstrap=…)`` / ``IllnessDeathModel(n_bootstrap=…)``, which evaluate all replicates at once in
closed form.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from nbrisk.models._base import (
    CompetingRisksEstimator,
    bootstrap_draws,
    check_competing_risks_target,
    percentile_interval,
    refit_on_resamples,
)


def _rows(data, idx: np.ndarray):
    return data.iloc[idx].reset_index(drop=True) if hasattr(data, "iloc") else np.asarray(data)[idx]


class BootstrapIntervals(CompetingRisksEstimator):
    """Meta-estimator: a competing-risks estimator plus 95% bootstrap percentile intervals for its predictions.

    Parameters
    ----------
    estimator : unfitted estimator with ``fit(X, y)`` and ``predict_cumulative_incidence(X, times)``.
    n_bootstrap : number of resamples (50 gives stable 95% percentiles to about ±1–2 percentage points of
        coverage; use more for publication). random_state : seed of the resamples (None: fresh randomness, as in
        scikit-learn). n_jobs : parallel refits (joblib).
    level : coverage of the pointwise intervals.

    Attributes
    ----------
    estimator_ : the estimator fitted on all data (gives the point estimate).
    estimators_ : the ``n_bootstrap`` refitted replicates. n_not_converged_ : replicates whose fit warned that it did
        not converge (kept; e.g. a rare covariate separated the events on a resample).
    """

    supports_intervals = True

    def __init__(self, estimator=None, n_bootstrap: int = 50, random_state=None, n_jobs: int = 1, level: float = 0.95):
        self.estimator = estimator
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.level = level

    def fit(self, X, y, **fit_params):
        """Fit the estimator on (X, y) and on ``n_bootstrap`` patient resamples."""
        if self.estimator is None:
            raise ValueError("BootstrapIntervals needs an estimator")
        if int(self.n_bootstrap) < 2:
            raise ValueError("n_bootstrap must be >= 2 for percentile intervals")
        check_competing_risks_target(y)
        self._set_features(X)
        base = self.estimator
        if "n_bootstrap" in base.get_params():  # no bootstrap inside the bootstrap
            base = clone(base).set_params(n_bootstrap=0)
        self.estimator_ = clone(base).fit(X, y, **fit_params)

        draws = bootstrap_draws(self.random_state, len(y), self.n_bootstrap)
        self.estimators_, self.n_not_converged_ = refit_on_resamples(
            _refit_clone, draws, self.n_jobs, data=(base, X, y, fit_params)
        )
        return self

    def predict_cumulative_incidence(self, X, times, return_interval: bool = False):
        """(n, 3, k) event-free, cause 1, cause 2 from the full-data fit; with ``return_interval`` also the
        percentile bounds of the replicates, ``(estimate, lower, upper)``."""
        check_is_fitted(self, "estimators_")
        est = self.estimator_.predict_cumulative_incidence(X, times)
        if not return_interval:
            return est
        reps = np.stack([m.predict_cumulative_incidence(X, times) for m in self.estimators_])
        lo, hi = percentile_interval(reps, est, level=self.level)
        return est, lo, hi

    @property
    def coef_(self):
        """The full-data fit's coefficients (regression models only)."""
        return self.estimator_.coef_

    def contributions(self, X):
        """Delegates to the full-data fit (regression models only)."""
        return self.estimator_.contributions(X)


def _refit_clone(idx, base, X, y, fit_params):
    """One replicate: a clone of ``base`` fitted on the resample ``idx`` (module level: see refit_on_resamples)."""
    return clone(base).fit(_rows(X, idx), _rows(y, idx), **fit_params)
