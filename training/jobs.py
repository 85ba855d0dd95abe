"""Training jobs: ``train`` (validate, compare, register), ``compare``, ``promote`` and ``predict``.

These are the functions behind ``nbrisk train|compare|promote|predict``; :mod:`nbrisk.training.commands` only
prints. MLflow is reached only through :mod:`nbrisk.training.tracking`.

``train`` in order:

1. read the config, then the data — a file through :func:`nbrisk.features.io.read_cohort` (every problem reported,
   :class:`~nbrisk.features.record.CohortValidationError` raised **before anything is logged**) or, with no file,
   the embedded synthetic cohort (``make_synthetic_cohort(n, seed, preset)`` from the config; labelled
   ``SYNTHETIC — not for clinical use``);
2. fingerprint the data (sha256 of the canonical typed records; n; events by cause; synthetic flag);
3. for every configured model, on the **same** folds and bootstrap resamples: nested repeated stratified K-fold
   (tuning in the inner loop), pooled out-of-fold metrics with 95% CIs, then the final model on the whole cohort
   (tuned by inner CV on the whole cohort), Harrell's optimism correction and leave-one-center-out;
4. log everything (parent run + one child run per model), register every model with covariates as a version of
   ``nbrisk``; the best new one gets the alias ``candidate``; the very first registered model becomes ``champion``
   (afterwards ``champion`` moves only through :func:`promote`).

Ranking ("best"): mean IPA of relapse and TRM at the primary horizon (out-of-fold; IPA is a proper-scoring-rule
summary that rewards discrimination and calibration together), ties broken by the mean C-index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nbrisk.core import CAUSES, SYNTHETIC_LABEL, Cause, NbriskError
from nbrisk.training.config import TrainConfig, load_config
from nbrisk.training.validation import metric_key

CAUSE_NAMES = tuple(cause.key for cause in CAUSES)  # "relapse", "trm": metric-name prefixes
#: Per-cause metrics shown on the leaderboard (at the primary horizon).
LEADERBOARD_METRICS = ("cindex", "auc", "brier", "ipa", "ici", "cal_slope")


# ----------------------------------------------------------------------------------------------------------------
# data


@dataclass
class TrainingData:
    """Validated records (typed), derived outcomes (same row order) and their fingerprint."""

    records: pd.DataFrame
    outcomes: pd.DataFrame
    synthetic: bool
    source: str
    fingerprint: dict[str, Any] = field(default_factory=dict)


def load_training_data(data: str | Path | None, cfg: TrainConfig) -> TrainingData:
    """Read and validate a cohort file, or generate the embedded synthetic cohort when ``data`` is None.

    Raises :class:`~nbrisk.features.record.CohortValidationError` (exit 1) listing every problem of a bad file,
    and :class:`NbriskError` for a missing or unreadable file. Nothing is logged before this returns.
    """
    from nbrisk.features.record import ID_FIELDS, PREDICTOR_FIELDS

    if data is None:
        from nbrisk.features.synthetic import make_synthetic_cohort

        raw = make_synthetic_cohort(cfg.data.synthetic_n, cfg.data.synthetic_seed, cfg.data.synthetic_preset)
        typed, outcomes = _validate_raw(raw, source="embedded synthetic cohort")
        records = typed[[c for c in [*ID_FIELDS, *PREDICTOR_FIELDS] if c in typed.columns]]
        synthetic = True
        source = (
            f"embedded synthetic cohort (n={cfg.data.synthetic_n}, seed={cfg.data.synthetic_seed}, "
            f"preset={cfg.data.synthetic_preset})"
        )
        sha = None
    else:
        from nbrisk.features.io import read_cohort

        cohort = read_cohort(Path(data))
        records, outcomes, synthetic, sha = cohort.records, cohort.outcomes, cohort.synthetic, cohort.fingerprint
        source = Path(data).name
    records = records.reset_index(drop=True)
    outcomes = outcomes.reset_index(drop=True)
    td = TrainingData(records, outcomes, synthetic, source)
    td.fingerprint = data_fingerprint(records, outcomes, synthetic, sha256=sha)
    return td


def _validate_raw(raw: pd.DataFrame, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from nbrisk.features.outcomes import derive_outcomes
    from nbrisk.features.record import CohortValidationError, validate_records

    typed, problems = validate_records(raw, require_outcomes=True, require_center=True)
    if problems:
        raise CohortValidationError(problems, source=source)
    typed = typed.reset_index(drop=True)
    return typed, derive_outcomes(typed)


def data_fingerprint(
    records: pd.DataFrame, outcomes: pd.DataFrame, synthetic: bool, sha256: str | None = None
) -> dict[str, Any]:
    """sha256, n, events by cause and the synthetic flag of the training data.

    ``sha256``: the file's digest (:func:`nbrisk.features.io.read_cohort`) when the data came from a file, so any
    changed byte changes it; for generated data the digest of the canonical typed records and outcomes
    (column-sorted CSV). Either identifies the data without revealing it.
    """
    if sha256 is None:
        canon = pd.concat([records[sorted(records.columns)], outcomes[["event", "time"]]], axis=1).to_csv(
            index=False, date_format="%Y-%m-%d", float_format="%.10g"
        )
        sha256 = hashlib.sha256(canon.encode("utf-8")).hexdigest()
    ev = outcomes["event"].to_numpy()
    return {
        "sha256": sha256,
        "n": len(records),
        "events_censored": int((ev == Cause.CENSORED).sum()),
        "events_relapse": int((ev == Cause.RELAPSE).sum()),
        "events_trm": int((ev == Cause.TRM).sum()),
        "synthetic": bool(synthetic),
    }


def input_example(n: int = 2) -> pd.DataFrame:
    """Synthetic example records for the MLflow signature (never real patients: MLflow stores them in clear)."""
    from nbrisk.features.record import OUTCOME_FIELDS, example_record

    rec = example_record(with_outcomes=False)
    rows = []
    for i in range(n):
        r = dict(rec)
        r["patient_id"] = f"EX-{i + 1:04d}"
        rows.append({k: v for k, v in r.items() if k not in OUTCOME_FIELDS})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------------
# training


@dataclass
class ModelResult:
    name: str
    family: str
    pooled: dict[str, float]
    per_fold: list[dict[str, float]]
    replicates: dict[str, Any]
    params: dict[str, Any]
    extra: dict[str, float]
    tables: dict[str, Any]
    risk_model: Any | None
    run_id: str | None = None
    version: str | None = None
    seconds: float = 0.0


@dataclass
class TrainResult:
    experiment: str
    parent_run_id: str
    fingerprint: dict[str, Any]
    models: list[ModelResult]
    leaderboard: list[dict[str, Any]]
    candidate_version: str | None
    champion_version: str | None
    seconds: float
    synthetic: bool


def ranking_score(metrics: dict[str, float], horizon: float) -> tuple[float, float]:
    """(mean IPA, mean C-index) of relapse and TRM at ``horizon`` months; higher is better."""
    ipa = [metrics.get(metric_key(c, "ipa", horizon), np.nan) for c in CAUSE_NAMES]
    cidx = [metrics.get(metric_key(c, "cindex", horizon), np.nan) for c in CAUSE_NAMES]
    return (
        float(np.nanmean(ipa)) if np.isfinite(ipa).any() else -np.inf,
        float(np.nanmean(cidx)) if np.isfinite(cidx).any() else -np.inf,
    )


def leaderboard_rows(results: list[dict[str, Any]], horizon: float) -> list[dict[str, Any]]:
    """Rows ``{name, family, version, metrics...}`` sorted best first (see :func:`ranking_score`)."""
    rows = []
    for r in results:
        m = r["metrics"]
        row = {
            "model": r["name"],
            "family": r.get("family", ""),
            "inputs": r.get("inputs", ""),
            "version": r.get("version"),
        }
        for c in CAUSE_NAMES:
            for metric in LEADERBOARD_METRICS:
                key = metric_key(c, metric, horizon)
                row[key] = m.get(key, np.nan)
                row[f"{key}_lower"] = m.get(f"{key}_lower", np.nan)
                row[f"{key}_upper"] = m.get(f"{key}_upper", np.nan)
        row["score"] = ranking_score(m, horizon)
        rows.append(row)
    rows.sort(key=lambda r: (-r["score"][0], -r["score"][1], r["model"]))
    for i, r in enumerate(rows, start=1):
        r["rank"] = i
        r["score"] = list(r["score"])
    return rows


def train(
    data: str | Path | None = None,
    config: str | Path | TrainConfig | None = None,
    experiment: str = "nbrisk",
    progress: Callable[[str, int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    cluster: str | None = None,
    cluster_progress: Callable[[Any], None] | None = None,
) -> TrainResult:
    """Validate, compare and register every configured model (see the module docstring).

    ``progress(task, done, total)`` and ``log(message)`` are optional callbacks (the CLI draws a progress bar).
    ``cluster``: a Dask scheduler address or ``local`` (default: the config's ``cluster``, else the local pool); every
    fit is then a task there (:mod:`nbrisk.training.cluster`), ``cluster_progress`` receives its task counts.
    """
    from nbrisk.training.cluster import training_cluster

    cfg = config if isinstance(config, TrainConfig) else load_config(config)
    with training_cluster(cluster if cluster is not None else cfg.cluster, on_progress=cluster_progress):
        return _train(data, config, experiment, progress, log)


def _train(data, config, experiment, progress, log) -> TrainResult:
    from nbrisk.training import plots, tracking
    from nbrisk.training import validation as V
    from nbrisk.training.cluster import run_fit, share_data

    say = log or (lambda _msg: None)
    tick = progress or (lambda _task, _done, _total: None)
    t_start = time.perf_counter()
    cfg = config if isinstance(config, TrainConfig) else load_config(config)
    config_text = None
    if not isinstance(config, TrainConfig):
        from nbrisk.training.config import resolve_config_path

        config_text = resolve_config_path(config).read_text(encoding="utf-8")

    # 1-2. data (a bad file stops here, before MLflow is touched)
    td = load_training_data(data, cfg)
    say(
        f"data: {td.source}: n={td.fingerprint['n']}, relapse={td.fingerprint['events_relapse']}, "
        f"TRM={td.fingerprint['events_trm']}, censored={td.fingerprint['events_censored']}"
        + (f"  [{SYNTHETIC_LABEL}]" if td.synthetic else "")
    )
    records, outcomes = td.records, td.outcomes
    share_data(records, outcomes)  # to every worker once, when training on a cluster
    event = outcomes["event"].to_numpy()
    horizons = list(cfg.horizons_months)
    vcfg = cfg.validation
    folds = V.make_folds(event, vcfg.n_splits, vcfg.n_repeats, cfg.seed)
    boot = V.bootstrap_indices(event, vcfg.n_bootstrap, cfg.seed)
    # identifies the exact resamples: paired comparisons at promotion are valid only between runs sharing them
    resamples_sha = hashlib.sha256(np.ascontiguousarray(boot).tobytes()).hexdigest()

    # 3. validate every model on the same folds / resamples
    results: list[ModelResult] = []
    total_steps = len(cfg.models) * (len(folds) + 1)
    done = 0
    for spec in cfg.models:
        t0 = time.perf_counter()
        say(
            f"model {spec.name} ({spec.family}): {len(folds)} outer folds"
            + (
                f", {len(spec.candidates())} grid points tuned in {vcfg.inner_splits}-fold inner CV"
                if len(spec.candidates()) > 1
                else ""
            )
        )

        def bump(k: int, _name=spec.name) -> None:
            nonlocal done
            done += k
            tick(_name, done, total_steps)

        cv = V.cross_validate(
            spec,
            records,
            outcomes,
            folds,
            horizons,
            vcfg.inner_splits,
            cfg.seed,
            n_jobs=cfg.n_jobs,
            progress=bump,
            tune_whole=not spec.is_null,  # the final model's tuning, in the same batch of tasks as the folds
        )
        pooled, metric_replicates = V.pooled_metrics(outcomes, cv.pooled, horizons, boot, n_jobs=cfg.n_jobs)
        pooled.update(calibration_cis(outcomes, cv.pooled, horizons, vcfg.primary_horizon_months, boot))
        replicates: dict[str, Any] = dict(metric_replicates)
        pooled.update(calibration_in_the_large_metrics(outcomes, cv.pooled, horizons))
        recal, recal_note = (None, "") if spec.is_null else recalibrate_if_off(cfg, outcomes, cv.pooled, folds, pooled)
        replicates["_meta"] = {"resamples_sha256": resamples_sha, "n_bootstrap": len(boot)}
        tables: dict[str, Any] = {"fold_params": cv.params}
        extra: dict[str, float] = {"seconds_cv": cv.seconds}
        risk_model: Any = None  # the registered RiskModel (its summary is completed below)
        params = spec.candidates()[0]
        if not spec.is_null:
            params = cv.extra["tuned_params"]  # tuned by inner CV on the whole cohort
            n_interval = (
                cfg.final.n_interval_bootstrap if spec.n_interval_bootstrap is None else spec.n_interval_bootstrap
            )
            # the final model, fitted once: its apparent performance is optimism-corrected below and it is what
            # gets registered (the object validated is the object registered)
            final_kw = dict(
                describe=True,
                model_name=spec.name,
                family=spec.family,
                synthetic=td.synthetic,
                fingerprint=td.fingerprint["sha256"],
                n_interval_bootstrap=n_interval,
                n_jobs=cfg.n_jobs,
                validation_metrics=pooled,
            )
            n_opt = vcfg.n_optimism if spec.optimism else 0
            loco_size = vcfg.min_center_size if vcfg.leave_center_out and spec.leave_center_out else None
            if n_interval == 0:  # one batch: final fit, optimism and leave-center-out refits side by side
                risk_model, opt, loco = V.final_fit_and_refits(
                    spec,
                    params,
                    records,
                    outcomes,
                    horizons,
                    n_optimism=n_opt,
                    min_center_size=loco_size,
                    seed=cfg.seed,
                    n_jobs=cfg.n_jobs,
                    final=final_kw,
                )
            else:  # the interval refits are a parallel loop of their own inside the final fit
                risk_model = run_fit(V.fit_candidate, spec, params, records, outcomes, cfg.seed, **final_kw)
                opt = V.optimism_corrected(
                    spec, params, risk_model, records, outcomes, horizons, n_opt, cfg.seed, n_jobs=cfg.n_jobs
                )
                loco = (
                    None
                    if loco_size is None
                    else V.leave_center_out(
                        spec, params, records, outcomes, horizons, loco_size, cfg.seed, n_jobs=cfg.n_jobs
                    )
                )
            extra.update(opt)
            if loco is not None:  # None: not configured, or fewer than 3 usable centers
                tables["leave_center_out"] = loco
                extra.update({f"loco_{k}": v for k, v in loco["summary"].items()})
            risk_model.recalibration = recal  # None unless the family was off in the large
            # the validation results complete the model's (frozen) training summary
            risk_model.training_summary = dataclasses.replace(
                risk_model.training_summary,
                **interval_statement(cfg, spec, risk_model.supports_intervals),
                inputs=describe_inputs(spec),
                recalibration=recal_note,
                validation_scheme=(
                    f"out-of-fold predictions of {vcfg.n_splits}-fold cross-validation × {vcfg.n_repeats} "
                    f"repeat(s) stratified by cause, hyper-parameters tuned in a {vcfg.inner_splits}-fold "
                    f"inner loop; 95% CIs from {vcfg.n_bootstrap} patient bootstrap resamples"
                ),
                optimism_corrected={k[len("corrected_") :]: v for k, v in opt.items() if k.startswith("corrected_")},
                leave_center_out={k[len("loco_") :]: v for k, v in extra.items() if k.startswith("loco_")},
            )
        tables["calibration"] = _calibration_tables(outcomes, cv.pooled, horizons)
        tables["net_benefit"] = _net_benefit_tables(outcomes, cv.pooled, horizons)
        seconds = time.perf_counter() - t0
        extra["seconds_total"] = seconds
        results.append(
            ModelResult(
                spec.name,
                spec.family,
                pooled,
                cv.per_fold,
                replicates,
                params,
                extra,
                tables,
                risk_model,
                seconds=seconds,
            )
        )
        bump(1)
        if risk_model is not None:
            summ = risk_model.training_summary
            say(f"  intervals: {summ.interval_statement}" + (f"; {summ.recalibration}" if summ.recalibration else ""))
        say(f"  done in {seconds:.1f} s")

    # 4. log and register
    board = leaderboard_rows(
        [
            {"name": r.name, "family": r.family, "inputs": describe_inputs(cfg.model(r.name)), "metrics": r.pooled}
            for r in results
        ],
        vcfg.primary_horizon_months,
    )
    name = _registered_name()
    example = input_example()
    with tracking.parent_run(
        experiment,
        run_name=f"train-{td.fingerprint['sha256'][:8]}",
        tags={"nbrisk.synthetic": str(td.synthetic).lower(), "nbrisk.data_sha256": td.fingerprint["sha256"]},
    ) as parent_id:
        tracking.log_data_and_config(td.fingerprint | {"source": td.source}, cfg.model_dump(mode="json"), config_text)
        for r in results:
            figures = plots.validation_figures(r.tables, vcfg.primary_horizon_months, r.name, synthetic=td.synthetic)
            out = tracking.log_model_run(
                parent_id,
                experiment,
                tracking.ModelLog(
                    name=r.name,
                    family=r.family,
                    params=r.params,
                    pooled=r.pooled,
                    per_fold=r.per_fold,
                    extra=r.extra,
                    replicates=r.replicates,
                    tables=r.tables,
                    figures=figures,
                    risk_model=r.risk_model,
                    input_example=example,
                ),
                register_as=name if r.risk_model is not None else None,
            )
            plots.close(figures)
            r.run_id, r.version = out["run_id"], out["version"]
            if r.version is not None:
                tracking.tag_run(r.run_id, "nbrisk.version", r.version)
        by_name = {r.name: r for r in results}
        for row in board:
            row["version"] = by_name[row["model"]].version
        tracking.log_leaderboard(board)
        # the best model that was registered (has a version)
        best = next((v for row in board if (v := by_name[row["model"]].version) is not None), None)
        candidate = champion = None
        if best is not None:
            tracking.set_alias(name, "candidate", best)
            candidate = best
            champion = tracking.get_alias_version(name, "champion")
            if champion is None:
                tracking.set_alias(name, "champion", best)
                champion = best
    return TrainResult(
        experiment,
        parent_id,
        td.fingerprint,
        results,
        board,
        candidate,
        champion,
        time.perf_counter() - t_start,
        td.synthetic,
    )


def _registered_name() -> str:
    from nbrisk.settings import get_settings

    return get_settings().registered_model_name


def _calibration_tables(outcomes: pd.DataFrame, cif: np.ndarray, horizons: list[float]) -> dict[str, Any]:
    """Observed (Aalen–Johansen) vs mean predicted CIF by decile of predicted risk, per cause and horizon."""
    from nbrisk.training import metrics as M

    out: dict[str, Any] = {}
    y = outcomes[["event", "time"]]
    from nbrisk.core import months_to_days

    for c, cause in zip(CAUSE_NAMES, CAUSES, strict=True):
        for j, h in enumerate(horizons):
            tab = M.calibration_table(*M.target(y), cif[:, int(cause), j], float(months_to_days(h)), cause=int(cause))
            out[metric_key(c, "calibration", h)] = _jsonable(tab)
    return out


def calibration_in_the_large_metrics(
    outcomes: pd.DataFrame, pred: np.ndarray, horizons: list[float]
) -> dict[str, float]:
    """``{cause}_citl_{h}m``: mean out-of-fold predicted CIF − Aalen–Johansen CIF, relapse and TRM, every horizon.

    ``pred`` is (n, 4, k) in state order (event-free, relapse, TRM, OS). The promotion gate reads these
    (:func:`promotion_checks`); see :mod:`nbrisk.models.recalibration` for what calibration in the large is.
    """
    from nbrisk.core import months_to_days
    from nbrisk.models.recalibration import calibration_in_the_large

    event, time_ = outcomes["event"].to_numpy(), outcomes["time"].to_numpy(dtype=float)
    days = months_to_days(horizons).tolist()
    out: dict[str, float] = {}
    for c, cause in zip(CAUSE_NAMES, (Cause.RELAPSE, Cause.TRM), strict=True):
        diff = calibration_in_the_large(event, time_, pred[:, int(cause), :], days, int(cause))
        out.update({metric_key(c, "citl", h): float(d) for h, d in zip(horizons, diff, strict=True)})
    return out


def recalibrate_if_off(
    cfg: TrainConfig, outcomes: pd.DataFrame, pred: np.ndarray, folds: list[Any], pooled: dict[str, float]
) -> tuple[Any, str]:
    """Recalibrate a family that is off in the large; return (recalibration or None, a note for the summary).

    If any logged ``{cause}_citl_{h}m`` at a gated horizon exceeds ``promotion.max_calibration_in_the_large``, a
    logistic shift of the relapse and TRM CIFs (:class:`nbrisk.models.recalibration.LogitShiftRecalibration`) is
    learnt on all out-of-fold predictions and attached to the registered model. ``pooled`` is updated in place: the
    raw values move to ``{cause}_citl_raw_{h}m`` and ``{cause}_citl_{h}m`` becomes the *cross-fitted* calibration in
    the large of the recalibrated model (shift learnt on the other folds of the first repeat), which the promotion
    gate then judges — not the trivially perfect in-sample value.
    """
    from nbrisk.core import State, months_to_days
    from nbrisk.models.recalibration import LogitShiftRecalibration, cross_fitted

    horizons = list(cfg.horizons_months)
    gated = [h for h in cfg.promotion.calibration_horizons_months if h in horizons]
    bound = cfg.promotion.max_calibration_in_the_large
    keys = [metric_key(c, "citl", h) for c in CAUSE_NAMES for h in horizons]
    if not any(abs(pooled.get(metric_key(c, "citl", h), 0.0)) > bound for c in CAUSE_NAMES for h in gated):
        return None, ""
    cif = pred[:, [State.RELAPSE, State.TRM]]
    event, time_ = outcomes["event"].to_numpy(), outcomes["time"].to_numpy(dtype=float)
    fold_of = np.empty(len(event), dtype=int)
    for f in folds:
        if f.repeat == 0:
            fold_of[f.test] = f.fold
    days = months_to_days(horizons).tolist()
    crossed = cross_fitted(event, time_, cif, days, fold_of)
    stacked = np.zeros_like(pred)
    stacked[:, State.RELAPSE], stacked[:, State.TRM] = crossed[:, 0], crossed[:, 1]
    after = calibration_in_the_large_metrics(outcomes, stacked, horizons)
    worst_raw = max(abs(pooled[k]) for k in keys)
    for k in keys:
        pooled[k.replace("_citl_", "_citl_raw_")] = pooled[k]
        pooled[k] = after[k]
    recal = LogitShiftRecalibration().fit(event, time_, cif, days)
    recal.times_ = np.asarray(horizons, dtype=float)  # applied to curves, whose horizons are in months
    note = (
        f"recalibrated in the large (logistic shift of the relapse and TRM CIFs learnt on out-of-fold predictions): "
        f"worst out-of-fold error {100 * worst_raw:.1f} points before, "
        f"{100 * max(abs(after[k]) for k in keys):.1f} after (cross-fitted)"
    )
    return recal, note


def describe_inputs(spec: Any) -> str:
    """Which inputs a configured model uses, in words (leaderboard and model card)."""
    if spec.is_null:
        return "none (covariate-free Aalen-Johansen)"
    feats = spec.params.get("features")
    if feats == "clinical":
        text = "pre-specified clinical predictors (CLINICAL_PREDICTORS: the literature table's factors)"
    elif feats:
        text = "selected columns: " + ", ".join(map(str, feats if isinstance(feats, list) else [feats]))
    else:
        text = "all pipeline columns"
    if spec.splines:
        text += " + linear splines of the continuous inputs"
    if spec.params.get("time_varying"):
        text += "; time-varying: " + ", ".join(map(str, spec.params["time_varying"]))
    return text


def interval_statement(cfg: TrainConfig, spec: Any, has_intervals: bool) -> dict[str, Any]:
    """What the model's metadata says about its intervals: method + refits + measured coverage, or no interval."""
    refits = cfg.interval_refits(spec)
    if has_intervals and refits > 0:
        text = (
            f"95% percentile bootstrap of the fitted illness-death model, {refits} refits; measured coverage of the "
            f"true CIF: {spec.interval_coverage.strip()}"
        )
        return {"interval_statement": text, "interval_coverage": spec.interval_coverage.strip()}
    return {
        "interval_statement": (
            "no interval: none is served for this model (n_interval_bootstrap = 0); no family's bootstrap intervals "
            "reached 90-97% coverage of the true CIF in every benchmark world (benchmarks/results/worlds.md)"
        ),
        "interval_coverage": "",
    }


#: Bootstrap resamples (the first ones of the shared set) behind the CIs of the calibration measures: the smoothed
#: calibration curve costs ~50 ms per resample and cause, so not all resamples are used.
N_CALIBRATION_RESAMPLES = 50


def calibration_cis(
    outcomes: pd.DataFrame, cif: np.ndarray, horizons: list[float], horizon: float, boot: np.ndarray
) -> dict[str, float]:
    """Percentile 95% CIs of the ICI and the calibration slope of each cause at the primary ``horizon`` (months),
    over the first :data:`N_CALIBRATION_RESAMPLES` of the shared bootstrap resamples (Austin et al. 2020: the
    calibration measures of the pooled out-of-fold predictions ``cif`` (n, states, len(horizons)), recomputed per
    resample). Keys as the training jobs name them: ``relapse_ici_24m_lower``, ``trm_cal_slope_24m_upper``, ..."""
    from nbrisk.core import months_to_days
    from nbrisk.training import metrics as M

    if float(horizon) not in [float(h) for h in horizons] or len(boot) == 0:
        return {}
    j = [float(h) for h in horizons].index(float(horizon))
    event = outcomes["event"].to_numpy().astype(int)
    time_ = outcomes["time"].to_numpy(dtype=float)
    tau = float(months_to_days(horizon))
    out: dict[str, float] = {}
    for c, cause in zip(CAUSE_NAMES, (Cause.RELAPSE, Cause.TRM), strict=True):
        ici, slope = [], []
        for idx in boot[:N_CALIBRATION_RESAMPLES]:
            res = M.calibration_cr(event[idx], time_[idx], cif[idx, int(cause), j], tau, int(cause), table=False)
            ici.append(res.ici)
            slope.append(res.slope)
        for name, vals in (("ici", ici), ("cal_slope", slope)):
            v = np.asarray(vals, dtype=float)
            v = v[np.isfinite(v)]
            if v.size >= 10:
                key = metric_key(c, name, horizon)
                out[f"{key}_lower"], out[f"{key}_upper"] = (float(q) for q in np.percentile(v, [2.5, 97.5]))
    return out


def _net_benefit_tables(outcomes: pd.DataFrame, cif: np.ndarray, horizons: list[float]) -> dict[str, Any]:
    """Net benefit of 'treat if predicted risk ≥ p' (model, treat all, treat none) over thresholds."""
    from nbrisk.core import months_to_days
    from nbrisk.training import metrics as M

    out: dict[str, Any] = {}
    y = outcomes[["event", "time"]]
    thresholds = np.round(np.arange(0.05, 0.81, 0.05), 2)
    for c, cause in zip(CAUSE_NAMES, CAUSES, strict=True):
        for j, h in enumerate(horizons):
            tab = M.net_benefit(
                *M.target(y), cif[:, int(cause), j], float(months_to_days(h)), cause=int(cause), thresholds=thresholds
            )
            out[metric_key(c, "net_benefit", h)] = _jsonable(tab)
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, pd.DataFrame):
        return {k: [_jsonable(v) for v in obj[k].tolist()] for k in obj.columns}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


# ----------------------------------------------------------------------------------------------------------------
# compare / promote / predict


def compare(experiment: str = "nbrisk") -> dict[str, Any]:
    """Leaderboard of the latest training run of ``experiment`` (metrics with 95% CIs, best first)."""
    from nbrisk.training import tracking
    from nbrisk.training.config import ValidationConfig

    parent, children = tracking.latest_training(experiment)
    horizon = float(
        parent["params"].get("config.validation.primary_horizon_months", ValidationConfig().primary_horizon_months)
    )
    rows = leaderboard_rows(children, horizon)
    return {
        "parent_run_id": parent["run_id"],
        "horizon": horizon,
        "rows": rows,
        "synthetic": parent["params"].get("data.synthetic") == "True",
        "data_sha256": parent["params"].get("data.sha256"),
    }


@dataclass
class GateCheck:
    gate: str
    passed: bool
    detail: str


def promotion_checks(
    name: str, version: str, alias: str = "champion", config: TrainConfig | None = None
) -> tuple[list[GateCheck], dict[str, Any], dict[str, Any] | None]:
    """Evaluate the promotion gates of ``name``/``version`` against the current holder of ``alias``.

    Gates (at the primary horizon, both causes):

    * **discrimination not worse beyond the CI**: if both versions were validated on the same data (same
      fingerprint) and the same bootstrap resamples (same hash of the resample indices), the paired bootstrap
      difference of the C-index (candidate − champion)
      must have its 95% upper bound ≥ 0; otherwise (different data) the candidate's CI upper bound must reach the
      champion's point estimate;
    * **calibration passes**: ICI ≤ ``promotion.max_ici`` and calibration slope within
      ``promotion.calibration_slope_range`` (pooled out-of-fold, both causes);
    * **calibrated in the large**: |mean out-of-fold predicted CIF − Aalen–Johansen| ≤
      ``promotion.max_calibration_in_the_large`` for relapse and TRM at each of
      ``promotion.calibration_horizons_months`` that was trained (:func:`calibration_in_the_large_checks`).

    Returns ``(checks, candidate_info, champion_info)``.
    """
    from nbrisk.training import tracking
    from nbrisk.training.validation import paired_difference

    cfg = config or load_config()
    horizon = cfg.validation.primary_horizon_months
    hl = f"{horizon:g} months"
    cand = tracking.version_info(name, version)
    champ_version = tracking.get_alias_version(name, alias)
    champ = tracking.version_info(name, champ_version) if champ_version not in (None, str(version)) else None
    checks: list[GateCheck] = []
    cm = cand["metrics"]
    for c in CAUSE_NAMES:
        ici = cm.get(metric_key(c, "ici", horizon))
        if ici is None:
            checks.append(GateCheck(f"{c} calibration (ICI)", False, "no ICI logged for this version"))
        else:
            ok = ici <= cfg.promotion.max_ici
            checks.append(
                GateCheck(
                    f"{c} calibration (ICI at {hl})",
                    ok,
                    f"ICI {ici:.3f} {'≤' if ok else '>'} bound {cfg.promotion.max_ici:.3f}",
                )
            )
        slope = cm.get(metric_key(c, "cal_slope", horizon))
        lo, hi = cfg.promotion.calibration_slope_range
        if slope is None:
            checks.append(GateCheck(f"{c} calibration slope", False, "no calibration slope logged"))
        else:
            ok = lo <= slope <= hi
            checks.append(
                GateCheck(
                    f"{c} calibration slope at {hl}",
                    ok,
                    f"slope {slope:.2f} {'within' if ok else 'outside'} [{lo:g}, {hi:g}]",
                )
            )
    checks.extend(calibration_in_the_large_checks(cm, cfg))
    if champ is not None:
        # paired only when both were validated on the same data AND the same bootstrap resamples
        same_data = (
            cand["fingerprint"].get("sha256") is not None
            and cand["fingerprint"].get("sha256") == champ["fingerprint"].get("sha256")
            and cand["replicates"].get("_meta") is not None
            and cand["replicates"].get("_meta") == champ["replicates"].get("_meta")
        )
        for c in CAUSE_NAMES:
            key = metric_key(c, "cindex", horizon)
            a, b = cm.get(key), champ["metrics"].get(key)
            if a is None or b is None:
                checks.append(GateCheck(f"{c} discrimination", False, f"{key} missing for one of the versions"))
                continue
            diff = (
                paired_difference(cand["replicates"].get(key, []), champ["replicates"].get(key, []))
                if same_data
                else None
            )
            if diff is not None:
                mean, dlo, dhi = diff
                ok = dhi >= 0.0
                checks.append(
                    GateCheck(
                        f"{c} discrimination (C-index at {hl})",
                        ok,
                        f"candidate {a:.3f} vs champion {b:.3f}; paired difference {mean:+.3f} "
                        f"(95% CI {dlo:+.3f} to {dhi:+.3f}){'' if ok else ' — worse beyond the CI'}",
                    )
                )
            else:
                up = cm.get(f"{key}_upper", a)
                ok = up >= b
                checks.append(
                    GateCheck(
                        f"{c} discrimination (C-index at {hl})",
                        ok,
                        f"candidate {a:.3f} (upper 95% {up:.3f}) vs champion {b:.3f}; different data, unpaired"
                        f"{'' if ok else ' — worse beyond the CI'}",
                    )
                )
    return checks, cand, champ


def calibration_in_the_large_checks(metrics: dict[str, float], cfg: TrainConfig) -> list[GateCheck]:
    """One gate per cause: every logged ``{cause}_citl_{h}m`` within ±``max_calibration_in_the_large``.

    A version trained before this metric existed (none logged) fails: its calibration in the large is unknown.
    """
    bound = cfg.promotion.max_calibration_in_the_large
    horizons = [h for h in cfg.promotion.calibration_horizons_months if h in cfg.horizons_months]
    out = []
    for c in CAUSE_NAMES:
        logged = {h: metrics.get(metric_key(c, "citl", h)) for h in horizons}
        if not horizons or any(v is None for v in logged.values()):
            out.append(GateCheck(f"{c} calibration in the large", False, "no calibration in the large logged"))
            continue
        vals: dict[float, float] = {h: float(v) for h, v in logged.items() if v is not None}
        worst = max(vals, key=lambda h: abs(vals[h]))
        ok = all(abs(v) <= bound for v in vals.values())
        detail = ", ".join(f"{h:g} mo {100 * v:+.1f}" for h, v in vals.items())
        raw = {h: metrics.get(metric_key(c, "citl_raw", h)) for h in horizons}
        raw_vals = {h: float(v) for h, v in raw.items() if v is not None}
        if len(raw_vals) == len(raw):  # training recalibrated this model: say so, and from what
            detail += " after recalibration (cross-fitted); before: " + ", ".join(
                f"{h:g} mo {100 * v:+.1f}" for h, v in raw_vals.items()
            )
        out.append(
            GateCheck(
                f"{c} calibration in the large",
                ok,
                f"mean predicted − Aalen–Johansen (points): {detail}; "
                + (
                    f"all within ±{100 * bound:.1f}"
                    if ok
                    else f"{worst:g} months off by more than {100 * bound:.1f} points — miscalibrated in the large"
                ),
            )
        )
    return out


def promote(name: str, version: str, alias: str = "champion", config: str | Path | None = None) -> dict[str, Any]:
    """Move ``alias`` of registered model ``name`` to ``version`` if every gate passes; else NbriskError (exit 1)."""
    from nbrisk.training import tracking

    cfg = load_config(config)
    checks, cand, champ = promotion_checks(name, str(version), alias, cfg)
    failed = [c for c in checks if not c.passed]
    result: dict[str, Any] = {
        "name": name,
        "version": str(version),
        "alias": alias,
        "checks": checks,
        "candidate": cand,
        "champion": champ,
        "promoted": not failed,
    }
    if failed:
        result["reasons"] = [f"{c.gate}: {c.detail}" for c in failed]
        return result
    tracking.set_alias(name, alias, str(version))
    return result


def parse_horizons(text: str | None) -> list[float]:
    """``"12,24,36,60"`` → [12.0, 24.0, 36.0, 60.0]; each in 1–120 months (NbriskError otherwise)."""
    from nbrisk.core import DEFAULT_HORIZONS_MONTHS

    if text is None or not str(text).strip():
        return [float(h) for h in DEFAULT_HORIZONS_MONTHS]
    try:
        vals = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise NbriskError(f"--horizons must be comma-separated numbers of months, got {text!r}") from None
    if not vals or any(not (1 <= v <= 120) for v in vals):
        raise NbriskError("each horizon must be between 1 and 120 months")
    return vals


def predict(file: Path, out: Path, model: str | None = None, horizons: str | None = None) -> pd.DataFrame:
    """Score the patients of ``file`` with ``model`` (default ``models:/nbrisk@champion``) into a long CSV."""
    from nbrisk.features.io import read_records
    from nbrisk.models.pyfunc import load_risk_model

    h = parse_horizons(horizons)
    records = read_records(Path(file))  # every problem at once (CohortValidationError) before loading a model
    risk_model = load_risk_model(model)
    frame = risk_model.predict_frame(records, h)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False, float_format="%.6f")
    return frame
