"""The patient beside the training cohort: percentile of the predicted risks, and how similar patients fared.

* :func:`cohort_positions` — where the patient's predicted 2-year relapse and TRM fall among the training cohort's
  (apparent) predictions, read off the stored percentiles (linear interpolation of the empirical CDF).
* :func:`similar_group` — the observed outcomes (Aalen–Johansen, with counts) of the training patients "like this
  one" by the documented rule: the same tenth of predicted 2-year event-free survival. Stored at training as
  aggregates only; a group of fewer than 10 patients is never stored, so none is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nbrisk.core import ObservedGroup, TrainingSummary


@dataclass(frozen=True)
class CohortPosition:
    """Where the patient's predicted 2-year risk of ``outcome`` falls among the training cohort's predictions.

    ``percentile`` is the share (0–100) of training patients with a lower prediction, clipped to the stored levels;
    ``levels``/``values`` are the stored training percentiles.
    """

    outcome: str
    label: str
    value: float
    percentile: float
    levels: tuple[float, ...]
    values: tuple[float, ...]


def cohort_positions(s: TrainingSummary, relapse_2y: float, trm_2y: float) -> tuple[CohortPosition, ...]:
    """Percentile of the patient's 2-year relapse and TRM predictions in the training cohort's predictions."""
    out = []
    for outcome, label, value in (("relapse", "Relapse", relapse_2y), ("trm", "TRM", trm_2y)):
        dist = s.predicted_2y_distribution[outcome]
        pairs = sorted((float(k.removeprefix("p")), float(v)) for k, v in dist.items())
        levels = np.array([p[0] for p in pairs])
        vals = np.maximum.accumulate(np.array([p[1] for p in pairs]))  # guard against rounding non-monotonicity
        pct = float(np.interp(value, vals, levels))
        out.append(CohortPosition(outcome, label, value, pct, tuple(levels.tolist()), tuple(vals.tolist())))
    return tuple(out)


def similar_group(s: TrainingSummary, efs_2y: float) -> ObservedGroup | None:
    """The stored group of training patients whose predicted 2-year EFS range holds ``efs_2y`` (``None`` if none)."""
    groups = sorted(s.similar_groups, key=lambda g: g.lo)
    for g in groups:
        if g.lo <= efs_2y <= g.hi:
            return g
    if groups and efs_2y < groups[0].lo:
        return groups[0] if groups[0].lo - efs_2y < 1e-9 else None
    return None
