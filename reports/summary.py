"""The patient report's content as a pure, frozen summary object (computed once, then rendered).

:func:`build_patient_summary` validates one record with the record contract (:func:`nbrisk.features.record.
validate_record`, as the HTTP service does), asks the fitted :class:`~nbrisk.models.risk_model.RiskModel` for
everything the report shows and returns a :class:`PatientSummary`. Nothing here draws or formats: plots
(:mod:`nbrisk.reports.plots`) and HTML/PDF (:mod:`nbrisk.reports.render`) only read the summary. The numbers in the
1/2/3/5-year table come from ``RiskModel.predict(validated_record, (12, 24, 36, 60))`` — the very call behind
``POST /v1/risk`` — so the report can never disagree with the API.

What-if rows re-predict *modified copies* of the record through the same model (a different donor type,
conditioning intensity, or complete remission before HSCT). They describe how the model's predictions differ between
patients who differ in that respect: associations learned from observational data, not causal effects of choosing
differently.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nbrisk.core import DEFAULT_HORIZONS_MONTHS, SYNTHETIC_LABEL, Band, NbriskError, RiskCurves

#: Horizons (months) of the report's table: 1, 2, 3 and 5 years (the defaults of ``/v1/risk``).
TABLE_HORIZONS_MONTHS: tuple[int, ...] = tuple(DEFAULT_HORIZONS_MONTHS)
#: Plot horizon grid (months): monthly to 5 years; month 0 (everyone alive and event-free) is prepended exactly.
PLOT_MONTHS = np.arange(1.0, 61.0, 1.0)
#: Horizon (months) of the what-if rows and of the cohort comparison.
KEY_HORIZON_MONTHS = 24
#: Number of drivers shown per outcome.
N_DRIVERS = 3
#: Below this training size (or fewer events of a cause than ``SMALL_EVENTS``) the report warns about imprecision.
SMALL_COHORT_N = 300
SMALL_EVENTS = 50

INTENDED_USE = (
    "Decision support for multidisciplinary tumour boards discussing allogeneic HSCT for children and young adults "
    "(age 0.5–25 years at HSCT) with stage M (INRG) / stage 4 (INSS) neuroblastoma, refractory, relapsed or "
    "very-high-risk. It estimates risks for groups of patients similar to this one; it does not decide treatment "
    "and does not replace clinical judgement."
)
LIMITATIONS: tuple[str, ...] = (
    "Predictors are only what is known before day 0; events after HSCT (GVHD, chimerism, DLI) are not taken into "
    "account.",
    "Intervals are 95% pointwise intervals for a patient with these characteristics; they reflect the uncertainty "
    "of the model's estimates, not the spread of individual outcomes.",
    "Drivers and what-if rows are associations learned from observational data. They are not causal effects: "
    "choosing a different donor or conditioning for this patient need not change the outcome as shown.",
    "Risks outside the range of the training data (see warnings) are extrapolations and less reliable.",
    "The model has not been externally validated in a prospective cohort.",
)
_GROUP_TITLES = {
    "disease": "Disease at diagnosis",
    "pre_transplant_status": "Status before transplant",
    "donor_graft": "Donor and graft",
    "conditioning": "Conditioning and plan",
}
_NUMERIC_KINDS = ("number", "integer")
#: What-if choice → the record field it changes.
_WHATIF_FIELDS = {
    "Donor type": "donor_type",
    "Conditioning intensity": "conditioning_intensity",
    "Disease status at HSCT": "disease_status_at_hsct",
}
#: An option fewer training patients had than this is flagged as an extrapolation in the what-if table.
FEW_TRAINING_PATIENTS = 20
_UNKNOWN = "unknown"


class PatientReportError(NbriskError):
    """The patient record cannot be reported on (invalid record). ``problems`` lists every problem found."""

    exit_code = 1

    def __init__(self, problems: Sequence[Any]):
        self.problems = list(problems)
        parts = [f"{getattr(p, 'field', '?')}: {getattr(p, 'rule', p)}" for p in self.problems]
        shown = "; ".join(parts[:8]) + (f"; … ({len(parts) - 8} more)" if len(parts) > 8 else "")
        super().__init__(f"invalid patient record ({len(parts)} problem(s)): {shown}")


# ----------------------------------------------------------------------------------------------------------------
# the summary object


@dataclass(frozen=True)
class Interval:
    """A probability with its 95% interval (``lower``/``upper`` ``None`` when the model gives none)."""

    estimate: float
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True)
class InputRow:
    """One input echoed back: ``status`` is ``""`` (given), ``"missing"`` (imputed by the model) or ``"unknown"``."""

    field: str
    label: str
    value: str
    status: str = ""


@dataclass(frozen=True)
class InputGroup:
    title: str
    rows: tuple[InputRow, ...]


@dataclass(frozen=True)
class HorizonRow:
    """The table row of one horizon (months): relapse, TRM, EFS and OS with intervals."""

    months: float
    relapse: Interval
    trm: Interval
    efs: Interval
    os: Interval


@dataclass(frozen=True)
class CohortPosition:
    """Where the patient's predicted 2-year risk of ``outcome`` falls among the training cohort's predictions.

    ``percentile`` is the share (0–100) of training patients with a lower prediction (``None`` when the model
    stores no training distribution); ``levels``/``values`` are the stored training percentiles.
    """

    outcome: str
    label: str
    value: float
    percentile: float | None
    levels: tuple[float, ...] = ()
    values: tuple[float, ...] = ()


@dataclass(frozen=True)
class Driver:
    """One input's contribution to the log cause-specific hazard of ``outcome`` (vs the model's reference)."""

    outcome: str
    field: str
    label: str
    value: str
    log_hr: float

    @property
    def hazard_ratio(self) -> float:
        return float(math.exp(self.log_hr))

    @property
    def direction(self) -> str:
        return "higher" if self.log_hr > 0 else "lower"


@dataclass(frozen=True)
class WhatIf:
    """The 2-year prediction for a modified copy of the record (``changes`` lists every field changed).

    ``n_training`` is the number of training patients with this option (``None`` if the model does not store
    category counts): an option few training patients had is an extrapolation.
    """

    choice: str
    option: str
    current: bool
    changes: tuple[str, ...]
    relapse: Interval
    trm: Interval
    efs: Interval
    n_training: int | None = None


@dataclass(frozen=True)
class Metric:
    """A validation metric as stored with the model: ``name`` for ``outcome`` at ``horizon_months``, with a CI."""

    name: str
    outcome: str
    horizon_months: float | None
    estimate: float
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True)
class Provenance:
    """Where the model comes from: training data, model identity and validation (read from ``training_summary``)."""

    model_name: str
    model_version: str
    model_family: str
    trained_at: str
    synthetic: bool | None
    n: int | None
    events: dict[str, int]
    fingerprint: str
    hsct_years: tuple[int, int] | None
    validation_scheme: str
    metrics: tuple[Metric, ...]


@dataclass(frozen=True)
class PatientSummary:
    """Everything the tumour-board report shows, computed (no formatting, no drawing)."""

    patient_id: str
    generated_at: str
    model_name: str
    model_version: str
    model_alias: str
    intended_use: str
    synthetic: bool
    synthetic_label: str | None
    inputs: tuple[InputGroup, ...]
    table: tuple[HorizonRow, ...]
    table_curves: RiskCurves  # exactly what RiskModel.predict returned for the table horizons (1 patient)
    plot_months: np.ndarray  # (k,) months, from 0
    plot: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]  # outcome → (est, lo, hi), (k,) each
    has_intervals: bool
    risk_group: str
    risk_cutoffs: tuple[float, float] | None
    cohort: tuple[CohortPosition, ...]
    drivers: tuple[Driver, ...]
    whatifs: tuple[WhatIf, ...]
    whatif_notes: tuple[str, ...]
    warnings: tuple[str, ...]
    provenance: Provenance
    limitations: tuple[str, ...] = field(default=LIMITATIONS)


# ----------------------------------------------------------------------------------------------------------------
# validation and prediction (the same path as POST /v1/risk)


def validate_patient(record: Mapping[str, Any] | pd.DataFrame) -> pd.DataFrame:
    """Validate one patient record with the record contract → the typed one-row frame the model predicts from.

    Accepts a JSON-like mapping or a one-row DataFrame. Raises :class:`PatientReportError` listing every problem.
    """
    from nbrisk.features.record import validate_record

    if isinstance(record, pd.DataFrame):
        if len(record) != 1:
            raise PatientReportError([_problem("(record)", f"expected one patient, got {len(record)} rows")])
        record = {k: _json_value(v) for k, v in record.iloc[0].to_dict().items()}
    if not isinstance(record, Mapping):
        raise PatientReportError([_problem("(record)", "a patient must be a JSON object")])
    typed, problems = validate_record(record)
    if problems:
        raise PatientReportError(problems)
    return typed.reset_index(drop=True)


def _problem(field_name: str, rule: str):
    from nbrisk.features.record import Problem

    return Problem(0, None, field_name, "", rule)


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return str(v.date())
    return v


def _interval(band: Band, i: int, j: int) -> Interval:
    lo = None if band.lower is None else float(band.lower[i, j])
    hi = None if band.upper is None else float(band.upper[i, j])
    return Interval(float(band.estimate[i, j]), lo, hi)


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


# ----------------------------------------------------------------------------------------------------------------
# inputs


def _display_value(spec: Any, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if spec.kind == "boolean":
        return "yes" if float(value) == 1.0 else "no"
    if spec.kind in _NUMERIC_KINDS:
        v = float(value)
        text = f"{int(v)}" if v == int(v) else f"{v:.4g}"
        return f"{text} {spec.unit}" if spec.unit else text
    if spec.kind == "enum":
        return str(value) if str(value).isupper() else str(value).replace("_", " ")
    return str(value)


def input_groups(typed: pd.DataFrame) -> tuple[InputGroup, ...]:
    """The patient's predictors, grouped clinically as in the record contract, with missing values marked."""
    from nbrisk.features.record import FIELDS

    row = typed.iloc[0]
    groups: dict[str, list[InputRow]] = {}
    for name, spec in FIELDS.items():
        if not spec.is_predictor or spec.group not in _GROUP_TITLES:
            continue
        value = row.get(name) if name in typed.columns else None
        text = _display_value(spec, value)
        if text == "missing":
            status = "missing"
        elif spec.kind == "enum" and value == _UNKNOWN:
            status = "unknown"
        else:
            status = ""
        groups.setdefault(spec.group, []).append(InputRow(name, spec.label, text, status))
    return tuple(InputGroup(_GROUP_TITLES[g], tuple(groups[g])) for g in _GROUP_TITLES if g in groups)


# ----------------------------------------------------------------------------------------------------------------
# what-if rows


def _whatif_variants(rec: dict[str, Any]) -> list[tuple[str, str, bool, dict[str, Any]]]:
    """Alternative records for the choices still open before HSCT, kept valid under the record contract.

    Returns ``(choice, option, is_current, changed fields)``. Changing the donor type also moves the fields the
    contract ties to it: ``hla_mismatches`` into the donor type's allowed range (the nearest value to the current
    one), ``graft_source`` to cord blood for a cord-blood donor (and away from it otherwise, to peripheral blood) and
    ``graft_manipulation`` to none for cord blood; the KIR-ligand mismatch is defined for haploidentical donors,
    so it becomes unknown when the donor type changes. Reaching CR sets residual disease to 0 where it was measured
    (the contract requires CR to have no marrow tumour and Curie score 0) and, for measured MRD, negative.
    """
    from nbrisk.features.record import FIELDS, HLA_MISMATCH_RANGE

    out: list[tuple[str, str, bool, dict[str, Any]]] = []  # (choice, option, current, changes)
    donor = rec.get("donor_type")
    for option in FIELDS["donor_type"].allowed or ():
        ch: dict[str, Any] = {}
        if option != donor:
            ch["donor_type"] = option
            lo, hi = HLA_MISMATCH_RANGE[option]
            hla = rec.get("hla_mismatches")
            hla = lo if hla is None or (isinstance(hla, float) and math.isnan(hla)) else hla
            new_hla = int(min(max(hla, lo), hi))
            if new_hla != hla:
                ch["hla_mismatches"] = new_hla
            if option == "cord_blood":
                if rec.get("graft_source") != "cord_blood":
                    ch["graft_source"] = "cord_blood"
                if rec.get("graft_manipulation") != "none":
                    ch["graft_manipulation"] = "none"
            elif rec.get("graft_source") == "cord_blood":
                ch["graft_source"] = "peripheral_blood"
            if (donor == "haploidentical") != (option == "haploidentical") and rec.get("kir_ligand_mismatch") not in (
                None,
                _UNKNOWN,
            ):
                ch["kir_ligand_mismatch"] = _UNKNOWN
        out.append(("Donor type", option.replace("_", " "), option == donor, ch))
    cond = rec.get("conditioning_intensity")
    for option in FIELDS["conditioning_intensity"].allowed or ():
        ch = {} if option == cond else {"conditioning_intensity": option}
        out.append(("Conditioning intensity", option.replace("_", " "), option == cond, ch))
    status = rec.get("disease_status_at_hsct")
    out.append(("Disease status at HSCT", str(status), True, {}))
    if status != "CR":
        ch = {"disease_status_at_hsct": "CR"}
        for f in ("curie_score_at_hsct", "bone_marrow_tumor_percent_at_hsct"):
            v = rec.get(f)
            if v is not None and not (isinstance(v, float) and math.isnan(v)) and v != 0:
                ch[f] = 0
        if rec.get("mrd_at_hsct") == "positive":
            ch["mrd_at_hsct"] = "negative"
        out.append(("Disease status at HSCT", "CR (complete remission)", False, ch))
    return out


def _describe_changes(ch: Mapping[str, Any]) -> tuple[str, ...]:
    from nbrisk.features.record import FIELDS

    return tuple(f"{FIELDS[k].label} → {_display_value(FIELDS[k], v)}" for k, v in ch.items())


def _predict_variants(risk_model, frames: list[pd.DataFrame]) -> tuple[RiskCurves | None, dict[int, str]]:
    """Predict the variant records in one batch at 2 years; variants the model refuses are dropped, not guessed.

    Returns the curves of the kept variants (in order) and ``{index in frames: reason}`` for the dropped ones.
    """
    from nbrisk.features.pipeline import UnseenCategoryError

    dropped: dict[int, str] = {}
    keep = list(range(len(frames)))
    while keep:
        batch = pd.concat([frames[i] for i in keep], ignore_index=True)
        try:
            return risk_model.predict(batch, [KEY_HORIZON_MONTHS]), dropped
        except UnseenCategoryError as exc:
            bad = {keep[p] for _, _, pos in exc.unseen for p in pos}
            if not bad:
                raise
            for i in bad:
                dropped[i] = "a category not seen in the training data"
            keep = [i for i in keep if i not in bad]
    return None, dropped


def compute_whatifs(
    risk_model, typed: pd.DataFrame, current: RiskCurves | None = None
) -> tuple[tuple[WhatIf, ...], tuple[str, ...]]:
    """Re-predict modified copies of the (validated) record through the same model, in one batch.

    Every variant is re-validated with the record contract; a variant the contract rejects is left out and named in
    the returned notes (never shown with invented numbers). ``current`` (the table prediction) provides the
    unmodified rows so that they match the table exactly.
    """
    from nbrisk.features.record import validate_record

    base = {k: _json_value(v) for k, v in typed.iloc[0].to_dict().items()}
    counts = (getattr(risk_model, "training_summary", None) or {}).get("category_counts") or {}
    notes: list[str] = []
    candidates: list[tuple[tuple[str, str, bool, dict[str, Any]], pd.DataFrame | None]] = []
    for choice, option, is_current, ch in _whatif_variants(base):
        if not ch:
            candidates.append(((choice, option, is_current, ch), None))
            continue
        variant = {**base, **ch}
        frame, problems = validate_record(variant)
        if problems:
            notes.append(f"{choice}: {option} not shown ({problems[0].rule})")
            continue
        # A category no training patient had cannot be scored (the feature pipeline refuses it): say so.
        unseen = [f for f, v in ch.items() if f in counts and counts[f] and str(v) not in counts[f]]
        if unseen:
            notes.append(
                f"{choice}: {option} not shown (no training patient had "
                f"{', '.join(_describe_changes({f: ch[f]})[0] for f in unseen)})"
            )
            continue
        candidates.append(((choice, option, is_current, ch), frame))
    predicted, dropped = _predict_variants(risk_model, [f for _, f in candidates if f is not None])
    kept = []
    k = 0
    for spec, frame in candidates:
        if frame is not None:
            if k in dropped:
                notes.append(f"{spec[0]}: {spec[1]} not shown ({dropped[k]})")
                k += 1
                continue
            k += 1
        kept.append(spec)
    if current is None:
        current = risk_model.predict(typed, [KEY_HORIZON_MONTHS])
    j_cur = int(np.argmin(np.abs(np.asarray(current.horizons_months, float) - KEY_HORIZON_MONTHS)))
    rows: list[WhatIf] = []
    k = 0
    for choice, option, is_current, ch in kept:
        if ch:
            assert predicted is not None
            src, i, j = predicted, k, 0
            k += 1
        else:
            src, i, j = current, 0, j_cur
        field_name = _WHATIF_FIELDS[choice]
        value = ch.get(field_name, base.get(field_name))
        n_train = counts.get(field_name, {}).get(str(value), 0) if field_name in counts else None
        rows.append(
            WhatIf(
                choice,
                option,
                is_current,
                _describe_changes(ch),
                _interval(src.relapse, i, j),
                _interval(src.trm, i, j),
                _interval(src.efs, i, j),
                n_train,
            )
        )
    return tuple(rows), tuple(notes)


# ----------------------------------------------------------------------------------------------------------------
# drivers, cohort position, warnings, provenance (read from the RiskModel)


def compute_drivers(risk_model, typed: pd.DataFrame, n: int = N_DRIVERS) -> tuple[Driver, ...]:
    """The ``n`` inputs with the largest absolute log-hazard contribution per outcome (RiskModel.contributions)."""
    from nbrisk.features.record import FIELDS

    try:
        contrib = risk_model.contributions(typed)[0]
    except NotImplementedError:
        return ()
    row = typed.iloc[0]
    out: list[Driver] = []
    for outcome in ("relapse", "trm"):
        items = [(str(f), float(v)) for f, v in contrib.get(outcome, []) if np.isfinite(v) and abs(float(v)) > 1e-9]
        items.sort(key=lambda fv: -abs(fv[1]))
        for name, v in items[:n]:
            # A predictor built from several fields (an interaction) is named "field_a+field_b" by the pipeline.
            parts = [p for p in name.split("+") if p]
            labels, values = [], []
            for part in parts:
                spec = FIELDS.get(part)
                labels.append(spec.label if spec is not None else part.replace("_", " "))
                if spec is not None and part in typed.columns:
                    values.append(_display_value(spec, row.get(part)))
            out.append(Driver(outcome, name, " × ".join(labels), ", ".join(values), v))
    return tuple(out)


def _percentile_table(dist: Any) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Normalise a stored training distribution to (percentile levels 0–100, values), or ``None``.

    Accepts ``{"p5": v, ...}`` / ``{5: v, ...}`` / ``{"5": v}`` mappings, ``{"levels": [...], "values": [...]}``
    (or ``percentiles``/``quantiles``), or a plain list of values at evenly spaced levels 0..100.
    """
    if dist is None:
        return None
    if isinstance(dist, Mapping):
        for lk, vk in (("levels", "values"), ("percentiles", "values"), ("q", "values"), ("levels", "quantiles")):
            if lk in dist and vk in dist:
                lv = np.asarray(dist[lk], float)
                if lv.max() <= 1.0 + 1e-12:
                    lv = lv * 100.0
                return tuple(lv.tolist()), tuple(np.asarray(dist[vk], float).tolist())
        pairs = []
        for k, v in dist.items():
            key = str(k).lower().lstrip("pq").rstrip("%")
            try:
                level = float(key)
            except ValueError:
                continue
            pairs.append((level, float(v)))
        if not pairs:
            return None
        pairs.sort()
        levels = np.array([p[0] for p in pairs])
        if levels.max() <= 1.0 + 1e-12 and len(levels) > 1:
            levels = levels * 100.0
        return tuple(levels.tolist()), tuple(p[1] for p in pairs)
    arr = np.asarray(dist, float).ravel()
    if arr.size < 2:
        return None
    return tuple(np.linspace(0.0, 100.0, arr.size).tolist()), tuple(arr.tolist())


def _training_distribution(summary: Mapping[str, Any], outcome: str) -> Any:
    """Find the stored training distribution of predicted 2-year ``outcome`` risk in ``training_summary``."""
    for key in (
        "predicted_2y_distribution",
        "predicted_2y",
        "prediction_percentiles",
        "predicted_distribution",
        "predicted_24m",
        "training_predictions",
        "predicted_risk_percentiles",
    ):
        block = summary.get(key)
        if isinstance(block, Mapping):
            for k in (outcome, f"{outcome}_24", f"{outcome}_24m", f"{outcome}_2y"):
                if k in block:
                    return block[k]
    for k in (f"predicted_{outcome}_2y", f"{outcome}_2y_percentiles", f"predicted_{outcome}_24m"):
        if k in summary:
            return summary[k]
    return None


def cohort_positions(summary: Mapping[str, Any], relapse_2y: float, trm_2y: float) -> tuple[CohortPosition, ...]:
    """Percentile of the patient's 2-year relapse and TRM predictions in the training cohort's predictions.

    The percentile is linear interpolation of the stored training percentiles (an empirical CDF read off its
    quantiles); it is clipped to the range of the stored levels (e.g. "< 5th" is shown as 5).
    """
    out = []
    for outcome, label, value in (("relapse", "Relapse", relapse_2y), ("trm", "TRM", trm_2y)):
        table = _percentile_table(_training_distribution(summary, outcome))
        if table is None:
            out.append(CohortPosition(outcome, label, value, None))
            continue
        levels, values = table
        vals = np.maximum.accumulate(np.asarray(values, float))  # guard against rounding non-monotonicity
        pct = float(np.interp(value, vals, np.asarray(levels, float)))
        out.append(CohortPosition(outcome, label, value, pct, tuple(levels), tuple(vals.tolist())))
    return tuple(out)


def _events(summary: Mapping[str, Any]) -> dict[str, int]:
    ev = summary.get("events") or summary.get("events_by_cause") or {}
    out: dict[str, int] = {}
    if isinstance(ev, Mapping):
        names = {
            "0": "censored",
            "1": "relapse",
            "2": "trm",
            "censored": "censored",
            "relapse": "relapse",
            "trm": "trm",
        }
        for k, v in ev.items():
            key = names.get(str(k).lower(), str(k).lower())
            try:
                out[key] = int(v)
            except (TypeError, ValueError):
                continue
    return out


#: A flat metric key of the training jobs: ``relapse_cindex_24m`` / ``relapse.c_index.24m``, optionally followed
#: by ``_lower``/``.upper`` for the 95% CI. Keys of other shapes (``apparent_…``, ``fold_…``, timings) are skipped.
_METRIC_KEY = re.compile(
    r"^(?P<outcome>relapse|trm|efs|os)[._](?P<name>[a-z0-9_]+?)(?:[._](?P<h>\d+(?:\.\d+)?)m)?"
    r"(?:[._](?P<ci>lower|upper))?$"
)
#: Spellings of the same metric across versions of the training jobs → one name.
METRIC_ALIASES = {"cindex": "c_index", "cal_slope": "calibration_slope", "cal_intercept": "calibration_intercept"}


def _flat_metrics(flat: Mapping[str, Any]) -> list[Metric]:
    """Read flat validation metrics (``{"relapse_cindex_24m": 0.66, "relapse_cindex_24m_lower": 0.61, ...}``).

    Accepts both ``_`` and ``.`` separators; the ``lower``/``upper`` keys are the 95% CI of the same metric.
    """
    points: dict[tuple[str, str, float | None], float] = {}
    cis: dict[tuple[str, str, float | None, str], float] = {}
    for key, value in flat.items():
        m = _METRIC_KEY.match(str(key))
        if m is None or value is None or isinstance(value, bool):
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(v):
            continue
        name = METRIC_ALIASES.get(m["name"], m["name"])
        ident = (m["outcome"], name, None if m["h"] is None else float(m["h"]))
        if m["ci"]:
            cis[(*ident, m["ci"])] = v
        else:
            points[ident] = v
    out = []
    for (outcome, name, h), v in points.items():
        lo, hi = cis.get((outcome, name, h, "lower")), cis.get((outcome, name, h, "upper"))
        ok = lo is not None and hi is not None
        out.append(Metric(name, outcome, h, v, lo if ok else None, hi if ok else None))
    return out


def _flatten_metrics(obj: Any, path: tuple[str, ...] = ()) -> Iterable[Metric]:
    """Read validation metrics from ``training_summary['validation']`` whatever the nesting.

    Leaves are mappings with an ``estimate`` (or ``value``/``mean``) and optional ``lower``/``upper``
    (``ci_lower``/``ci_upper``, or a ``ci`` pair); the keys on the way down name the outcome, metric and horizon.
    """
    if isinstance(obj, Mapping):
        est = next((obj[k] for k in ("estimate", "value", "mean", "point") if k in obj), None)
        if est is not None and not isinstance(est, Mapping | list):
            lo = obj.get("lower", obj.get("ci_lower", obj.get("lo")))
            hi = obj.get("upper", obj.get("ci_upper", obj.get("hi")))
            if lo is None and isinstance(obj.get("ci"), list | tuple) and len(obj["ci"]) == 2:
                lo, hi = obj["ci"]
            outcome = str(obj.get("cause", obj.get("outcome", "")))
            name = str(obj.get("metric", obj.get("name", "")))
            horizon = obj.get("horizon_months", obj.get("horizon"))
            rest = []
            for p in path:
                pl = p.lower()
                if not outcome and pl in ("relapse", "trm", "os", "efs"):
                    outcome = pl
                elif horizon is None and _horizon_of(pl) is not None:
                    horizon = _horizon_of(pl)
                else:
                    rest.append(p)
            if not name:
                name = ".".join(rest) or "metric"
            try:
                yield Metric(
                    name,
                    outcome,
                    None if horizon is None else float(horizon),
                    float(est),
                    None if lo is None else float(lo),
                    None if hi is None else float(hi),
                )
            except (TypeError, ValueError):
                return
            return
        for k, v in obj.items():
            yield from _flatten_metrics(v, (*path, str(k)))
    elif isinstance(obj, list | tuple):
        for v in obj:
            if isinstance(v, Mapping):
                yield from _flatten_metrics(v, path)


def _horizon_of(text: str) -> float | None:
    t = text.lower().removeprefix("at_").removeprefix("h").removeprefix("tau")
    for suffix in ("months", "month", "mo", "m"):
        if t.endswith(suffix):
            t = t[: -len(suffix)]
            break
    try:
        v = float(t.strip("_"))
    except ValueError:
        return None
    return v if 0 < v <= 240 else None


def provenance(risk_model, model_info: Mapping[str, Any]) -> Provenance:
    """Model identity, training data and validation metrics from ``model_info`` and ``training_summary``."""
    s = getattr(risk_model, "training_summary", None) or {}
    years = None
    ranges = s.get("numeric_ranges") or s.get("ranges") or {}
    if isinstance(ranges, Mapping) and "hsct_year" in ranges:
        r = ranges["hsct_year"]
        lo, hi = (r.get("min"), r.get("max")) if isinstance(r, Mapping) else (r[0], r[1])
        if lo is not None and hi is not None:
            years = (int(lo), int(hi))
    metrics_src = s.get("validation_metrics", s.get("validation", s.get("metrics")))
    if (
        isinstance(metrics_src, Mapping)
        and metrics_src
        and all(not isinstance(v, Mapping | list | tuple) for v in metrics_src.values())
    ):
        metrics = tuple(_flat_metrics(metrics_src))
    else:
        metrics = tuple(_flatten_metrics(metrics_src)) if metrics_src is not None else ()
    scheme = s.get("validation_scheme") or s.get("validation_name") or ""
    if not scheme and isinstance(s.get("validation"), Mapping):
        scheme = str(s["validation"].get("scheme", ""))
    n = s.get("n", s.get("n_patients"))
    return Provenance(
        model_name=str(model_info.get("name") or s.get("model_name") or "nbrisk"),
        model_version=str(model_info.get("version") or s.get("model_version") or "unregistered"),
        model_family=str(s.get("model_family") or s.get("family") or ""),
        trained_at=str(model_info.get("trained_at") or s.get("trained_at") or ""),
        synthetic=_synthetic_flag(risk_model, model_info),
        n=None if n is None else int(n),
        events=_events(s),
        fingerprint=str(s.get("data_fingerprint") or s.get("fingerprint") or "")[:16],
        hsct_years=years,
        validation_scheme=str(scheme),
        metrics=metrics,
    )


def _synthetic_flag(risk_model, model_info: Mapping[str, Any]) -> bool | None:
    s = getattr(risk_model, "training_summary", None) or {}
    flags = [model_info.get("synthetic_training_data"), s.get("synthetic"), s.get("synthetic_training_data")]
    known = [bool(f) for f in flags if f is not None]
    if not known:
        return None
    return any(known)  # if any source says synthetic, the report says so


def applicability_warnings(risk_model, typed: pd.DataFrame, prov: Provenance) -> tuple[str, ...]:
    """Per-patient input warnings from the model plus warnings about the model's evidence base."""
    from nbrisk.features.record import FIELDS

    out: list[str] = []
    try:
        raw = [str(w) for w in risk_model.input_warnings(typed)[0]]
    except NotImplementedError:
        raw = []
    # The model names fields by their contract name; the report shows the clinical label instead.
    names = re.compile(r"\b(" + "|".join(sorted(map(re.escape, FIELDS), key=len, reverse=True)) + r")\b")
    for w in raw:
        text = names.sub(lambda m: FIELDS[m.group(1)].label, w)
        out.append(text[:1].upper() + text[1:])
    if prov.synthetic is None:
        out.append("The model does not record whether its training data were real or synthetic.")
    if prov.n is not None and prov.n < SMALL_COHORT_N:
        out.append(f"The model was trained on only {prov.n} patients; predictions are imprecise.")
    for cause, label in (("relapse", "relapses"), ("trm", "transplant-related deaths")):
        k = prov.events.get(cause)
        if k is not None and k < SMALL_EVENTS:
            out.append(
                f"Only {k} {label} in the training data; {cause.upper() if cause == 'trm' else cause} "
                "estimates are imprecise."
            )
    return tuple(out)


# ----------------------------------------------------------------------------------------------------------------
# the whole summary


def build_patient_summary(
    risk_model,
    record: Mapping[str, Any] | pd.DataFrame,
    model_info: Mapping[str, Any] | None = None,
    generated_at: dt.datetime | None = None,
) -> PatientSummary:
    """Compute the tumour-board report for one patient.

    Parameters
    ----------
    risk_model : fitted :class:`~nbrisk.models.risk_model.RiskModel` (``predict``, ``risk_groups``,
        ``input_warnings``, ``contributions``, ``risk_cutoffs``, ``training_summary``).
    record : one patient in the record contract (JSON-like mapping or one-row DataFrame); validated here.
    model_info : the serving model's identity, as in ``/v1/risk``'s ``model`` block: ``name``, ``version``,
        ``alias``, ``trained_at``, ``synthetic_training_data`` (missing keys fall back to ``training_summary``).
    generated_at : report timestamp (default: now, UTC).

    Returns
    -------
    PatientSummary — probabilities in [0, 1], horizons in months after HSCT.
    """
    model_info = dict(model_info or {})
    typed = validate_patient(record)
    # The table: exactly the /v1/risk call (validated record, default horizons).
    table_curves: RiskCurves = risk_model.predict(typed, list(TABLE_HORIZONS_MONTHS))
    plot_curves: RiskCurves = risk_model.predict(typed, PLOT_MONTHS.tolist())
    months, plot = _prepend_origin(PLOT_MONTHS, plot_curves)
    table = tuple(
        HorizonRow(
            float(h),
            *(_interval(b, 0, j) for b in (table_curves.relapse, table_curves.trm, table_curves.efs, table_curves.os)),
        )
        for j, h in enumerate(np.asarray(table_curves.horizons_months, float))
    )
    has_intervals = table_curves.relapse.lower is not None
    risk_group = str(risk_model.risk_groups(table_curves)[0])
    cutoffs = getattr(risk_model, "risk_cutoffs", None)
    j24 = int(np.argmin(np.abs(np.asarray(table_curves.horizons_months, float) - KEY_HORIZON_MONTHS)))
    s = getattr(risk_model, "training_summary", None) or {}
    prov = provenance(risk_model, model_info)
    whatifs, notes = compute_whatifs(risk_model, typed, table_curves)
    synthetic = bool(prov.synthetic)
    when = generated_at or dt.datetime.now(dt.UTC)
    return PatientSummary(
        patient_id=str(typed.iloc[0]["patient_id"]),
        generated_at=when.strftime("%Y-%m-%d %H:%M UTC"),
        model_name=prov.model_name,
        model_version=prov.model_version,
        model_alias=str(model_info.get("alias") or ""),
        intended_use=INTENDED_USE,
        synthetic=synthetic,
        synthetic_label=SYNTHETIC_LABEL if synthetic else None,
        inputs=input_groups(typed),
        table=table,
        table_curves=table_curves,
        plot_months=months,
        plot=plot,
        has_intervals=has_intervals,
        risk_group=risk_group,
        risk_cutoffs=None if cutoffs is None else (float(cutoffs[0]), float(cutoffs[1])),
        cohort=cohort_positions(
            s, float(table_curves.relapse.estimate[0, j24]), float(table_curves.trm.estimate[0, j24])
        ),
        drivers=compute_drivers(risk_model, typed),
        whatifs=whatifs,
        whatif_notes=notes,
        warnings=applicability_warnings(risk_model, typed, prov),
        provenance=prov,
    )
