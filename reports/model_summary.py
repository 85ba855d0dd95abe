"""The model report for researchers: what a registered model version is, how it was built and how well it did.

:func:`build_model_summary` turns the gathered :class:`~nbrisk.reports.sources.ModelSources` (the RiskModel's
``training_summary`` and the MLflow training run) into a frozen :class:`ModelSummary`, organised by the TRIPOD+AI
reporting items the software can fill itself (Collins et al. 2024, BMJ 385:e078378; item numbers as in its
27-item checklist). Items only a person can write (rationale, ethics, funding, interpretation...) are listed for the
authors to complete. Nothing here reads MLflow or draws.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nbrisk.core import DAYS_PER_MONTH, INTENDED_USE, SYNTHETIC_LABEL, ValidationMetric, training_summary_of
from nbrisk.models.risk_model import typed_metrics
from nbrisk.reports.tripod import CHECKLIST, NOT_APPLICABLE, TO_COMPLETE

#: Metrics of the performance table, in display order: key in the training jobs' metric names → label.
PERFORMANCE_METRICS: tuple[tuple[str, str], ...] = (
    ("c_index", "C-index (Wolbers)"),
    ("auc", "Time-dependent AUC"),
    ("brier", "Brier score"),
    ("ipa", "IPA"),
    ("ici", "ICI"),
    ("calibration_slope", "Calibration slope"),
)
CAUSES = (("relapse", "Relapse"), ("trm", "TRM"))
#: Horizon (months) of the calibration plots, decision curves and the model comparison.
PRIMARY_HORIZON_MONTHS = 24.0

#: Below this calibration slope the report flags over-fitting (predictions too extreme); above the upper bound, too
#: timid (Van Calster et al. 2019, BMC Med 17:230: a slope well below 1 signals overfitting).
SLOPE_FLAG = (0.8, 1.2)


@dataclass(frozen=True)
class PerformanceRow:
    """One metric for one cause at one horizon (pooled cross-validated predictions), with its bootstrap 95% CI."""

    cause: str
    metric: str
    horizon_months: float
    estimate: float
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class CalibrationPanel:
    """Deciles of predicted risk for one cause at one horizon: mean predicted vs observed (Aalen–Johansen)."""

    cause: str
    horizon_months: float
    predicted: tuple[float, ...]
    observed: tuple[float, ...]
    lower: tuple[float, ...] | None
    upper: tuple[float, ...] | None


@dataclass(frozen=True)
class DecisionPanel:
    """Net benefit over thresholds for one cause at one horizon: the model, treat-all and (zero) treat-none."""

    cause: str
    horizon_months: float
    thresholds: tuple[float, ...]
    model: tuple[float, ...]
    treat_all: tuple[float, ...]


@dataclass(frozen=True)
class ComparisonRow:
    """Another model of the same training run, validated on the same folds (primary horizon)."""

    name: str
    family: str
    is_this: bool
    values: dict[str, tuple[float, float | None, float | None]]  # "relapse.c_index" → (est, lo, hi)


@dataclass(frozen=True)
class FilledItem:
    """One TRIPOD+AI item: ``item`` number and ``topic`` as in :data:`nbrisk.reports.tripod.CHECKLIST`, ``status``
    (``filled``, ``authors`` or ``na``) and the ``text`` reported."""

    item: str
    topic: str
    text: str
    status: str = "filled"


@dataclass(frozen=True)
class CoefficientRow:
    """One coefficient of the relapse/TRM model: log hazard ratio with its model-based 95% CI."""

    cause: str
    feature: str
    coef: float
    lower: float
    upper: float


@dataclass(frozen=True)
class ModelSummary:
    title: str
    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str
    generated_at: str
    synthetic: bool
    synthetic_label: str | None
    intended_use: str
    filled: tuple[FilledItem, ...]
    predictors: tuple[tuple[str, str, str, str], ...]  # (group, field, label, handling)
    performance: tuple[PerformanceRow, ...]
    horizons: tuple[float, ...]
    calibration: tuple[CalibrationPanel, ...]
    decision: tuple[DecisionPanel, ...]
    comparison: tuple[ComparisonRow, ...]
    comparison_metrics: tuple[str, ...]
    coefficients: tuple[CoefficientRow, ...]
    flags: tuple[str, ...]


def _h(months: float) -> str:
    return f"{float(months):g}m"


def _tables_for(block: Mapping[str, Any] | None, horizon: float, kind: str) -> dict[str, Mapping[str, Any]]:
    """``{"relapse": table, "trm": table}`` at ``horizon`` from the ``validation/<kind>.json`` artifact.

    Keys ``relapse_calibration_24m`` (or ``relapse.24m``), each a column → list mapping.
    """
    out = {}
    for cause, _ in CAUSES:
        for key in (f"{cause}.{_h(horizon)}", f"{cause}_{kind}_{_h(horizon)}"):
            tab = (block or {}).get(key)
            if isinstance(tab, Mapping):
                out[cause] = tab
                break
    return out


def _floats(values: Sequence[Any] | None) -> tuple[float, ...] | None:
    if values is None:
        return None
    return tuple(float("nan") if v is None else float(v) for v in values)


def _performance(metrics: Sequence[ValidationMetric]) -> tuple[PerformanceRow, ...]:
    keep = {k for k, _ in PERFORMANCE_METRICS}
    rows = [
        PerformanceRow(m.outcome, m.name, m.horizon_months, m.estimate, m.lower, m.upper)
        for m in metrics
        if m.name in keep and m.outcome in ("relapse", "trm") and m.horizon_months
    ]
    order = {k: i for i, (k, _) in enumerate(PERFORMANCE_METRICS)}
    rows.sort(key=lambda r: (r.cause != "relapse", order[r.metric], r.horizon_months))
    return tuple(rows)


def _comparison(
    siblings: Sequence[Mapping[str, Any]], horizon: float
) -> tuple[tuple[ComparisonRow, ...], tuple[str, ...]]:
    cols = tuple(f"{c}.{m}" for c, _ in CAUSES for m in ("c_index", "auc", "ipa", "ici"))
    rows = []
    for sib in siblings:
        parsed = {
            (m.outcome, m.name): m
            for m in typed_metrics(sib.get("metrics", {}))
            if m.horizon_months is not None and abs(m.horizon_months - horizon) < 1e-9
        }
        values = {}
        for col in cols:
            cause, name = col.split(".", 1)
            m = parsed.get((cause, name))
            if m is not None:
                values[col] = (m.estimate, m.lower, m.upper)
        rows.append(ComparisonRow(str(sib.get("name", "?")), str(sib.get("family", "")), bool(sib.get("this")), values))

    def mean(r: ComparisonRow, metric: str) -> float:
        vals = [r.values[f"{c}.{metric}"][0] for c, _ in CAUSES if f"{c}.{metric}" in r.values]
        return -sum(vals) / len(vals) if vals else math.inf

    def score(r: ComparisonRow) -> tuple[float, float]:
        # as the training leaderboard: mean IPA of relapse and TRM first, then mean C-index (higher is better)
        return mean(r, "ipa"), mean(r, "c_index")

    rows.sort(key=lambda r: (score(r), r.name))
    return tuple(rows), cols


def _code_version(tags: Mapping[str, str]) -> str:
    """``; code nbrisk 0.1.0, git 1a2b3c4d (uncommitted changes)`` from the training run's ``code.*`` tags."""
    if not tags:
        return ""
    out = f"; code nbrisk {tags.get('code.nbrisk_version', '?')}"
    sha = tags.get("code.git_sha")
    if sha and sha != "unavailable":
        out += f", git {sha[:8]}" + (" (uncommitted changes)" if tags.get("code.git_dirty") == "true" else "")
    return out


def _handling(spec: Any, s: Any) -> str:
    miss = s.missing_counts.get(spec.name)
    n = s.n
    parts = []
    if spec.kind in ("number", "integer"):
        rng = s.numeric_ranges.get(spec.name)
        parts.append(
            "continuous"
            + (f", observed {rng[0]:g}–{rng[1]:g}" if rng else "")
            + (f" {spec.unit}" if spec.unit and rng else "")
        )
    elif spec.kind == "boolean":
        parts.append("binary")
    else:
        counts = s.category_counts.get(spec.name) or {}
        parts.append(f"categorical ({len(counts) or len(spec.allowed or ())} levels seen)")
    if miss:
        pct = f" ({100 * miss / n:.0f}%)" if n else ""
        parts.append(f"missing in {miss}{pct}, imputed by the feature pipeline")
    return "; ".join(parts)


def coefficient_table(risk_model: Any) -> tuple[CoefficientRow, ...]:
    """The relapse/TRM model's coefficients (used columns) with Wald 95% CIs, from its ``summary()`` (Cox)."""
    cr = risk_model.illness_death.cr_model_
    table = cr.summary() if callable(getattr(cr, "summary", None)) else None
    if table is None:
        return ()
    return tuple(
        CoefficientRow(
            str(r.cause), str(r.feature), float(r.coef), float(r.coef - 1.96 * r.se), float(r.coef + 1.96 * r.se)
        )
        for r in table.itertuples()
        if r.coef != 0.0
    )


def build_model_summary(sources, generated_at: dt.datetime | None = None) -> ModelSummary:
    """Compute the model report from gathered sources (see :func:`nbrisk.reports.sources.model_sources`)."""
    from nbrisk.features.record import FIELDS
    from nbrisk.reports.inputs import model_inputs

    rm = sources.risk_model
    s = training_summary_of(rm)
    run = sources.run or {}
    metrics = typed_metrics(run.get("metrics") or {}) or s.validation_metrics
    performance = _performance(metrics)
    horizons = tuple(sorted({r.horizon_months for r in performance}))
    synthetic = s.synthetic
    fp = run.get("fingerprint") or {}
    ev = s.events
    pp = sources.parent_params or {}
    val = {k[len("config.validation.") :]: v for k, v in pp.items() if k.startswith("config.validation.")}
    used = model_inputs(rm)
    predictors_all = [name for name, spec in FIELDS.items() if spec.is_predictor]
    used_fields = [f for f in predictors_all if f in used.fields]

    def fmt_ci(cause: str, name: str, horizon: float) -> str:
        m = next((x for x in metrics if (x.outcome, x.name, x.horizon_months) == (cause, name, float(horizon))), None)
        if m is None:
            return "not computed"
        ci = f" (95% CI {m.lower:.3f}–{m.upper:.3f})" if m.lower is not None else " (no bootstrap CI: not resampled)"
        return f"{m.estimate:.3f}{ci}"

    flags = []
    for cause, label in CAUSES:
        for h in horizons:
            m = next(
                (x for x in metrics if (x.outcome, x.name, x.horizon_months) == (cause, "calibration_slope", h)), None
            )
            if m is not None and not SLOPE_FLAG[0] <= m.estimate <= SLOPE_FLAG[1]:
                kind = "too extreme (over-fitting)" if m.estimate < SLOPE_FLAG[0] else "too timid"
                flags.append(
                    f"{label} calibration slope at {h:g} months is {m.estimate:.2f}, outside {SLOPE_FLAG[0]}–"
                    f"{SLOPE_FLAG[1]}: predictions are {kind}."
                )
    years = s.numeric_ranges.get("hsct_year")
    scheme = (
        f"{val.get('n_splits', '?')}-fold cross-validation repeated {val.get('n_repeats', '?')} times"
        f" (stratified by event type), {val.get('n_bootstrap', '?')} bootstrap resamples of the pooled "
        f"out-of-fold predictions for 95% CIs"
        if val
        else (s.validation_scheme or "see the training run's configuration")
    )
    loco = val.get("leave_center_out", "").lower() == "true"
    if loco:
        scheme += "; leave-one-center-out (internal–external) validation"
    p = s.params
    treatments = [
        FIELDS[f].label
        for f in ("donor_type", "conditioning_intensity", "planned_post_hsct_immunotherapy", "graft_manipulation")
        if f in used.fields
    ]
    text = {
        "5a": (
            f"{SYNTHETIC_LABEL}: the embedded synthetic cohort generator"
            if synthetic
            else "A cohort in the nbrisk record contract"
        )
        + (f" ({fp.get('source')})" if fp.get("source") else "")
        + f"; data fingerprint sha256 {str(s.data_fingerprint or fp.get('sha256', ''))[:16]}.",
        "5b": f"HSCT years {years[0]:g}–{years[1]:g}." if years else "Not recorded.",
        "6b": "Record contract: stage M (INRG) neuroblastoma, age 0.5–25 years at allo-HSCT; out-of-population "
        "records are refused.",
        "6c": "Treatments are predictors: " + (", ".join(treatments) or "none") + " (as planned before day 0).",
        "8a": "Competing risks from day 0 (graft infusion): relapse/progression (cause 1) and transplant-related "
        "mortality = death without prior relapse (cause 2); overall survival from an illness–death model; time in "
        "days, reported at " + ", ".join(f"{h:g}" for h in horizons) + " months.",
        "9a": f"Pre-specified before any outcome was seen: {len(used_fields)} of the {len(predictors_all)} baseline "
        "record fields enter the fitted model (table below; derived from the fitted pipeline's non-zero "
        "coefficients).",
        "9b": f"The record contract defines {len(predictors_all)} baseline fields, all known before day 0; none is "
        "measured after day 0.",
        "11": "Optional numeric fields are imputed inside the fitted feature pipeline (training medians; a missing "
        "Curie score by the share of scores > 2 among patients with the same disease status), each with a missing "
        "indicator; categorical fields use an explicit 'unknown' level. Counts per field in the table below.",
        "12a": f"All {s.n} patients for development; performance from {scheme}.",
        "12b": "Derived predictors (age at HSCT > 10 years, time diagnosis → HSCT splines, Curie score > 2, grouped "
        "HCT-CI and HLA mismatches, era) and one-hot categories with fixed reference levels.",
        "12c": f"{s.family} ({s.model_name}); hyper-parameters "
        + (", ".join(f"{k}={v}" for k, v in p.items()) or "defaults")
        + f"; prediction intervals: {s.interval_method}"
        + (f" ({s.n_interval_bootstrap} refits)" if s.n_interval_bootstrap else "")
        + (f" — {s.interval_statement}" if s.interval_statement else "")
        + (f"; inputs: {s.inputs}" if s.inputs else "")
        + (f"; {s.recalibration}" if s.recalibration else "")
        + ".",
        "12d": "Leave-one-center-out validation across transplant centres." if loco else None,
        "12e": "Per cause and horizon: Wolbers C-index, IPCW time-dependent AUC, IPCW Brier score, IPA vs the "
        "Aalen–Johansen null model, calibration (ICI, slope; Austin et al. 2020), net benefit; models compared on "
        "the same folds and resamples.",
        "13": "No class-imbalance methods: the outcome is a competing-risks time to event, modelled as observed.",
        "15": "Cumulative incidence of relapse and TRM, EFS and OS with 95% pointwise intervals; risk groups by "
        "2-year EFS with training-tertile cut-offs ({:.3f}, {:.3f}).".format(*rm.risk_cutoffs),
        "20b": f"n = {s.n}: {ev.get('relapse', '?')} relapses, {ev.get('trm', '?')} transplant-related deaths, "
        f"{ev.get('censored', '?')} censored"
        + (
            f"; median follow-up of censored patients {s.median_followup_days / DAYS_PER_MONTH:.1f} months"
            if s.median_followup_days
            else ""
        )
        + "; missing values per field in the predictor table.",
        "21": f"{s.n} participants and {ev.get('relapse', '?')}/{ev.get('trm', '?')} outcome events (relapse/TRM) in "
        "the final fit.",
        "22": "Coefficient table below; the whole fitted pipeline (feature pipeline, illness–death model, cut-offs) "
        f"is registered as MLflow model {sources.resolved.name} version {sources.resolved.version} "
        f"(run {run.get('run_id', '?')}){_code_version(getattr(sources, 'parent_tags', {}) or {})}.",
        "23a": "2-year C-index relapse "
        + fmt_ci("relapse", "c_index", 24)
        + "; TRM "
        + fmt_ci("trm", "c_index", 24)
        + ". Full table below.",
        "23b": (
            "Leave-one-center-out: "
            + ", ".join(f"{k} {v:.3f}" for k, v in sorted(s.leave_center_out.items())[:6])
            + "."
        )
        if s.leave_center_out
        else None,
        "27a": "Missing optional inputs are imputed and named in the patient report's warnings; invalid records are "
        "refused with every problem listed.",
    }
    filled = tuple(
        FilledItem(c.item, c.topic, filled_text, "filled")
        if (filled_text := text.get(c.item))
        else FilledItem(
            c.item,
            c.topic,
            NOT_APPLICABLE if c.applies == "E" else TO_COMPLETE,
            "na" if c.applies == "E" else "authors",
        )
        for c in CHECKLIST
    )
    predictors = tuple((FIELDS[f].group, f, FIELDS[f].label, _handling(FIELDS[f], s)) for f in used_fields)
    cal, dec = [], []
    for h in horizons if PRIMARY_HORIZON_MONTHS not in horizons else (PRIMARY_HORIZON_MONTHS,):
        for cause, tab in _tables_for(sources.tables.get("calibration"), h, "calibration").items():
            cal.append(
                CalibrationPanel(
                    cause,
                    h,
                    _floats(tab.get("mean_predicted")) or (),
                    _floats(tab.get("observed")) or (),
                    _floats(tab.get("observed_lower")),
                    _floats(tab.get("observed_upper")),
                )
            )
        for cause, tab in _tables_for(sources.tables.get("net_benefit"), h, "net_benefit").items():
            dec.append(
                DecisionPanel(
                    cause,
                    h,
                    _floats(tab.get("threshold")) or (),
                    _floats(tab.get("net_benefit")) or (),
                    _floats(tab.get("treat_all")) or (),
                )
            )
        if cal or dec:
            break
    comparison, comp_cols = _comparison(sources.siblings, PRIMARY_HORIZON_MONTHS)
    when = generated_at or dt.datetime.now(dt.UTC)
    return ModelSummary(
        title=f"Model report — {sources.resolved.name} version {sources.resolved.version}",
        name=sources.resolved.name,
        version=str(sources.resolved.version),
        aliases=tuple(sources.aliases),
        run_id=str(run.get("run_id", "")),
        generated_at=when.strftime("%Y-%m-%d %H:%M UTC"),
        synthetic=synthetic,
        synthetic_label=SYNTHETIC_LABEL if synthetic else None,
        intended_use=INTENDED_USE,
        filled=filled,
        predictors=predictors,
        performance=performance,
        horizons=horizons,
        calibration=tuple(cal),
        decision=tuple(dec),
        comparison=comparison,
        comparison_metrics=comp_cols,
        coefficients=coefficient_table(rm),
        flags=tuple(flags),
    )
