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

from nbrisk.core import SYNTHETIC_LABEL
from nbrisk.reports.summary import INTENDED_USE, Metric, _flat_metrics

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

#: TRIPOD+AI items that need a person (the software cannot know them). (item, topic, what to write)
HUMAN_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("1", "Title", "Identify the study as developing/evaluating a prediction model, the population and outcomes."),
    ("2", "Abstract", "Structured summary (see TRIPOD+AI for Abstracts)."),
    ("3a–c", "Background", "Healthcare context, rationale, intended users; known inequalities between groups."),
    ("4", "Objectives", "Study objectives: development and/or evaluation."),
    ("6a", "Study setting", "Setting and centres (e.g. transplant centres, registry), number and location."),
    ("7", "Data preparation", "Pre-processing and quality checks beyond the record contract; data provenance."),
    ("8b", "Outcome assessment", "Whether outcome assessment was blinded to predictors, and how it was done."),
    ("9b–c", "Predictor assessment", "How and when predictors were measured; blinding; inter-observer issues."),
    ("10", "Sample size", "How the sample size was decided (e.g. Riley et al. minimum sample size)."),
    ("14", "Fairness", "Approaches to assess and address fairness across groups."),
    ("17", "Ethics", "Ethical approval and consent."),
    ("18a–f", "Open science", "Funding, conflicts of interest, protocol, registration, data and code sharing."),
    ("19", "Patient and public involvement", "Details of patient and public involvement."),
    ("20a", "Participant flow", "Flow of participants, including exclusions (a diagram)."),
    ("25", "Interpretation", "Overall interpretation, including fairness and the clinical context."),
    ("26", "Limitations", "Limitations of the study (non-representative sample, sample size, overfitting...)."),
    (
        "27a–c",
        "Usability",
        "How poor-quality or missing input is handled at use, user interaction and expertise "
        "needed, and next steps (e.g. external validation, impact studies).",
    ),
)


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
    """A TRIPOD+AI item the software filled: ``item`` number, ``topic`` and the ``text`` it reports."""

    item: str
    topic: str
    text: str


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
    human_items: tuple[tuple[str, str, str], ...]


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


def _performance(metrics: Sequence[Metric]) -> tuple[PerformanceRow, ...]:
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
            for m in _flat_metrics(sib.get("metrics", {}))
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


def _handling(spec: Any, s: Mapping[str, Any]) -> str:
    miss = (s.get("missing_counts") or {}).get(spec.name)
    n = s.get("n")
    parts = []
    if spec.kind in ("number", "integer"):
        rng = (s.get("numeric_ranges") or {}).get(spec.name)
        parts.append(
            "continuous"
            + (f", observed {rng[0]:g}–{rng[1]:g}" if rng else "")
            + (f" {spec.unit}" if spec.unit and rng else "")
        )
    elif spec.kind == "boolean":
        parts.append("binary")
    else:
        counts = (s.get("category_counts") or {}).get(spec.name) or {}
        parts.append(f"categorical ({len(counts) or len(spec.allowed or ())} levels seen)")
    if miss:
        pct = f" ({100 * miss / n:.0f}%)" if n else ""
        parts.append(f"missing in {miss}{pct}, imputed by the feature pipeline")
    return "; ".join(parts)


def build_model_summary(sources, generated_at: dt.datetime | None = None) -> ModelSummary:
    """Compute the model report from gathered sources (see :func:`nbrisk.reports.sources.model_sources`)."""
    from nbrisk.features.record import FIELDS

    rm = sources.risk_model
    s: Mapping[str, Any] = getattr(rm, "training_summary", None) or {}
    run = sources.run or {}
    metrics_flat = dict(run.get("metrics") or {}) or dict(s.get("validation_metrics") or {})
    metrics = _flat_metrics(metrics_flat)
    performance = _performance(metrics)
    horizons = tuple(sorted({r.horizon_months for r in performance}))
    synthetic = bool(s.get("synthetic", False))
    fp = run.get("fingerprint") or {}
    ev = s.get("events") or {}
    pp = sources.parent_params or {}
    val = {k[len("config.validation.") :]: v for k, v in pp.items() if k.startswith("config.validation.")}

    by_key = {(m.outcome, m.name, m.horizon_months): m for m in metrics}

    def fmt_ci(cause: str, name: str, horizon: float) -> str:
        m = by_key.get((cause, name, float(horizon)))
        if m is None:
            return "not computed"
        ci = f" (95% CI {m.lower:.3f}–{m.upper:.3f})" if m.lower is not None else ""
        return f"{m.estimate:.3f}{ci}"

    years = (s.get("numeric_ranges") or {}).get("hsct_year")
    scheme = (
        f"{val.get('n_splits', '?')}-fold cross-validation repeated {val.get('n_repeats', '?')} times"
        f" (stratified by event type), {val.get('n_bootstrap', '?')} bootstrap resamples of the pooled "
        f"out-of-fold predictions for 95% CIs"
        if val
        else "see the training run's configuration"
    )
    if val.get("leave_center_out", "").lower() == "true":
        scheme += "; leave-one-center-out (internal–external) validation"
    p = s.get("params") or {}
    filled = (
        FilledItem(
            "5a",
            "Data source",
            (
                f"{SYNTHETIC_LABEL}: the embedded synthetic cohort generator"
                if synthetic
                else "A cohort in the nbrisk record contract"
            )
            + (f" ({fp.get('source')})" if fp.get("source") else "")
            + (f"; data fingerprint sha256 {str(s.get('data_fingerprint') or fp.get('sha256', ''))[:16]}"),
        ),
        FilledItem("5b", "Dates", f"HSCT years {years[0]:g}–{years[1]:g}" if years else "not recorded"),
        FilledItem(
            "6b",
            "Eligibility",
            "Record contract: stage M (INRG) neuroblastoma, age 0.5–25 years at "
            "allo-HSCT; out-of-population records are refused.",
        ),
        FilledItem(
            "8a",
            "Outcomes",
            "Competing risks from day 0 (graft infusion): relapse/progression (cause 1) "
            "and transplant-related mortality = death without prior relapse (cause 2); "
            "overall survival from an illness–death model.",
        ),
        FilledItem(
            "8c",
            "Outcome timing",
            "Time in days from HSCT; reported at " + ", ".join(f"{h:g}" for h in horizons) + " months."
            if horizons
            else "—",
        ),
        FilledItem(
            "9a",
            "Predictors",
            f"{sum(1 for f in FIELDS.values() if f.is_predictor)} baseline fields known "
            "before day 0 (table below); nothing measured after day 0.",
        ),
        FilledItem(
            "11",
            "Missing data",
            "Optional numeric fields may be missing and are imputed inside the fitted "
            "feature pipeline (fitted on training folds only); categorical fields use "
            "an explicit 'unknown' level. Counts per field in the table below.",
        ),
        FilledItem(
            "12a–c",
            "Model and validation",
            f"{s.get('family', '?')} ({s.get('model_name', '?')}); hyper-parameters "
            + (", ".join(f"{k}={v}" for k, v in p.items()) or "defaults")
            + f"; prediction intervals: {s.get('interval_method', 'none')}"
            + (f" ({s.get('n_interval_bootstrap')} refits)" if s.get("n_interval_bootstrap") else "")
            + (f" — {s.get('interval_statement')}" if s.get("interval_statement") else "")
            + (f"; inputs: {s.get('inputs')}" if s.get("inputs") else "")
            + f". Validation: {scheme}.",
        ),
        FilledItem(
            "12e",
            "Performance measures",
            "Per cause and horizon: Wolbers C-index, IPCW time-dependent "
            "AUC, IPCW Brier score, IPA vs the Aalen–Johansen null model, "
            "calibration (ICI, slope; Austin et al. 2020), net benefit.",
        ),
        FilledItem(
            "15",
            "Model output",
            "Cumulative incidence of relapse and TRM, EFS and OS with 95% pointwise "
            "intervals; risk groups by 2-year EFS with training-tertile cut-offs "
            + ("({:.3f}, {:.3f})".format(*rm.risk_cutoffs) if getattr(rm, "risk_cutoffs", None) else ""),
        ),
        FilledItem(
            "20b",
            "Participants",
            f"n = {s.get('n', '?')}: {ev.get('relapse', '?')} relapses, "
            f"{ev.get('trm', '?')} transplant-related deaths, "
            f"{ev.get('censored', '?')} censored"
            + (
                f"; median follow-up of censored patients {s['median_followup_days'] / 30.4375:.1f} months"
                if s.get("median_followup_days")
                else ""
            ),
        ),
        FilledItem(
            "21",
            "Model development",
            f"{s.get('n', '?')} participants and "
            f"{ev.get('relapse', '?')}/{ev.get('trm', '?')} outcome events "
            "(relapse/TRM) in the final fit.",
        ),
        FilledItem(
            "22",
            "Model specification",
            "The whole fitted pipeline (feature pipeline, illness–death model, "
            "cut-offs) is registered as MLflow model "
            + f"{sources.resolved.name} version {sources.resolved.version} (run {run.get('run_id', '?')})"
            + _code_version(getattr(sources, "parent_tags", {}) or {})
            + ".",
        ),
        FilledItem(
            "23a",
            "Performance",
            "2-year C-index relapse "
            + fmt_ci("relapse", "c_index", 24)
            + "; TRM "
            + fmt_ci("trm", "c_index", 24)
            + ". Full table below.",
        ),
    )
    predictors = tuple(
        (spec.group, name, spec.label, _handling(spec, s)) for name, spec in FIELDS.items() if spec.is_predictor
    )
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
        human_items=HUMAN_ITEMS,
    )
