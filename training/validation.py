"""Validation machinery: repeated stratified K-fold with inner tuning, bootstrap CIs, optimism, leave-center-out.

Everything here works on **records** (the record contract) and **outcomes** (from
:func:`nbrisk.features.outcomes.derive_outcomes`), because the feature pipeline is part of what is validated: it is
refitted inside every training fold (imputation and scaling learn nothing from the test fold).

* :func:`make_folds` — repeated K-fold stratified by cause (censored / relapse / TRM); fixed by the seed and the
  same for every model, so models are compared on identical splits.
* :func:`tune` — hyper-parameters chosen by an inner K-fold **inside** the training data only (nested CV, no
  leakage), scored by the mean IPCW Brier score of relapse and TRM over the horizons (a proper scoring rule).
* :func:`cross_validate` — out-of-fold CIFs for every patient and repeat, per-fold metrics.
* :func:`bootstrap_indices` + :func:`pooled_metrics` — metrics of the out-of-fold predictions with percentile 95%
  CIs over patient-level bootstrap resamples, the same resamples for every model (so differences between models
  have CIs too; ``docs/statistics.md``).
* :func:`optimism_corrected` — Harrell's bootstrap optimism correction of the final model's apparent performance
  (Harrell, Lee & Mark 1996, Stat Med 15:361; Steyerberg 2019, ch. 17).
* :func:`leave_center_out` — internal–external validation: each center in turn is the test set
  (Steyerberg & Harrell 2016, J Clin Epidemiol 69:245).

Times: horizons are given in months and converted once with :func:`nbrisk.core.months_to_days`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold

from nbrisk.core import CAUSES, State, months_to_days
from nbrisk.training.config import ModelSpec

if TYPE_CHECKING:
    from nbrisk.models.risk_model import RiskModel

# ----------------------------------------------------------------------------------------------------------------
# folds


@dataclass(frozen=True)
class Fold:
    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray


def make_folds(event: np.ndarray, n_splits: int, n_repeats: int, seed: int) -> list[Fold]:
    """Repeated K-fold stratified by cause, fixed by ``seed`` (same folds for every model of a run)."""
    event = np.asarray(event).astype(int)
    n_splits = _feasible_splits(event, n_splits)
    rskf = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    folds = []
    for i, (tr, te) in enumerate(rskf.split(np.zeros(len(event)), event)):
        folds.append(Fold(repeat=i // n_splits, fold=i % n_splits, train=tr, test=te))
    return folds


def _feasible_splits(event: np.ndarray, n_splits: int) -> int:
    """Stratified K-fold needs each cause at least K times; shrink K on tiny data rather than fail."""
    counts = np.bincount(event, minlength=3)
    smallest = int(counts[counts > 0].min())
    return max(2, min(n_splits, smallest))


# ----------------------------------------------------------------------------------------------------------------
# one fitted candidate = a RiskModel from the one model factory


def make_features(splines: bool = False):
    """The feature pipeline (``splines``: add linear splines of the continuous inputs, for a data-driven Cox)."""
    from nbrisk.features.pipeline import make_feature_pipeline

    return make_feature_pipeline(splines=True) if splines else make_feature_pipeline()


def fit_candidate(
    spec: ModelSpec,
    params: dict[str, Any],
    records: pd.DataFrame,
    outcomes: pd.DataFrame,
    seed: int,
    evaluate_on: Sequence[pd.DataFrame] = (),
    **final: Any,
) -> RiskModel:
    """The model of ``spec`` with hyper-parameters ``params``, fitted on ``records``/``outcomes`` by the one model
    factory :func:`nbrisk.models.risk_model.fit_risk_model` (feature pipeline + illness–death model).

    Validation refits (tuning, cross-validation, optimism, leave-center-out) pass ``evaluate_on`` (the records they
    will predict; see ``fit_risk_model`` for unseen category levels) and nothing else: no intervals, no training
    summary. The final fit passes the ``fit_risk_model`` keywords of the registered model in ``final``
    (``n_interval_bootstrap``, ``describe=True``, ``model_name``, …): the object validated by the optimism correction
    is then the object registered.
    """
    from nbrisk.models.risk_model import fit_risk_model

    estimator = spec.make_estimator(random_state=seed, **{k: v for k, v in params.items() if not k.startswith("_")})
    final = {"describe": False, **final}
    if final["describe"]:  # the registered model's summary names its hyper-parameters
        final.setdefault("params", params)
    return fit_risk_model(
        records, outcomes, estimator, seed=seed, features=make_features(spec.splines), evaluate_on=evaluate_on, **final
    )


def predict_states(model: RiskModel, records: pd.DataFrame, horizons_months: Sequence[float]) -> np.ndarray:
    """(n, 4, k) point predictions of ``model`` at ``horizons_months``, axis 1 in :class:`~nbrisk.core.State` order
    (EFS, relapse CIF, TRM CIF, overall survival): what the metrics read."""
    return model.predict(records, horizons_months, intervals=False).states()


def fitted_params(params: dict[str, Any], model: RiskModel) -> dict[str, Any]:
    """``params`` plus, for the run log, ``_unseen_level_rows`` when the fit had to encode unseen levels."""
    return {**params, "_unseen_level_rows": model.unseen_level_rows} if model.unseen_level_rows else dict(params)


# ----------------------------------------------------------------------------------------------------------------
# metrics (nbrisk.training.metrics) behind one small adapter


def horizon_label(horizon_months: float) -> str:
    """The horizon part of a metric name: ``24m``."""
    return f"{round(float(horizon_months), 1):g}m"


def metric_key(cause: str, metric: str, horizon_months: float) -> str:
    """Flat metric name as :func:`nbrisk.training.metrics.evaluate_predictions` writes it (``relapse_cindex_24m``)."""
    return f"{cause}_{metric}_{horizon_label(horizon_months)}"


def evaluate(
    outcomes: pd.DataFrame, pred: np.ndarray, horizons_months: Sequence[float], *, full: bool = False
) -> dict[str, float]:
    """Metrics of predictions ``pred`` (n, 4, k) (event-free, relapse, TRM, OS) at ``horizons_months``.

    ``full=True``: everything :func:`nbrisk.training.metrics.evaluate_predictions` computes (AUC, Wolbers C-index,
    Brier, IPA, calibration ICI/E50/E90/slope per cause and horizon; IBS; EFS and OS Harrell/Uno C and OS IBS).
    ``full=False``: the cheap set used inside bootstrap loops and for tuning — per cause and horizon the
    time-dependent AUC (Blanche 2013), the C-index (Wolbers 2009), the IPCW Brier score and IPA (van Geloven 2022),
    with the same names.
    """
    from nbrisk.models.nonparametric import aalen_johansen, censoring_survival
    from nbrisk.training import metrics as M

    event = outcomes["event"].to_numpy().astype(int)
    time = outcomes["time"].to_numpy(dtype=float)
    hd = months_to_days(horizons_months)
    if full:
        return M.evaluate_predictions(
            event,
            time,
            pred[:, : State.OS],  # the competing-risks states (EFS, relapse, TRM)
            hd,
            horizons_months=list(horizons_months),
            calibration=True,
            os_event=outcomes["os_event"].to_numpy(),
            os_time=outcomes["os_time"].to_numpy(dtype=float),
            os_surv=pred[:, State.OS],
        )
    g = censoring_survival(time, event)
    out: dict[str, float] = {}
    n = len(event)
    for cause in CAUSES:
        name = cause.key
        null = aalen_johansen(time, event, int(cause)).at(hd)
        for j, (tau, h) in enumerate(zip(hd, horizons_months, strict=True)):
            f = pred[:, State(cause), j]
            out[metric_key(name, "auc", h)] = M.time_dependent_auc(event, time, f, tau, int(cause), g)
            out[metric_key(name, "cindex", h)] = M.concordance_index_cr(event, time, f, tau, int(cause))
            bs = M.brier_score_cr(event, time, f, tau, int(cause), g)
            bs0 = M.brier_score_cr(event, time, np.full(n, null[j]), tau, int(cause), g)
            out[metric_key(name, "brier", h)] = bs
            out[metric_key(name, "ipa", h)] = 1.0 - bs / bs0 if bs0 > 0 else float("nan")
    return out


def score_for_tuning(outcomes: pd.DataFrame, pred: np.ndarray, horizons_months: Sequence[float]) -> float:
    """Mean IPCW Brier score of relapse and TRM over the horizons (lower is better; a proper scoring rule).

    The Brier scores of :func:`evaluate`, in its order, without the rest of its metric set (tuning reads no other).
    """
    from nbrisk.models.nonparametric import censoring_survival
    from nbrisk.training import metrics as M

    event = outcomes["event"].to_numpy().astype(int)
    time = outcomes["time"].to_numpy(dtype=float)
    g = censoring_survival(time, event)
    vals = []
    for cause in CAUSES:
        for j, tau in enumerate(months_to_days(horizons_months)):
            v = M.brier_score_cr(event, time, pred[:, State(cause), j], tau, int(cause), g)
            if np.isfinite(v):
                vals.append(v)
    return float(np.mean(vals)) if vals else np.inf


# ----------------------------------------------------------------------------------------------------------------
# tuning and cross-validation


def tune(
    spec: ModelSpec,
    records: pd.DataFrame,
    outcomes: pd.DataFrame,
    horizons_months: Sequence[float],
    inner_splits: int,
    seed: int,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """Choose the grid point with the best inner-CV score, using only ``records`` (an outer training set).

    The inner splits are independent: ``n_jobs`` > 1 runs them in parallel (the whole-cohort tuning of the final
    model; inside an outer fold the fold itself is the parallel task). Within a split the feature pipeline is fitted
    once and shared by every grid point (it does not depend on the estimator's parameters), as are the test
    predictors, so a grid of g points costs one pipeline fit per split instead of g.
    """
    candidates = spec.candidates()
    if len(candidates) == 1:
        return candidates[0]
    splits = _tuning_splits(outcomes, inner_splits, seed)
    if n_jobs == 1:  # inside an outer fold (a worker already): no nested pool
        per_split = [_tune_split(spec, records, outcomes, horizons_months, seed, tr, te) for tr, te in splits]
    else:
        jobs = (delayed(_tune_split)(spec, records, outcomes, horizons_months, seed, tr, te) for tr, te in splits)
        per_split = Parallel(n_jobs=n_jobs)(jobs)
    return _best_candidate(candidates, per_split)


def _tuning_splits(outcomes: pd.DataFrame, inner_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    event = outcomes["event"].to_numpy()
    skf = StratifiedKFold(n_splits=_feasible_splits(event, inner_splits), shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(event)), event))


def _best_candidate(candidates: list[dict[str, Any]], per_split: list[list[float]]) -> dict[str, Any]:
    # mean over splits in split order, per candidate: the same summation as scoring candidate by candidate
    scores = [float(np.mean([s[i] for s in per_split])) for i in range(len(candidates))]
    return candidates[int(np.argmin(scores))]


def _tune_split(spec, records, outcomes, horizons_months, seed, tr, te) -> list[float]:
    """Scores of every grid point on one inner split (training rows ``tr``, test rows ``te``).

    The score reads only the relapse and TRM CIFs, which the illness–death model takes from its competing-risks
    model unchanged; so only that estimator is fitted and asked (no post-relapse model, no OS convolution), on
    predictors built once for all grid points. The scores equal those of ``fit_candidate`` + ``predict_states``
    (checked in ``tests/training/test_tuning_shared.py``).
    """
    import warnings

    from sklearn.base import clone

    from nbrisk.models._base import CIFCoherenceWarning, check_competing_risks_target
    from nbrisk.models.risk_model import prepare_features

    tr_rec, te_rec = records.iloc[tr], records.iloc[te]
    prepared = prepare_features(tr_rec, make_features(spec.splines), [te_rec])
    X_tr = prepared.X.reset_index(drop=True)
    X_te = prepared.transform(te_rec)
    event, time = check_competing_risks_target(outcomes.iloc[tr])
    y_tr = pd.DataFrame({"event": event, "time": time})
    h = np.unique(np.asarray(horizons_months, dtype=float))  # RiskModel.predict's horizons (sorted, unique)
    days = months_to_days(h)
    out = []
    for params in spec.candidates():
        estimator = spec.make_estimator(random_state=seed, **{k: v for k, v in params.items() if not k.startswith("_")})
        with warnings.catch_warnings():
            # as fit_risk_model and RiskModel.predict: the tail rescaling is part of the estimator
            warnings.simplefilter("ignore", CIFCoherenceWarning)
            cif = clone(estimator).fit(X_tr, y_tr).predict_cumulative_incidence(X_te, days)
        states = np.full((cif.shape[0], 4, cif.shape[2]), np.nan)
        states[:, : State.OS] = cif  # EFS, relapse, TRM; OS is not scored
        out.append(score_for_tuning(outcomes.iloc[te], states, horizons_months))
    return out


@dataclass
class CVResult:
    """Out-of-fold predictions and per-fold metrics of one model on the shared folds."""

    name: str
    oof: np.ndarray  # (n_repeats, n, 4, k) out-of-fold event-free/relapse/TRM/OS
    per_fold: list[dict[str, float]]  # one dict per outer fold (in fold order)
    params: list[dict[str, Any]]  # tuned params per outer fold
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pooled(self) -> np.ndarray:
        """(n, 4, k) out-of-fold predictions averaged over repeats (each repeat's prediction is out-of-fold)."""
        return self.oof.mean(axis=0)


def _run_fold(
    spec: ModelSpec,
    fold: Fold,
    records: pd.DataFrame,
    outcomes: pd.DataFrame,
    horizons_months: Sequence[float],
    inner_splits: int,
    seed: int,
):
    tr_rec, tr_out = records.iloc[fold.train], outcomes.iloc[fold.train]
    params = tune(spec, tr_rec, tr_out, horizons_months, inner_splits, seed)
    te_rec = records.iloc[fold.test]
    fitted = fit_candidate(spec, params, tr_rec, tr_out, seed, evaluate_on=[te_rec])
    cif = predict_states(fitted, te_rec, horizons_months)
    metrics = evaluate(outcomes.iloc[fold.test], cif, horizons_months)
    return fold, fitted_params(params, fitted), cif, metrics


def cross_validate(
    spec: ModelSpec,
    records: pd.DataFrame,
    outcomes: pd.DataFrame,
    folds: list[Fold],
    horizons_months: Sequence[float],
    inner_splits: int,
    seed: int,
    n_jobs: int = 1,
    progress: Callable[[int], None] | None = None,
    tune_whole: bool = False,
) -> CVResult:
    """Nested CV of one model: tune in each outer training set, predict its test set.

    ``tune_whole``: also tune on the whole cohort (what :func:`tune` of ``records`` gives; ``extra["tuned_params"]``
    of the result), its inner splits dispatched first in the same batch of tasks as the folds: they are independent
    of the folds, and one batch keeps both workers busy where a separate small batch would leave one idle.
    """
    import time

    t0 = time.perf_counter()
    n, k = len(records), len(horizons_months)
    n_repeats = max(f.repeat for f in folds) + 1
    oof = np.full((n_repeats, n, 4, k), np.nan)
    candidates = spec.candidates()
    whole = _tuning_splits(outcomes, inner_splits, seed) if tune_whole and len(candidates) > 1 else []
    jobs = [delayed(_tune_split)(spec, records, outcomes, horizons_months, seed, tr, te) for tr, te in whole]
    jobs += [delayed(_run_fold)(spec, f, records, outcomes, horizons_months, inner_splits, seed) for f in folds]
    per_fold, params, per_split = [], [], []
    for i, res in enumerate(Parallel(n_jobs=n_jobs, return_as="generator")(jobs)):
        if i < len(whole):
            per_split.append(res)
            continue
        fold, p, cif, metrics = res
        oof[fold.repeat, fold.test] = cif
        per_fold.append(metrics)
        params.append(p)
        if progress is not None:
            progress(1)
    if np.isnan(oof).any():  # pragma: no cover - folds partition the data
        raise RuntimeError("some patients got no out-of-fold prediction")
    extra: dict[str, Any] = {}
    if tune_whole:
        extra["tuned_params"] = _best_candidate(candidates, per_split) if whole else candidates[0]
    return CVResult(spec.name, oof, per_fold, params, seconds=time.perf_counter() - t0, extra=extra)


# ----------------------------------------------------------------------------------------------------------------
# bootstrap CIs on the same resamples for every model


def bootstrap_indices(event: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """(B, n) patient indices of bootstrap resamples, drawn once per run and shared by every model.

    Resampling is stratified by cause so every resample has events of both causes (otherwise a metric of a rare
    cause is undefined in some resamples and the percentile interval is biased toward the others).
    """
    event = np.asarray(event).astype(int)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 20_260_601]))
    out = np.empty((n_bootstrap, len(event)), dtype=np.int64)
    groups = [np.flatnonzero(event == c) for c in np.unique(event)]
    for b in range(n_bootstrap):
        out[b] = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
    return out


def pooled_metrics(
    outcomes: pd.DataFrame, cif: np.ndarray, horizons_months: Sequence[float], boot: np.ndarray, n_jobs: int = 1
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Point metrics (full set) of predictions ``cif`` (n, 4, k) plus percentile 95% CIs over the resamples ``boot``.

    Returns ``(metrics, replicates)``: ``metrics`` has every point value and ``<name>_lower``/``<name>_upper`` for
    the bootstrapped (cheap-set) ones; ``replicates[name]`` the B replicate values (kept for paired comparisons).
    """
    point = evaluate(outcomes, cif, horizons_months, full=True)
    # every resample at once, as frequency weights on the original data (nbrisk.training.metrics.replicate_metrics):
    # the same values as evaluating each resample (to rounding; tests/training/test_metrics_batched.py) at a small
    # fraction of the cost, so no process pool is needed (``n_jobs`` is kept for callers)
    reps = _bootstrap_replicates(outcomes, cif, horizons_months, boot) if len(boot) else {}
    replicates: dict[str, list[float]] = {}
    out = dict(point)
    for name in point:
        vals = np.asarray(reps.get(name, np.full(len(boot), np.nan)), dtype=float)
        if vals.size == 0 or not np.isfinite(vals).any():
            continue
        replicates[name] = [float(v) for v in vals]
        finite = vals[np.isfinite(vals)]
        out[f"{name}_lower"], out[f"{name}_upper"] = (float(q) for q in np.percentile(finite, [2.5, 97.5]))
    return out, replicates


def _bootstrap_replicates(
    outcomes: pd.DataFrame,
    cif: np.ndarray,
    horizons_months: Sequence[float],
    boot: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The cheap metric set of :func:`evaluate` on every resample of ``boot`` (B, n) — or under each row of
    frequency ``weights`` (B, n) — at once: name → (B,) values (:func:`nbrisk.training.metrics.replicate_metrics`)."""
    from nbrisk.training import metrics as M

    event = outcomes["event"].to_numpy().astype(int)
    time = outcomes["time"].to_numpy(dtype=float)
    labels = [horizon_label(h) for h in horizons_months]
    if weights is None:
        if boot is None:
            raise ValueError("give the resamples (boot) or their frequency weights")
        weights = _counts(boot, len(event))
    return M.replicate_metrics(event, time, cif[:, : State.OS], months_to_days(horizons_months), labels, weights)


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    from nbrisk.training.metrics import resample_counts

    return resample_counts(idx, n)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float] | None:
    """Mean and percentile 95% CI of ``a − b`` over shared bootstrap resamples (None if not comparable)."""
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape or a_arr.size == 0:
        return None
    d = a_arr - b_arr
    d = d[np.isfinite(d)]
    if d.size == 0:
        return None
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


# ----------------------------------------------------------------------------------------------------------------
# Harrell's optimism correction


def optimism_corrected(
    spec: ModelSpec,
    params: dict[str, Any],
    final: RiskModel,
    records: pd.DataFrame,
    outcomes: pd.DataFrame,
    horizons_months: Sequence[float],
    n_boot: int,
    seed: int,
    n_jobs: int = 1,
) -> dict[str, float]:
    """Harrell's bootstrap optimism-corrected performance of the final model.

    apparent = metric of the final model on its own training data; for each bootstrap sample b a model is refitted
    with the chosen hyper-parameters, optimism_b = metric(model_b on sample b) − metric(model_b on the original
    data); corrected = apparent − mean_b optimism_b. (Hyper-parameters are not re-tuned inside each bootstrap to
    keep training time bounded; this slightly understates the optimism of tuned models. Documented in the run.)

    Returns ``{"apparent_<metric>", "optimism_<metric>", "corrected_<metric>"}`` (cheap metric set).
    """
    boot = _optimism_resamples(outcomes, n_boot, seed)
    jobs = (delayed(_optimism)(spec, params, records, outcomes, horizons_months, seed, idx) for idx in boot)
    optimisms = Parallel(n_jobs=n_jobs)(jobs) if len(boot) else []
    return _optimism_summary(final, records, outcomes, horizons_months, optimisms)


def _optimism_resamples(outcomes: pd.DataFrame, n_boot: int, seed: int) -> np.ndarray:
    if n_boot <= 0:
        return np.empty((0, len(outcomes)), dtype=np.int64)
    return bootstrap_indices(outcomes["event"].to_numpy(), n_boot, seed + 7919)


def _optimism_summary(final, records, outcomes, horizons_months, optimisms: list[dict[str, float]]):
    apparent = evaluate(outcomes, predict_states(final, records, horizons_months), horizons_months)
    if not optimisms:
        return {f"apparent_{k}": v for k, v in apparent.items()}
    out: dict[str, float] = {}
    for k, v in apparent.items():
        vals = np.array([o.get(k, np.nan) for o in optimisms], dtype=float)
        opt = float(np.nanmean(vals)) if np.isfinite(vals).any() else np.nan
        out[f"apparent_{k}"] = v
        out[f"optimism_{k}"] = opt
        out[f"corrected_{k}"] = v - opt
    return out


def _optimism(spec, params, records, outcomes, horizons_months, seed, idx: np.ndarray) -> dict[str, float]:
    rec_b, out_b = records.iloc[idx].reset_index(drop=True), outcomes.iloc[idx].reset_index(drop=True)
    model_b = fit_candidate(spec, params, rec_b, out_b, seed, evaluate_on=[records])
    # The resample's patients are rows of the original cohort and a prediction is row by row, so one prediction of
    # the original cohort serves both evaluations: on the resample (its counts as frequency weights) and on the
    # original data (weights 1) — the two metric sets of evaluate(), to rounding, at the cost of one prediction.
    pred = predict_states(model_b, records, horizons_months)
    weights = np.vstack([_counts(idx, len(records)), np.ones((1, len(records)))])
    both = _bootstrap_replicates(outcomes, pred, horizons_months, weights=weights)
    return {k: float(v[0] - v[1]) for k, v in both.items()}


# ----------------------------------------------------------------------------------------------------------------
# internal-external validation


def center_groups(records: pd.DataFrame, min_size: int) -> pd.Series | None:
    """Center label per patient, small centers pooled into ``"other"``; None without usable centers."""
    if "center_id" not in records.columns:
        return None
    centers = records["center_id"].astype(object).where(records["center_id"].notna(), "unknown").astype(str)
    counts = centers.value_counts()
    small = counts.index[counts < min_size]
    centers = centers.where(~centers.isin(small), "other")
    return centers if centers.nunique() >= 3 else None


def leave_center_out(
    spec: ModelSpec,
    params: dict[str, Any],
    records: pd.DataFrame,
    outcomes: pd.DataFrame,
    horizons_months: Sequence[float],
    min_center_size: int,
    seed: int,
    n_jobs: int = 1,
) -> dict[str, Any] | None:
    """Leave-one-center-out: fit on the other centers (chosen params), evaluate on the left-out one.

    Returns ``{"per_center": {center: {n, metrics...}}, "summary": {metric: mean, metric_min, metric_max}}`` or
    None when there are fewer than 3 usable centers. Metrics of a center with no event of a cause are NaN.
    """
    centers = center_groups(records, min_center_size)
    if centers is None:
        return None
    labels = sorted(centers.unique())
    jobs = (delayed(_left_out)(spec, params, records, outcomes, horizons_months, seed, centers, c) for c in labels)
    return _loco_summary(Parallel(n_jobs=n_jobs)(jobs))


def _loco_summary(results: list) -> dict[str, Any]:
    per_center = {c: {"n": n, **m} for c, n, m in results}
    summary: dict[str, float] = {}
    names = sorted({k for m in per_center.values() for k in m if k != "n"})
    for name in names:
        vals = np.array([m.get(name, np.nan) for m in per_center.values()], dtype=float)
        if np.isfinite(vals).any():
            summary[name] = float(np.nanmean(vals))
            summary[f"{name}_min"] = float(np.nanmin(vals))
            summary[f"{name}_max"] = float(np.nanmax(vals))
    return {"per_center": per_center, "summary": summary}


def final_fit_and_refits(
    spec: ModelSpec,
    params: dict[str, Any],
    records: pd.DataFrame,
    outcomes: pd.DataFrame,
    horizons_months: Sequence[float],
    *,
    n_optimism: int,
    min_center_size: int | None,
    seed: int,
    n_jobs: int = 1,
    final: dict[str, Any] | None = None,
) -> tuple[RiskModel, dict[str, float], dict[str, Any] | None]:
    """The final model (:func:`fit_candidate` with the keywords ``final``), :func:`optimism_corrected` with
    ``n_optimism`` refits and :func:`leave_center_out` (``min_center_size`` None: skipped) as one batch of independent
    tasks — the same fits and values as the three calls in turn, without the final fit running alone while the pool
    waits, or one loop's last tasks leaving a worker idle before the next loop starts. For a final model without
    interval refits (those are a nested parallel loop of their own). Returns ``(final, optimism, loco)``."""
    boot = _optimism_resamples(outcomes, n_optimism, seed)
    centers = center_groups(records, min_center_size) if min_center_size is not None else None
    labels = sorted(centers.unique()) if centers is not None else []
    jobs = [delayed(fit_candidate)(spec, params, records, outcomes, seed, **(final or {}))]  # the longest first
    jobs += [delayed(_optimism)(spec, params, records, outcomes, horizons_months, seed, idx) for idx in boot]
    jobs += [delayed(_left_out)(spec, params, records, outcomes, horizons_months, seed, centers, c) for c in labels]
    results = Parallel(n_jobs=n_jobs)(jobs)
    model = results[0]
    opt = _optimism_summary(model, records, outcomes, horizons_months, results[1 : 1 + len(boot)])
    loco = _loco_summary(results[1 + len(boot) :]) if centers is not None else None
    return model, opt, loco


def _left_out(spec, params, records, outcomes, horizons_months, seed, centers: pd.Series, c: str):
    test = np.flatnonzero(centers.to_numpy() == c)
    train = np.flatnonzero(centers.to_numpy() != c)
    fitted = fit_candidate(
        spec, params, records.iloc[train], outcomes.iloc[train], seed, evaluate_on=[records.iloc[test]]
    )
    cif = predict_states(fitted, records.iloc[test], horizons_months)
    return c, len(test), evaluate(outcomes.iloc[test], cif, horizons_months)
