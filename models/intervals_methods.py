"""Alternative interval methods for a patient's predicted CIF, measured against the truth in ``benchmarks/worlds.py``.

The served intervals (when a configuration serves any) are the 95% percentile bootstrap of the whole illness–death
model (:mod:`nbrisk.models.illness_death`, :mod:`nbrisk.models.intervals`). On generator worlds whose effects are not
the model's specification that interval covers the *true* CIF far less often than 95%
(``benchmarks/results/worlds.md``): it measures resampling noise, not the model's error. The methods here are the
candidates the benchmark compares with it. None is served unless its coverage of the true CIF is 90–97% in every
world; each is a pure function of arrays, so the benchmark and the tests call exactly what would be served.

* :func:`bias_corrected_interval` — Efron's bias-corrected (BC) percentile interval (Efron 1981, Can J Stat 9:139;
  Efron & Tibshirani 1993, ch. 14): the percentiles are moved by ``z0 = Φ⁻¹(share of replicates below the
  estimate)``, which corrects the *median bias* of the bootstrap distribution (the acceleration of BCa needs a
  jackknife of the whole pipeline per training cohort and is left out).
* :func:`logit_wald_interval` — a studentised pivot on the logit scale with the bootstrap standard error:
  ``expit(logit F̂ ± z · SD*(logit F*))``. A full bootstrap-t (Efron & Tibshirani 1993, ch. 12.5) needs a standard
  error inside every replicate, i.e. B² refits (10,000 Cox fits per cohort at B = 100); the logit pivot is the
  affordable studentised form and corrects the skew of a CIF near 0.
* :func:`forest_ij_variance` — the bias-corrected infinitesimal jackknife (IJ-U) of Wager, Hastie & Efron 2014
  (JMLR 15:1625) for the cause-specific random survival forests of :mod:`nbrisk.models.forest`, from the trees' own
  in-bag counts: no refit at all.
* :func:`calibrated_half_width` — a width calibrated on held-out data: the bootstrap half-width combined with an
  allowance ``z · √(κ² d_i² + τ²)`` for model error, where ``d_i`` is the disagreement between the model and a
  reference (the mean of the other families' predictions), ``κ`` is learnt on a validation cohort by regressing the
  groups' Aalen–Johansen minus mean predicted CIF (the groups' mean pseudo-observation residual; Andersen & Perme
  2010, Stat Methods Med Res 19:71) on their mean disagreement, and ``τ²`` is the groups' residual variance beyond
  that and beyond their Aalen–Johansen sampling variance (a floor for error the reference does not see).
  Individual model error is not identifiable from binary outcomes, so this is the part of it that a held-out
  cohort can see: error along the direction in which other models disagree, and between groups.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit
from scipy.stats import norm

__all__ = [
    "bias_corrected_interval",
    "calibrated_half_width",
    "fit_disagreement_scale",
    "forest_ij_variance",
    "logit_wald_interval",
    "normal_interval",
]

_EPS = 1e-6


def bias_corrected_interval(reps: np.ndarray, estimate: np.ndarray, level: float = 0.95):
    """BC percentile interval from replicates ``reps`` (..., R) (replicates last) around ``estimate`` (...).

    ``z0 = Φ⁻¹(p)`` with ``p`` the share of replicates below the estimate (ties count half, and ``p`` is kept in
    [1/(2R), 1 − 1/(2R)] so that a CIF of 0 before the first event gives a finite shift); the bounds are the
    replicates' quantiles at ``Φ(2 z0 ± z_{1−α/2})``, widened to contain the estimate. Returns ``(lower, upper)``.
    """
    reps = np.sort(np.asarray(reps, dtype=float), axis=-1)
    est = np.asarray(estimate, dtype=float)
    R = reps.shape[-1]
    below = (reps < est[..., None]).sum(-1) + 0.5 * (reps == est[..., None]).sum(-1)
    p = np.clip(below / R, 0.5 / R, 1 - 0.5 / R)
    z0 = norm.ppf(p)
    z = norm.ppf(0.5 + level / 2)
    out = []
    for a in (norm.cdf(2 * z0 - z), norm.cdf(2 * z0 + z)):
        h = a * (R - 1)  # numpy's "linear" quantile (type 7), per cell
        i = np.clip(np.floor(h).astype(int), 0, R - 2)
        frac = h - i
        lo = np.take_along_axis(reps, i[..., None], -1)[..., 0]
        hi = np.take_along_axis(reps, i[..., None] + 1, -1)[..., 0]
        out.append(lo + frac * (hi - lo))
    return np.minimum(out[0], est), np.maximum(out[1], est)


def logit_wald_interval(reps: np.ndarray, estimate: np.ndarray, level: float = 0.95):
    """``expit(logit F̂ ± z · SD*)`` with SD* the replicates' standard deviation on the logit scale (replicates
    last). Returns ``(lower, upper)``."""
    z = norm.ppf(0.5 + level / 2)
    sd = np.std(logit(np.clip(np.asarray(reps, dtype=float), _EPS, 1 - _EPS)), axis=-1, ddof=1)
    centre = logit(np.clip(np.asarray(estimate, dtype=float), _EPS, 1 - _EPS))
    return expit(centre - z * sd), expit(centre + z * sd)


def normal_interval(estimate: np.ndarray, variance: np.ndarray, level: float = 0.95):
    """``F̂ ± z √V`` clipped to [0, 1], e.g. with the IJ variance. Returns ``(lower, upper)``."""
    z = norm.ppf(0.5 + level / 2)
    half = z * np.sqrt(np.maximum(np.asarray(variance, dtype=float), 0.0))
    est = np.asarray(estimate, dtype=float)
    return np.clip(est - half, 0.0, 1.0), np.clip(est + half, 0.0, 1.0)


def _in_bag_counts(forest, n_samples: int) -> np.ndarray:
    """(B, n) times each training patient was drawn for each tree of a fitted sksurv/scikit-learn forest."""
    from sklearn.ensemble._forest import _generate_sample_indices, _get_n_samples_bootstrap

    if not forest.bootstrap:
        raise ValueError("the infinitesimal jackknife needs a bootstrapped forest (bootstrap=True)")
    n_boot = _get_n_samples_bootstrap(n_samples, forest.max_samples, None)
    counts = np.zeros((len(forest.estimators_), n_samples))
    for b, tree in enumerate(forest.estimators_):
        idx = _generate_sample_indices(tree.random_state, n_samples, n_boot, None)
        counts[b] = np.bincount(idx, minlength=n_samples)
    return counts


def forest_ij_variance(model, X, times, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected infinitesimal-jackknife variance of a :class:`~nbrisk.models.forest.CauseSpecificForest`'s
    relapse and TRM CIFs (Wager, Hastie & Efron 2014, eqs. 5 and 7).

    The forest's CIF is a smooth function of the two forests' averaged cumulative hazards. Linearised, each tree
    ``b`` of the cause-``c`` forest contributes ``t_b`` = the CIFs computed with that tree's hazard for cause ``c``
    and the forest average for the other cause; the IJ influence of training patient ``i`` is
    ``U_i = Σ_c Cov_b(N^c_bi, t^c_b)`` (``N`` the in-bag counts; the two forests draw their own resamples but share
    the data, so the influences add), ``V_IJ = Σ_i U_i²``, and the Monte-Carlo bias ``(n / B²) Σ_b (t^c_b − t̄^c)²``
    of each forest is subtracted (IJ-U; floored at 0).

    Parameters: ``model`` a fitted ``CauseSpecificForest`` (``bootstrap=True``); ``X`` (n, p) the patients;
    ``times`` (k,) in the unit of its training times; ``n_train`` the number of training patients.
    Returns ``(estimate, variance)``, both (n, 2, k): relapse and TRM.
    """
    from nbrisk.models._base import cif_from_cause_specific_hazards

    arr = np.ascontiguousarray(model._check_X(X), dtype=np.float32)
    times = np.atleast_1d(np.asarray(times, dtype=float))
    tables = model._node_cumulative_hazards()
    per_tree: list[np.ndarray | None] = []
    mean_chf: list[np.ndarray] = []
    for forest, table in zip(model.forests_, tables, strict=True):
        if forest is None:
            per_tree.append(None)
            mean_chf.append(np.zeros((arr.shape[0], len(model.time_grid_))))
            continue
        chf = np.stack([t[tree.tree_.apply(arr)] for tree, t in zip(forest.estimators_, table, strict=True)])
        per_tree.append(chf)  # (B, n, m)
        mean_chf.append(chf.mean(0))

    def cifs(c1, c2):
        out = cif_from_cause_specific_hazards(
            model.time_grid_, np.diff(c1, axis=1, prepend=0.0), np.diff(c2, axis=1, prepend=0.0), times
        )
        return out[:, 1:]  # (n, 2, k)

    estimate = cifs(*mean_chf)
    U = np.zeros((n_train, *estimate.shape))
    mc_bias = np.zeros(estimate.shape)
    for c, (forest, tree_chf) in enumerate(zip(model.forests_, per_tree, strict=True)):
        if forest is None or tree_chf is None:
            continue
        chf = tree_chf
        B = chf.shape[0]
        t = np.stack([cifs(chf[b], mean_chf[1]) if c == 0 else cifs(mean_chf[0], chf[b]) for b in range(B)])
        t_c = t - t.mean(0)
        N = _in_bag_counts(forest, n_train)
        N_c = N - N.mean(0)
        U += np.tensordot(N_c, t_c, axes=(0, 0)) / B  # (n_train, n, 2, k)
        mc_bias += n_train / B**2 * np.sum(t_c**2, axis=0)
    variance = np.maximum(np.sum(U**2, axis=0) - mc_bias, 0.0)
    return estimate, variance


def fit_disagreement_scale(event, time, pred: np.ndarray, reference: np.ndarray, times, groups: int = 10):
    """``(κ, τ)``, each (C, k): how much of the model–reference disagreement is model error, and the residual model
    error beyond it, learnt on a held-out cohort.

    ``pred`` and ``reference`` are (n, C, k) CIFs of causes 1..C of the model and of the reference on the held-out
    patients. For each cause and horizon the patients are split into ``groups`` by the signed disagreement
    ``d = reference − pred``; with ``r_g`` = Aalen–Johansen − mean predicted CIF of group ``g`` (its mean
    pseudo-observation residual) and ``d̄_g`` its mean disagreement, κ is the weighted least-squares slope of ``r_g``
    on ``d̄_g`` through 0 (weights: the inverse Aalen–Johansen variance ``F(1 − F) / n_g``), kept in [0, 2]: 0 when
    the disagreement explains none of the held-out error, 1 when the reference is right. τ² is the mean over groups
    of ``(r_g − κ d̄_g)²`` minus the groups' Aalen–Johansen variance (inflated by 1/0.65 for censoring), floored at
    0 — the moment estimator of the between-group error variance (DerSimonian & Laird 1986's idea).
    """
    from nbrisk.models.nonparametric import aalen_johansen

    event, time = np.asarray(event).astype(int), np.asarray(time, dtype=float)
    pred, reference = np.asarray(pred, dtype=float), np.asarray(reference, dtype=float)
    times = np.asarray(times, dtype=float)
    kappa, tau = np.zeros(pred.shape[1:]), np.zeros(pred.shape[1:])
    for c in range(pred.shape[1]):
        for j, tj in enumerate(times):
            d = reference[:, c, j] - pred[:, c, j]
            cells = []  # per group: residual, mean disagreement, Aalen–Johansen variance (inflated for censoring)
            for g in np.array_split(np.argsort(d), groups):
                obs = float(aalen_johansen(time[g], event[g], c + 1).at(np.array([tj]))[0])
                cells.append((obs - pred[g, c, j].mean(), d[g].mean(), max(obs * (1 - obs), 1e-3) / len(g) / 0.65))
            r, dbar, v = np.asarray(cells, dtype=float).T
            denom = float(np.sum(dbar**2 / v))
            kappa[c, j] = float(np.clip(np.sum(dbar * r / v) / denom, 0.0, 2.0)) if denom > 0 else 0.0
            tau[c, j] = np.sqrt(max(0.0, float(np.mean((r - kappa[c, j] * dbar) ** 2 - v))))
    return kappa, tau


def calibrated_half_width(boot_half, pred, reference, kappa, tau, z: float = 1.96) -> np.ndarray:
    """Half-width ``√(h_i² + z² (κ² d_i² + τ²))`` (n, C, k): the bootstrap (or IJ) half-width ``h`` and the
    model-error allowance (``d = reference − pred``; κ, τ (C, k) from :func:`fit_disagreement_scale`)."""
    d = np.asarray(reference, dtype=float) - np.asarray(pred, dtype=float)
    allowance = (np.asarray(kappa)[None] * d) ** 2 + np.asarray(tau)[None] ** 2
    return np.sqrt(np.asarray(boot_half, dtype=float) ** 2 + z**2 * allowance)
