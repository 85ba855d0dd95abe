"""The patient report's content as a pure, frozen summary object (computed once, then rendered).

:func:`build_patient_summary` validates one record with the record contract (as the HTTP service does), asks the
fitted :class:`~nbrisk.models.risk_model.RiskModel` for everything the report shows and returns a
:class:`PatientSummary`. Nothing here draws or formats: plots (:mod:`nbrisk.reports.plots`) and HTML/PDF
(:mod:`nbrisk.reports.render`) only read the summary. The numbers of the 1/2/3/5-year table, the headline, the
plain-language sentence and the icon array all come from ``RiskModel.predict(validated_record, (12, 24, 36, 60))``
— the very call behind ``POST /v1/risk`` — so the report can never disagree with the API.

The parts live in their own modules: the record (:mod:`~nbrisk.reports.record`), the inputs the model reads and
its warnings (:mod:`~nbrisk.reports.inputs`), the drivers (:mod:`~nbrisk.reports.drivers`), the what-if rows
(:mod:`~nbrisk.reports.whatif`), the cohort comparisons (:mod:`~nbrisk.reports.cohort`) and the provenance
(:mod:`~nbrisk.reports.provenance`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nbrisk.core import (
    DEFAULT_HORIZONS_MONTHS,
    INTENDED_USE,
    RISK_GROUP_TITLES,
    SYNTHETIC_LABEL,
    Band,
    ObservedGroup,
    RiskCurves,
    training_summary_of,
)
from nbrisk.reports.cohort import CohortPosition, cohort_positions, similar_group
from nbrisk.reports.drivers import Driver, compute_drivers
from nbrisk.reports.inputs import InputGroup, model_inputs
from nbrisk.reports.inputs import input_sections as _input_sections
from nbrisk.reports.provenance import Provenance, provenance
from nbrisk.reports.record import PatientReportError, json_value, validate_patient
from nbrisk.reports.whatif import KEY_HORIZON_MONTHS, Interval, WhatIf, compute_whatifs, interval

__all__ = ["PatientReportError", "PatientSummary", "build_patient_summary", "icon_counts"]

#: Horizons (months) of the report's table: 1, 2, 3 and 5 years (the defaults of ``/v1/risk``).
TABLE_HORIZONS_MONTHS: tuple[int, ...] = tuple(DEFAULT_HORIZONS_MONTHS)
#: Plot horizon grid (months): monthly to 5 years; month 0 (everyone alive and event-free) is prepended exactly.
PLOT_MONTHS = np.arange(1.0, 61.0, 1.0)
#: Below this training size (or fewer events of a cause than ``SMALL_EVENTS``) the report warns about imprecision.
SMALL_COHORT_N = 300
SMALL_EVENTS = 50

LIMITATIONS: tuple[str, ...] = (
    "Predictors are only what is known before day 0; events after HSCT (GVHD, chimerism, DLI) are not taken into "
    "account.",
    "Drivers and what-if rows are associations learned from observational data, not causal effects: choosing a "
    "different donor or conditioning for this patient need not change the outcome as shown.",
    "Risks outside the range of the training data (see warnings) are extrapolations and less reliable.",
    "The model has not been externally validated in a prospective cohort.",
)


@dataclass(frozen=True)
class HorizonRow:
    """The table row of one horizon (months): relapse, TRM, EFS and OS with intervals."""

    months: float
    relapse: Interval
    trm: Interval
    efs: Interval
    os: Interval


@dataclass(frozen=True)
class IconArray:
    """Of 100 children like this one at ``months``: alive without relapse, relapsed, died of TRM (sum 100).

    Counts are the 2-year estimates in percent rounded by largest remainder, so they always add up to 100.
    """

    months: float
    event_free: int
    relapse: int
    trm: int


@dataclass(frozen=True)
class PatientSummary:
    """Everything the tumour-board report shows, computed (no formatting, no drawing)."""

    patient_id: str
    intended_use: str
    synthetic: bool
    synthetic_label: str | None
    inputs_used: tuple[InputGroup, ...]
    inputs_unused: tuple[InputGroup, ...]
    table: tuple[HorizonRow, ...]
    table_curves: RiskCurves  # exactly what RiskModel.predict returned for the table horizons (1 patient)
    key: HorizonRow  # the 2-year row (headline, icon array, sentence)
    icons: IconArray
    plain_language: str
    plot_months: np.ndarray  # (k,) months, from 0
    plot: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]  # outcome → (est, lo, hi), (k,) each
    cohort_months: np.ndarray  # (m,) months of the training cohort's observed curves
    cohort_curves: dict[str, np.ndarray]  # "relapse" / "trm" → observed Aalen–Johansen CIF, (m,)
    has_intervals: bool
    interval_note: str
    risk_group: str
    risk_group_title: str
    risk_group_text: str
    cohort: tuple[CohortPosition, ...]
    similar: ObservedGroup | None
    similar_note: str
    drivers: tuple[Driver, ...]
    drivers_note: str
    whatifs: tuple[WhatIf, ...]
    whatif_notes: tuple[str, ...]
    warnings: tuple[str, ...]
    provenance: Provenance
    limitations: tuple[str, ...] = field(default=LIMITATIONS)


def _band_row(band: Band, i: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    return (
        np.asarray(band.estimate[i], float),
        None if band.lower is None else np.asarray(band.lower[i], float),
        None if band.upper is None else np.asarray(band.upper[i], float),
    )


def _prepend_origin(months: np.ndarray, curves: RiskCurves) -> tuple[np.ndarray, dict]:
    """Curves over ``[0, months...]``: at day 0 everyone is alive and event-free, exactly (no model call)."""
    start = {"relapse": 0.0, "trm": 0.0, "efs": 1.0, "os": 1.0}
    out = {}
    for name, band in curves.bands().items():
        est, lo, hi = _band_row(band, 0)
        s = start[name]
        out[name] = (np.r_[s, est], None if lo is None else np.r_[s, lo], None if hi is None else np.r_[s, hi])
    return np.r_[0.0, months], out


def icon_counts(efs: float, relapse: float, trm: float) -> tuple[int, int, int]:
    """Three probabilities summing to 1 → whole children out of 100 summing to 100 (largest remainder)."""
    raw = np.array([efs, relapse, trm], dtype=float) * 100.0
    base = np.floor(raw).astype(int)
    short = 100 - int(base.sum())
    for j in np.argsort(-(raw - base), kind="stable")[: max(short, 0)]:
        base[j] += 1
    return int(base[0]), int(base[1]), int(base[2])


def plain_language(icons: IconArray, os_2y: float) -> str:
    """The headline in words a family could follow (numbers of children out of 100)."""
    alive = round(100 * os_2y)
    return (
        f"Of 100 children like this one, about {icons.event_free} would be alive without relapse 2 years after the "
        f"transplant, {icons.relapse} would have relapsed or progressed, and {icons.trm} would have died of "
        f"transplant complications. Counting children alive after a relapse, about {alive} of 100 would be alive."
    )


def _risk_group_text(group: str, cutoffs: tuple[float, float], efs_2y: float) -> str:
    lo, hi = cutoffs
    meaning = {
        "high": f"predicted 2-year EFS below {100 * lo:.0f}%",
        "intermediate": f"predicted 2-year EFS {100 * lo:.0f}–{100 * hi:.0f}%",
        "low": f"predicted 2-year EFS {100 * hi:.0f}% or more",
    }[group]
    return f"{meaning} (thirds of the training cohort); {100 * (1 - efs_2y):.1f}% relapse or TRM by 2 years."


def _interval_note(s: Any, has_intervals: bool) -> str:
    if not has_intervals:
        return "This model gives no intervals" + (f" ({s.interval_statement})." if s.interval_statement else ".")
    if s.interval_method == "bootstrap":
        how = (
            f"percentile intervals over {s.n_interval_bootstrap} refits of the model on bootstrap resamples of the "
            f"{s.n} training patients"
        )
    else:
        how = "the model's own interval method"
    measured = (
        f" Measured coverage of the true risk: {s.interval_coverage}."
        if s.interval_coverage
        else " Their coverage of the true risk was not measured for this model."
    )
    return (
        f"95% pointwise intervals ({how}): the uncertainty of the model's estimate for patients like this one, "
        "not the spread of individual outcomes." + measured
    )


def applicability_warnings(s: Any, synthetic: bool) -> tuple[str, ...]:
    """Warnings about the model's evidence base (training size and events)."""
    out = []
    if s.n < SMALL_COHORT_N:
        out.append(f"The model was trained on only {s.n} patients; predictions are imprecise.")
    for cause, label, name in (("relapse", "relapses", "Relapse"), ("trm", "transplant-related deaths", "TRM")):
        k = s.events.get(cause)
        if k is not None and k < SMALL_EVENTS:
            out.append(f"Only {k} {label} in the training data; {name} estimates are imprecise.")
    return tuple(out)


#: A what-if row that moves a cause's 2-year risk by at least this much (absolute) puts its input in the drivers.
LARGE_WHATIF = 0.10


def _large_whatifs(whatifs: tuple[WhatIf, ...]) -> dict[str, set[str]]:
    """Per outcome, the record fields whose what-if rows move its 2-year risk by ≥ :data:`LARGE_WHATIF`."""
    from nbrisk.reports.whatif import WHATIF_FIELDS

    out: dict[str, set[str]] = {"relapse": set(), "trm": set()}
    for w in whatifs:
        cur = next((c for c in whatifs if c.current and c.choice == w.choice), None)
        if cur is None or w.current:
            continue
        for outcome in out:
            if abs(getattr(w, outcome).estimate - getattr(cur, outcome).estimate) >= LARGE_WHATIF:
                out[outcome].add(WHATIF_FIELDS[w.choice])
    return out


def build_patient_summary(
    risk_model,
    record: Mapping[str, Any] | pd.DataFrame,
    model_info: Mapping[str, Any] | None = None,
    generated_at: dt.datetime | None = None,
) -> PatientSummary:
    """Compute the tumour-board report for one patient.

    Parameters
    ----------
    risk_model : fitted :class:`~nbrisk.models.risk_model.RiskModel` with a typed training summary.
    record : one patient in the record contract (JSON-like mapping or one-row DataFrame); validated here.
    model_info : the serving model's identity, as in ``/v1/risk``'s ``model`` block (``name``, ``version``,
        ``alias``, ``trained_at``, ``synthetic_training_data``) and, when known, the training ``run_id``.
    generated_at : report timestamp (default: now, UTC).

    Returns
    -------
    PatientSummary — probabilities in [0, 1], horizons in months after HSCT.
    """
    s = training_summary_of(risk_model)
    model_info = dict(model_info or {})
    typed = validate_patient(record)
    # The table: exactly the /v1/risk call (validated record, default horizons).
    table_curves: RiskCurves = risk_model.predict(typed, list(TABLE_HORIZONS_MONTHS))
    plot_curves: RiskCurves = risk_model.predict(typed, PLOT_MONTHS.tolist())
    months, plot = _prepend_origin(PLOT_MONTHS, plot_curves)
    bands = (table_curves.relapse, table_curves.trm, table_curves.efs, table_curves.os)
    table = tuple(
        HorizonRow(float(h), *(interval(b, 0, j) for b in bands))
        for j, h in enumerate(np.asarray(table_curves.horizons_months, float))
    )
    key = next(r for r in table if r.months == KEY_HORIZON_MONTHS)
    icons = IconArray(KEY_HORIZON_MONTHS, *icon_counts(key.efs.estimate, key.relapse.estimate, key.trm.estimate))
    has_intervals = table_curves.relapse.lower is not None
    risk_group = str(risk_model.risk_groups(table_curves)[0])
    when = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    rec_json = {k: json_value(v) for k, v in typed.iloc[0].to_dict().items()}
    prov = provenance(s, model_info, rec_json, when)
    used = model_inputs(risk_model)
    inputs_used, inputs_unused, input_warnings = _input_sections(risk_model, typed, used)
    whatifs, notes = compute_whatifs(risk_model, typed, used, table_curves)
    similar = similar_group(s, key.efs.estimate)
    drivers = compute_drivers(risk_model, typed, used, also=_large_whatifs(whatifs))
    return PatientSummary(
        patient_id=str(typed.iloc[0]["patient_id"]),
        intended_use=INTENDED_USE,
        synthetic=prov.synthetic,
        synthetic_label=SYNTHETIC_LABEL if prov.synthetic else None,
        inputs_used=inputs_used,
        inputs_unused=inputs_unused,
        table=table,
        table_curves=table_curves,
        key=key,
        icons=icons,
        plain_language=plain_language(icons, key.os.estimate),
        plot_months=months,
        plot=plot,
        cohort_months=np.asarray(s.cohort_months, float),
        cohort_curves={"relapse": np.asarray(s.cohort_relapse, float), "trm": np.asarray(s.cohort_trm, float)},
        has_intervals=has_intervals,
        interval_note=_interval_note(s, has_intervals),
        risk_group=risk_group,
        risk_group_title=RISK_GROUP_TITLES[risk_group],
        risk_group_text=_risk_group_text(risk_group, risk_model.risk_cutoffs, key.efs.estimate),
        cohort=cohort_positions(s, key.relapse.estimate, key.trm.estimate),
        similar=similar,
        similar_note=(
            ""
            if similar is not None
            else "Fewer than 10 training patients are similar to this one by the report's rule; none are shown."
        ),
        drivers=drivers,
        drivers_note="" if drivers else "This model does not break its prediction down by input.",
        whatifs=whatifs,
        whatif_notes=notes,
        warnings=input_warnings + applicability_warnings(s, prov.synthetic),
        provenance=prov,
    )
