"""Calibration in the large of predicted cumulative incidences, and its repair by a logistic shift.

*Calibration in the large* asks whether a model's **mean** predicted CIF of a cause at a horizon equals the observed
cumulative incidence of the cohort, estimated without covariates by the Aalen–Johansen estimator (which handles
censoring and the competing event; Aalen & Johansen 1978). It is the first level of the calibration hierarchy
(Van Calster et al. 2016, J Clin Epidemiol 74:167): a model can rank patients well and still be off by several
points for everyone, as flexible families often are out of sample (boosting's shrunken hazards, a forest's
averaging towards the middle).

Repair (Steyerberg 2019, *Clinical Prediction Models*, ch. 20: "recalibration in the large"): for each cause and
horizon, a constant ``a`` on the logit scale such that the mean of ``expit(logit F̂_i + a)`` over held-out patients
equals the Aalen–Johansen estimate. It keeps every patient's rank and the model's discrimination, and fixes the
intercept only (not the slope). The shift must be estimated on predictions the model did not train on
(out-of-fold or a validation cohort); between horizons it is interpolated linearly in time, and before the first
horizon it is scaled towards 0 at time 0 (a CIF is 0 at day 0).

A shift learnt on a held-out cohort carries that cohort's Aalen–Johansen error (≈ 1.5 points for relapse at
n = 1,000). Shifting a model that was already within that noise makes it *worse* on new patients half the time
(measured in ``benchmarks/results/worlds.md``). ``LogitShiftRecalibration(min_gap=, z=)`` therefore shifts a cause
and horizon only where the held-out gap is both material (``min_gap``, e.g. the promotion gate's 2 points) and
beyond sampling noise (``z`` Aalen–Johansen standard errors, Aalen's variance); the defaults (0, 0) shift every
cell, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit

from nbrisk.core import NbriskError

__all__ = [
    "LogitShiftRecalibration",
    "calibration_in_the_large",
    "cross_fitted",
    "logit_shift",
    "recalibrate_curves",
]

_EPS = 1e-6


def calibration_in_the_large(event, time, cif: np.ndarray, times: Sequence[float], cause: int) -> np.ndarray:
    """Mean predicted minus Aalen–Johansen observed CIF of ``cause`` at ``times`` (same unit as ``time``).

    ``cif`` is (n, k), the predicted CIF of the cause for each patient at each of the k ``times``. Returns (k,)
    differences (a positive value: the model over-predicts).
    """
    from nbrisk.models.nonparametric import aalen_johansen

    cif = np.asarray(cif, dtype=float)
    if cif.ndim != 2 or cif.shape[1] != len(times):
        raise NbriskError(f"cif must be (n, {len(times)}), got {cif.shape}")
    observed = aalen_johansen(np.asarray(time, dtype=float), np.asarray(event).astype(int), int(cause)).at(
        np.asarray(times, dtype=float)
    )
    return cif.mean(axis=0) - np.asarray(observed, dtype=float)


def logit_shift(pred: np.ndarray, target: float) -> float:
    """The constant ``a`` with mean(expit(logit(pred) + a)) = ``target`` (0 < target < 1), by Brent's method."""
    p = np.clip(np.asarray(pred, dtype=float), _EPS, 1 - _EPS)
    if not 0.0 < target < 1.0:
        raise NbriskError(f"target cumulative incidence must be in (0, 1), got {target}")
    z = logit(p)

    def gap(a: float) -> float:
        return float(np.mean(expit(z + a)) - target)

    lo, hi = -20.0, 20.0
    return float(brentq(gap, lo, hi, xtol=1e-10))


class LogitShiftRecalibration:
    """Per-cause logistic shifts of the CIF at fixed horizons, learnt on held-out predictions.

    ``fit(event, time, cif, times)``: ``cif`` (n, C, k) held-out predicted CIFs of causes 1..C (column c − 1 is
    cause c) at ``times``; learns ``shifts_`` (C, k) so that each mean equals the Aalen–Johansen estimate.
    ``transform(cif, times)``: applies the shifts at any times (linear interpolation between the horizons, flat after
    the last, scaled by t / t_1 before the first); the CIFs of the causes are then scaled together if their sum
    would exceed 1, so that the event-free probability stays ≥ 0.

    ``min_gap`` and ``z`` (keyword): a cell is shifted only if |mean predicted − Aalen–Johansen| exceeds both
    ``min_gap`` and ``z`` times the Aalen–Johansen standard error; otherwise its shift is 0 (see the module
    docstring). ``shifted_`` (C, k) says which cells were.
    """

    def __init__(self, *, min_gap: float = 0.0, z: float = 0.0):
        self.min_gap = min_gap
        self.z = z

    def fit(self, event, time, cif: np.ndarray, times: Sequence[float]) -> LogitShiftRecalibration:
        from nbrisk.models.nonparametric import aalen_johansen

        cif = np.asarray(cif, dtype=float)
        self.times_ = np.asarray(times, dtype=float)
        shifts = np.zeros((cif.shape[1], len(self.times_)))
        shifted = np.zeros(shifts.shape, dtype=bool)
        for c in range(cif.shape[1]):
            aj = aalen_johansen(np.asarray(time, dtype=float), np.asarray(event).astype(int), c + 1)
            observed = np.asarray(aj.at(self.times_), dtype=float)
            se = np.sqrt(np.maximum(np.asarray(aj.variance_at(self.times_), dtype=float), 0.0))
            gap = np.abs(cif[:, c].mean(axis=0) - observed)
            for j, target in enumerate(observed):
                shifted[c, j] = 0.0 < target < 1.0 and gap[j] > max(float(self.min_gap), float(self.z) * se[j])
                shifts[c, j] = logit_shift(cif[:, c, j], target) if shifted[c, j] else 0.0
        self.shifts_, self.shifted_ = shifts, shifted
        return self

    def shift_at(self, times: Sequence[float]) -> np.ndarray:
        """(C, k') shifts at ``times``."""
        t = np.asarray(times, dtype=float)
        out = np.stack([np.interp(t, self.times_, s) for s in self.shifts_])
        early = t < self.times_[0]
        out[:, early] *= (t[early] / self.times_[0])[None, :]
        return out

    def transform(self, cif: np.ndarray, times: Sequence[float]) -> np.ndarray:
        """Recalibrated copy of ``cif`` (n, C, k') at ``times``."""
        cif = np.clip(np.asarray(cif, dtype=float), _EPS, 1 - _EPS)
        out = expit(logit(cif) + self.shift_at(times)[None, :, :])
        total = out.sum(axis=1, keepdims=True)
        return np.where(total > 1.0, out / np.maximum(total, 1.0), out)


def recalibrate_curves(curves, recalibration: LogitShiftRecalibration):
    """:class:`~nbrisk.core.RiskCurves` with relapse and TRM recalibrated in the large (shifts learnt in months).

    EFS is 1 − relapse − TRM again; OS is kept within its coherence bounds [EFS, 1 − TRM] (OS ≥ EFS and
    1 − OS ≥ TRM, the illness–death invariants). Interval bounds, if any, move by the same transform (it is monotone,
    so a bound stays a bound of the transformed estimate); EFS and OS bounds move with their estimates.
    """
    from nbrisk.core import Band, RiskCurves

    h = np.asarray(curves.horizons_months, dtype=float)

    def pair(a, b):
        out = recalibration.transform(np.stack([a, b], axis=1), h)
        return out[:, 0], out[:, 1]

    rel, trm = pair(curves.relapse.estimate, curves.trm.estimate)
    # a shift that varies with time could bend a CIF down between horizons: keep both non-decreasing, coherent
    rel, trm = np.maximum.accumulate(rel, axis=1), np.maximum.accumulate(trm, axis=1)
    total = np.maximum((rel + trm).max(axis=1, keepdims=True), 1.0)  # one factor per patient keeps them monotone
    rel, trm = rel / total, trm / total
    efs = np.clip(1.0 - rel - trm, 0.0, 1.0)
    os_ = np.clip(curves.os.estimate, efs, 1.0 - trm)
    bands = {}
    if curves.relapse.lower is not None:
        rel_lo, trm_lo = pair(curves.relapse.lower, curves.trm.lower)
        rel_hi, trm_hi = pair(curves.relapse.upper, curves.trm.upper)
        d_efs, d_os = efs - curves.efs.estimate, os_ - curves.os.estimate
        bands = {
            "relapse": Band(rel, np.minimum(rel_lo, rel), np.maximum(rel_hi, rel)),
            "trm": Band(trm, np.minimum(trm_lo, trm), np.maximum(trm_hi, trm)),
            "efs": Band(efs, np.clip(curves.efs.lower + d_efs, 0, efs), np.clip(curves.efs.upper + d_efs, efs, 1)),
            "os": Band(os_, np.clip(curves.os.lower + d_os, 0, os_), np.clip(curves.os.upper + d_os, os_, 1)),
        }
    else:
        bands = {"relapse": Band(rel), "trm": Band(trm), "efs": Band(efs), "os": Band(os_)}
    return RiskCurves(curves.horizons_months, bands["relapse"], bands["trm"], bands["efs"], bands["os"])


def cross_fitted(event, time, cif: np.ndarray, times: Sequence[float], fold_of: np.ndarray) -> np.ndarray:
    """Out-of-fold predictions ``cif`` (n, C, k) recalibrated by shifts learnt on the *other* folds' patients.

    What the calibration in the large of a recalibrated model would be on patients its recalibration did not see
    (the shift learnt and judged on the same predictions would match the Aalen–Johansen estimate by construction).
    """
    out = np.empty_like(np.asarray(cif, dtype=float))
    event, time = np.asarray(event), np.asarray(time, dtype=float)
    for f in np.unique(fold_of):
        test = fold_of == f
        rec = LogitShiftRecalibration().fit(event[~test], time[~test], cif[~test], times)
        out[test] = rec.transform(cif[test], times)
    return out
