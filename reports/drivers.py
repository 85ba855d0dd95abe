"""The inputs that move this patient's predicted hazards most, named as the model uses them.

For a regression model (cause-specific Cox, Fine–Gray) the linear predictor is a sum over feature columns of
β_kj (x_j − x̄_j) (x̄ the training mean): a column's share is its contribution, in log hazard-ratio units, relative to
the training cohort's average patient. Columns are grouped by the record field they are made from (all levels of a
category together); a group made of derived predictors is named after them ("age at HSCT over 10 years", not the two
fields it is computed from, Ladenstein et al. 2008). An effect that changes with time after HSCT (the clinical Cox's
disease status at HSCT, with knots at 6 and 12 months) is shown period by period and ranked by its largest period,
so a status whose effect starts after 6 months is not hidden by a small early hazard ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nbrisk.core import DAYS_PER_MONTH
from nbrisk.reports.inputs import ModelInputs
from nbrisk.reports.record import display_value

#: Number of drivers shown per outcome.
N_DRIVERS = 3
#: Plain names of the feature pipeline's derived predictor columns (the one-hot columns are named by their field).
COLUMN_LABELS = {
    "age_at_hsct_years": "Age at HSCT",
    "age_at_hsct_over_10y": "Age at HSCT over 10 years",
    "age_at_diagnosis_over_18m": "Age at diagnosis 18 months or older",
    "years_diagnosis_to_hsct": "Time from diagnosis to HSCT",
    "relapsed_dx_to_hsct_0_18m": "Time from diagnosis to HSCT in relapsed disease",
    "relapsed_dx_to_hsct_18_36m": "Time from diagnosis to HSCT in relapsed disease",
    "relapsed_dx_to_hsct_over_36m": "Time from diagnosis to HSCT in relapsed disease",
    "metastatic_sites": "Metastatic sites at diagnosis",
    "prior_auto_hsct_any": "Prior autologous HSCT",
    "prior_auto_hsct_tandem": "Prior tandem autologous HSCT",
    "curie_score_over_2": "MIBG Curie score > 2 at HSCT",
    "curie_score": "MIBG Curie score at HSCT",
    "kir_ligand_mismatch_haplo": "KIR-ligand mismatch with a haploidentical donor",
    "residual_burden": "Residual disease markers at HSCT",
    "lansky_below_90": "Lansky score below 90",
    "log10_ldh": "LDH at diagnosis",
    "log10_cd34_dose": "CD34+ cell dose",
    "era": "Year of HSCT (era)",
    "marrow_tumor_percent": "Bone-marrow tumour at HSCT",
}


@dataclass(frozen=True)
class Driver:
    """One input's contribution to the log hazard of ``outcome`` relative to the training cohort's average patient.

    ``periods`` holds ``(label, log_hr)`` per period after HSCT when the effect changes with time (else one entry
    with an empty label); ``log_hr`` is the period with the largest absolute effect (the ranking key).
    """

    outcome: str
    key: str
    label: str
    value: str
    log_hr: float
    periods: tuple[tuple[str, float], ...] = ()

    @property
    def hazard_ratio(self) -> float:
        return float(math.exp(self.log_hr))

    @property
    def direction(self) -> str:
        """``higher``, ``lower`` or ``changes`` (a time-varying effect that raises the hazard in one period and
        lowers it in another)."""
        signs = {v > 0 for _, v in self.periods if abs(v) > 1e-9}
        if len(signs) > 1:
            return "changes"
        return "higher" if self.log_hr > 0 else "lower"


def _period_labels(knots_days: np.ndarray) -> list[str]:
    months = [f"{k / DAYS_PER_MONTH:g}" for k in knots_days]
    edges = ["0", *months]
    labels = [f"{a}–{b} mo" for a, b in zip(edges[:-1], months, strict=True)]
    return [*labels, f"after {months[-1]} mo"]


def _period_contributions(cr: Any, X: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(periods, 2, p) contributions β_kj(period) (x_j − x̄_j) and the period labels (one period without knots)."""
    first = np.asarray(cr.contributions(X), dtype=float)[0]  # (2, p), first period
    knots = np.asarray(getattr(cr, "knots_", np.empty(0)), dtype=float)
    tv_idx = np.asarray(getattr(cr, "time_varying_features_", np.empty(0, dtype=int)), dtype=int)
    if knots.size == 0 or tv_idx.size == 0:
        return first[None], [""]
    out = np.repeat(first[None], knots.size + 1, axis=0)
    dx = np.asarray(X, dtype=float)[0, tv_idx] - np.asarray(cr.center_, dtype=float)[tv_idx]
    for q in range(knots.size):
        out[q + 1][:, tv_idx] += np.asarray(cr.tv_coef_, dtype=float)[:, q, :] * dx[None, :]
    return out, _period_labels(knots)


def _group_label(key: str, cols: list[str], fields: dict[str, Any]) -> str:
    spec = fields.get(key)
    derived = [COLUMN_LABELS[c] for c in cols if c in COLUMN_LABELS]
    if derived and (spec is None or "+" in key or all(c in COLUMN_LABELS for c in cols)):
        labels = list(dict.fromkeys(derived))
        # "Time from diagnosis to HSCT" and "... in relapsed disease" are one input: keep the shorter name
        kept = [x for x in labels if not any(y != x and x.startswith(y) for y in labels)]
        return " / ".join(kept)
    return spec.label if spec is not None else key.replace("_", " ")


def _group_value(key: str, cols: list[str], xrow: pd.Series, row: pd.Series, fields: dict[str, Any]) -> str:
    if key == "age_at_diagnosis_months+months_diagnosis_to_hsct":
        age = (float(row["age_at_diagnosis_months"]) + float(row["months_diagnosis_to_hsct"])) / 12.0
        return f"{age:.1f} years at HSCT"
    parts = [p for p in key.split("+") if p in fields and p in row.index]
    return ", ".join(display_value(fields[p], row.get(p)) for p in parts)


def compute_drivers(
    risk_model: Any,
    typed: pd.DataFrame,
    used: ModelInputs,
    n: int = N_DRIVERS,
    also: dict[str, set[str]] | None = None,
) -> tuple[Driver, ...]:
    """The ``n`` used inputs with the largest absolute log-hazard contribution per outcome (none for tree models).

    ``also`` maps an outcome to record fields listed in any case (after the top ``n``): the report passes the
    fields whose what-if row moves that outcome's 2-year risk a lot, so a large what-if never meets a silent driver
    table (a patient near the cohort's average on an input can still gain much from changing it).
    """
    also = also or {}
    from nbrisk.features.record import FIELDS

    cr = risk_model.illness_death.cr_model_
    if not callable(getattr(cr, "contributions", None)):
        return ()
    X = risk_model.transform(typed)
    contrib, labels = _period_contributions(cr, X.to_numpy(dtype=float))
    source = risk_model.feature_pipeline.feature_source_
    names = list(X.columns)
    keep = set(used.columns)
    groups: dict[str, list[int]] = {}
    for j, col in enumerate(names):
        if col in keep:
            groups.setdefault(source.get(col, col), []).append(j)
    row, xrow = typed.iloc[0], X.iloc[0]
    out: list[Driver] = []
    for k, outcome in enumerate(("relapse", "trm")):
        items: list[Driver] = []
        for key, idx in groups.items():
            per_period = contrib[:, k, idx].sum(axis=1)  # (periods,)
            if not np.all(np.isfinite(per_period)) or np.max(np.abs(per_period)) < 1e-9:
                continue
            top = int(np.argmax(np.abs(per_period)))
            cols = [names[j] for j in idx]
            varies = len(labels) > 1 and np.ptp(per_period) > 1e-9
            items.append(
                Driver(
                    outcome,
                    key,
                    _group_label(key, cols, FIELDS),
                    _group_value(key, cols, xrow, row, FIELDS),
                    float(per_period[top]),
                    tuple(zip(labels, per_period.tolist(), strict=True)) if varies else (),
                )
            )
        items.sort(key=lambda d: (-abs(d.log_hr), d.key))
        chosen = items[:n]
        chosen += [d for d in items[n:] if d.key in also.get(outcome, set())]
        out.extend(chosen)
    return tuple(out)
