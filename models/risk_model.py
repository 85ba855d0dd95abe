"""The whole fitted pipeline: what MLflow stores and what the service and the reports load.

A :class:`RiskModel` bundles, fitted on one training cohort:

* ``feature_pipeline`` — :class:`nbrisk.features.pipeline.RecordFeatures` (records → numeric predictors);
* ``illness_death`` — :class:`nbrisk.models.illness_death.IllnessDeathModel`: the relapse/TRM competing-risks model
  plus the post-relapse survival model, which together give coherent OS (``os ≥ efs``, ``1 − os ≥ trm``);
* ``risk_cutoffs`` — the 2-year EFS tertile cut-offs of the training cohort (fixed at training, never re-derived);
* ``training_summary`` — n, events by cause, synthetic flag, data fingerprint, numeric ranges, category counts, the
  training distribution of predicted 2-year relapse/TRM, validation metrics with CIs, model name/family, trained_at.

Prediction intervals (95%, pointwise): the delta-method / log(−log) intervals of the illness–death model where it
offers them; otherwise a bootstrap of the fitted model (``interval_members``: the same model family refitted on
patient-level bootstrap resamples of the training cohort, percentile intervals; the feature pipeline is held fixed,
so the interval reflects model-estimation uncertainty). Without either, ``lower``/``upper`` are ``None`` — never a
fake interval.

Use :func:`fit_risk_model` to build one from validated records and derived outcomes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from nbrisk.core import SYNTHETIC_LABEL, Band, NbriskError, RiskCurves, months_to_days

#: Horizon (months) of the risk groups and of the training-distribution summary.
RISK_GROUP_HORIZON_MONTHS = 24.0
RISK_GROUPS = ("low", "intermediate", "high")


class RiskModel:
    """A fitted feature pipeline + illness–death model + risk-group cut-offs + training summary (picklable).

    Parameters
    ----------
    feature_pipeline : fitted ``RecordFeatures``.
    illness_death : fitted ``IllnessDeathModel``.
    risk_cutoffs : ``(c_low, c_high)`` 2-year EFS tertile cut-offs: EFS < c_low → ``high``, EFS ≥ c_high → ``low``.
    training_summary : dict (see the module docstring).
    interval_members : optional bootstrap refits of ``illness_death`` for percentile intervals.
    """

    def __init__(self, feature_pipeline, illness_death, risk_cutoffs: tuple[float, float],
                 training_summary: dict[str, Any], interval_members: Sequence[Any] | None = None):
        self.feature_pipeline = feature_pipeline
        self.illness_death = illness_death
        self.risk_cutoffs = (float(risk_cutoffs[0]), float(risk_cutoffs[1]))
        self.training_summary = dict(training_summary)
        self.interval_members = list(interval_members or [])

    # ------------------------------------------------------------------------------------------------------------
    @property
    def synthetic(self) -> bool:
        return bool(self.training_summary.get("synthetic", False))

    @property
    def label(self) -> str | None:
        """``SYNTHETIC — not for clinical use`` when trained on synthetic data, else None."""
        return SYNTHETIC_LABEL if self.synthetic else None

    @property
    def supports_intervals(self) -> bool:
        return bool(self.interval_members) or _model_has_intervals(self.illness_death)

    def transform(self, records: pd.DataFrame) -> pd.DataFrame:
        """Records (validated) → the numeric predictor frame the models were fitted on."""
        return self.feature_pipeline.transform(records)

    # ------------------------------------------------------------------------------------------------------------
    def predict(self, records: pd.DataFrame, horizons_months=(12, 24, 36, 60)) -> RiskCurves:
        """Relapse / TRM cumulative incidence, EFS and OS with 95% pointwise intervals.

        Parameters
        ----------
        records : validated records (:func:`nbrisk.features.record.validate_records`), one row per patient.
        horizons_months : months after HSCT (each > 0).

        Returns
        -------
        :class:`nbrisk.core.RiskCurves`, arrays of shape ``(n_patients, n_horizons)``.
        """
        h = np.atleast_1d(np.asarray(horizons_months, dtype=float))
        if h.size == 0 or np.any(~np.isfinite(h)) or np.any(h <= 0):
            raise NbriskError("horizons must be positive numbers of months")
        order = np.argsort(h, kind="stable")
        h_sorted = h[order]
        X = self.transform(records)
        times = months_to_days(h_sorted)
        est, lower, upper = _predict_states(self.illness_death, X, times, intervals=not self.interval_members)
        if self.interval_members:
            draws = np.stack([_predict_states(m, X, times, intervals=False)[0] for m in self.interval_members])
            lower = np.percentile(draws, 2.5, axis=0)
            upper = np.percentile(draws, 97.5, axis=0)
        if lower is not None:
            lower, upper = _monotone_bands(np.minimum(lower, est), np.maximum(upper, est))
        inv = np.argsort(order, kind="stable")
        names = ("relapse", "trm", "efs", "os")

        def band(i: int) -> Band:
            if lower is None:
                return Band(est[:, i][:, inv])
            return Band(est[:, i][:, inv], lower[:, i][:, inv], upper[:, i][:, inv])

        curves = RiskCurves(h, *(band(i) for i in range(len(names))))
        return curves

    def risk_groups(self, curves: RiskCurves) -> np.ndarray:
        """``low`` / ``intermediate`` / ``high`` by predicted 2-year EFS and the training tertile cut-offs."""
        idx = np.flatnonzero(np.isclose(curves.horizons_months, RISK_GROUP_HORIZON_MONTHS))
        if idx.size:
            efs2 = curves.efs.estimate[:, idx[0]]
        else:  # the caller asked for other horizons: compute 2-year EFS from the curves' source is not possible
            raise NbriskError("risk groups need the 24-month horizon in the predicted curves")
        return self.risk_groups_from_efs(efs2)

    def risk_groups_from_efs(self, efs_2y: np.ndarray) -> np.ndarray:
        c_low, c_high = self.risk_cutoffs
        efs_2y = np.asarray(efs_2y, dtype=float)
        return np.where(efs_2y < c_low, "high", np.where(efs_2y >= c_high, "low", "intermediate")).astype(object)

    # ------------------------------------------------------------------------------------------------------------
    def input_warnings(self, records: pd.DataFrame) -> list[list[str]]:
        """Per patient: inputs outside the training data's range, and fields that were missing and imputed.

        Delegates to the feature pipeline when it offers ``input_warnings``; numeric ranges of the training cohort
        (``training_summary['numeric_ranges']``) are checked here as well. Messages name fields, never values of
        identifiers.
        """
        n = len(records)
        out: list[list[str]] = [[] for _ in range(n)]
        fp = getattr(self.feature_pipeline, "input_warnings", None)
        if callable(fp):
            for i, msgs in enumerate(fp(records)):
                out[i].extend(msgs)
        ranges = self.training_summary.get("numeric_ranges", {})
        for field, (lo, hi) in ranges.items():
            if field not in records.columns:
                continue
            vals = pd.to_numeric(records[field], errors="coerce").to_numpy(dtype=float)
            for i in np.flatnonzero(np.isfinite(vals) & ((vals < lo) | (vals > hi))):
                msg = f"{field} is outside the training data's range ({_fmt(lo)}–{_fmt(hi)})"
                if msg not in out[i] and not any(field in m and "range" in m for m in out[i]):
                    out[i].append(msg)
        return out

    def contributions(self, records: pd.DataFrame) -> list[dict[str, Any]]:
        """Per patient ``{'relapse': [(field, contribution)], 'trm': [...]}``, largest absolute first.

        For regression models (cause-specific Cox, Fine–Gray) the contribution of a record field is its share of the
        linear predictor relative to the training cohort's average patient: Σ_j β_kj (x_ij − x̄_j) over the predictor
        columns j made from that field (``feature_pipeline.feature_source_``), i.e. a log-hazard-ratio (Cox) or
        log-subdistribution-hazard-ratio (Fine–Gray) contribution. Tree and boosted models have no such additive
        decomposition; rather than invent one, their lists are empty (see :attr:`contributions_available`).
        """
        coef = _coefficients(self.illness_death)
        n = len(records)
        if coef is None:
            return [{"relapse": [], "trm": [], "available": False} for _ in range(n)]
        X = self.transform(records)
        cols = list(X.columns) if isinstance(X, pd.DataFrame) else [f"x{j}" for j in range(coef.shape[1])]
        Xa = np.asarray(X, dtype=float)
        center = np.asarray(self.training_summary.get("feature_means", np.zeros(Xa.shape[1])), dtype=float)
        source = getattr(self.feature_pipeline, "feature_source_", None) or {}
        fields = [source.get(c, c) for c in cols]
        uniq = list(dict.fromkeys(fields))
        agg = np.zeros((len(cols), len(uniq)))
        for j, f in enumerate(fields):
            agg[j, uniq.index(f)] = 1.0
        out = []
        for i in range(n):
            d = (Xa[i] - center)
            row = {"available": True}
            for k, cause in enumerate(("relapse", "trm")):
                per_field = (coef[k] * d) @ agg
                pairs = sorted(zip(uniq, per_field.tolist(), strict=True), key=lambda p: -abs(p[1]))
                row[cause] = [(f, float(v)) for f, v in pairs]
            out.append(row)
        return out

    @property
    def contributions_available(self) -> bool:
        return _coefficients(self.illness_death) is not None

    # ------------------------------------------------------------------------------------------------------------
    def predict_frame(self, records: pd.DataFrame, horizons_months) -> pd.DataFrame:
        """Long DataFrame (one row per patient and horizon) with the columns of ``nbrisk predict``."""
        h = [float(x) for x in np.atleast_1d(np.asarray(horizons_months, dtype=float))]
        need = RISK_GROUP_HORIZON_MONTHS not in h
        curves = self.predict(records, [*h, RISK_GROUP_HORIZON_MONTHS] if need else h)
        groups = self.risk_groups(curves)
        return curves_to_frame(records["patient_id"].astype(str).tolist(), curves, groups, keep=len(h))

    def __repr__(self) -> str:
        s = self.training_summary
        return (f"RiskModel(model={s.get('model_name', '?')!r}, family={s.get('family', '?')!r}, "
                f"n={s.get('n', '?')}, synthetic={self.synthetic})")


def curves_to_frame(patient_ids: Sequence[str], curves: RiskCurves, groups: Sequence[str],
                    keep: int | None = None) -> pd.DataFrame:
    """RiskCurves → long frame ``patient_id, horizon_months, relapse, relapse_lower, …, os_upper, risk_group``.

    ``keep``: only the first ``keep`` horizons (an extra horizon may have been added to compute risk groups).
    Missing intervals are NaN.
    """
    k = len(curves.horizons_months) if keep is None else keep
    n = curves.n_patients
    data: dict[str, Any] = {
        "patient_id": np.repeat(np.asarray(patient_ids, dtype=object), k),
        "horizon_months": np.tile(curves.horizons_months[:k], n),
    }
    for name, band in curves.bands().items():
        data[name] = band.estimate[:, :k].reshape(-1)
        for part in ("lower", "upper"):
            arr = getattr(band, part)
            data[f"{name}_{part}"] = arr[:, :k].reshape(-1) if arr is not None else np.full(n * k, np.nan)
    data["risk_group"] = np.repeat(np.asarray(groups, dtype=object), k)
    return pd.DataFrame(data)


def validate_for_prediction(records: pd.DataFrame) -> pd.DataFrame:
    """Validate raw prediction records (outcome columns ignored) → typed frame; CohortValidationError if bad."""
    from nbrisk.features.record import OUTCOME_FIELDS, CohortValidationError, validate_records

    raw = records.drop(columns=[c for c in records.columns if c in OUTCOME_FIELDS])
    typed, problems = validate_records(raw, require_outcomes=False, require_center=False)
    if problems:
        raise CohortValidationError(problems)
    return typed


# ----------------------------------------------------------------------------------------------------------------
# adapters to the illness-death model


def _model_has_intervals(model) -> bool:
    return bool(getattr(model, "supports_intervals", False))


def _predict_states(model, X, times_days: np.ndarray, intervals: bool):
    """(n, 4, k) arrays relapse, trm, efs, os (estimate, lower, upper; bounds None without intervals)."""
    want = intervals and _model_has_intervals(model)
    res = model.predict_states(X, times_days, return_interval=want)
    if want:
        est, lo, up = (np.asarray(r, dtype=float) for r in res)
        return est, lo, up
    return np.asarray(res, dtype=float), None, None


def _monotone_bands(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bounds of monotone curves need not be monotone across horizons; make them so (cummax/cummin).

    Index 0, 1 (relapse, TRM) are non-decreasing; 2, 3 (EFS, OS) non-increasing in time.
    """
    lower, upper = lower.copy(), upper.copy()
    for i in (0, 1):
        lower[:, i] = np.maximum.accumulate(lower[:, i], axis=1)
        upper[:, i] = np.maximum.accumulate(upper[:, i], axis=1)
    for i in (2, 3):
        lower[:, i] = np.minimum.accumulate(lower[:, i], axis=1)
        upper[:, i] = np.minimum.accumulate(upper[:, i], axis=1)
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)


def _coefficients(illness_death) -> np.ndarray | None:
    """(2, p) linear-predictor coefficients of the relapse/TRM model, or None for non-linear models."""
    cr = getattr(illness_death, "cr_model_", None) or getattr(illness_death, "cr_model", None)
    coef = getattr(cr, "coef_", None)
    if coef is None:
        return None
    coef = np.asarray(coef, dtype=float)
    return coef if coef.ndim == 2 and coef.shape[0] == 2 else None


def _fmt(x: float) -> str:
    return f"{x:g}"


# ----------------------------------------------------------------------------------------------------------------
# fitting


def _make_illness_death(estimator):
    from nbrisk.models.illness_death import IllnessDeathModel

    return IllnessDeathModel(estimator)


def _fit_illness_death(estimator, X: pd.DataFrame, outcomes: pd.DataFrame):
    model = _make_illness_death(estimator)
    return model.fit(X, outcomes)


def fit_risk_model(records: pd.DataFrame, outcomes: pd.DataFrame, estimator, *, model_name: str = "model",
                   family: str | None = None, synthetic: bool = False, fingerprint: str | None = None,
                   n_interval_bootstrap: int = 0, seed: int = 0, n_jobs: int = 1,
                   validation_metrics: dict[str, float] | None = None, params: dict[str, Any] | None = None,
                   features=None) -> RiskModel:
    """Fit the whole pipeline on validated ``records`` and ``derive_outcomes`` ``outcomes``.

    Parameters
    ----------
    records : typed records (validated), one row per patient.
    outcomes : frame from :func:`nbrisk.features.outcomes.derive_outcomes` (same index order as ``records``).
    estimator : an unfitted competing-risks estimator (e.g. ``CauseSpecificCox(alpha=1.0)``); it is cloned.
    n_interval_bootstrap : refits for percentile intervals when the illness–death model has no interval of its own
        (0: no bootstrap; the model's own intervals or none).
    features : an unfitted feature pipeline (default ``make_feature_pipeline()``).
    """
    from sklearn.base import clone

    if features is None:
        from nbrisk.features.pipeline import make_feature_pipeline

        features = make_feature_pipeline()
    records = records.reset_index(drop=True)
    outcomes = outcomes.reset_index(drop=True)
    X = features.fit_transform(records)
    id_model = _fit_illness_death(clone(estimator), X, outcomes)

    members: list[Any] = []
    if n_interval_bootstrap > 0 and not _model_has_intervals(id_model):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 4242]))
        draws = [rng.integers(0, len(records), len(records)) for _ in range(n_interval_bootstrap)]

        def refit(idx):
            return _fit_illness_death(clone(estimator), X.iloc[idx].reset_index(drop=True),
                                      outcomes.iloc[idx].reset_index(drop=True))

        members = Parallel(n_jobs=n_jobs)(delayed(refit)(idx) for idx in draws)

    horizons = np.array([12.0, RISK_GROUP_HORIZON_MONTHS, 36.0, 60.0])
    est, _, _ = _predict_states(id_model, X, months_to_days(horizons), intervals=False)
    efs2 = est[:, 2, 1]
    cutoffs = tuple(float(q) for q in np.quantile(efs2, [1 / 3, 2 / 3]))
    summary = training_summary(records, outcomes, X, est, horizons, synthetic=synthetic, fingerprint=fingerprint)
    summary.update({
        "model_name": model_name,
        "family": family or type(estimator).__name__,
        "params": {k: v for k, v in (params or {}).items()},
        "validation_metrics": dict(validation_metrics or {}),
        "interval_method": ("bootstrap" if members else "model" if _model_has_intervals(id_model) else "none"),
        "n_interval_bootstrap": len(members),
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    })
    return RiskModel(features, id_model, cutoffs, summary, members)


def training_summary(records: pd.DataFrame, outcomes: pd.DataFrame, X, est: np.ndarray, horizons: np.ndarray,
                     *, synthetic: bool, fingerprint: str | None) -> dict[str, Any]:
    """Aggregate, non-identifying description of the training cohort (no patient-level values)."""
    from nbrisk.features.record import FIELDS, PREDICTOR_FIELDS

    from nbrisk.core import Cause

    ev = outcomes["event"].to_numpy()
    numeric_ranges, category_counts, missing = {}, {}, {}
    for f in PREDICTOR_FIELDS:
        if f not in records.columns:
            continue
        spec = FIELDS[f]
        col = records[f]
        missing[f] = int(col.isna().sum())
        if spec.kind in ("number", "integer"):
            vals = pd.to_numeric(col, errors="coerce").dropna()
            if len(vals):
                numeric_ranges[f] = (float(vals.min()), float(vals.max()))
        elif spec.kind in ("enum", "boolean"):
            category_counts[f] = {str(k): int(v) for k, v in col.value_counts(dropna=True).items()}
    pct = [5, 25, 50, 75, 95]
    idx2 = int(np.flatnonzero(horizons == RISK_GROUP_HORIZON_MONTHS)[0])
    dist = {
        name: dict(zip([f"p{p}" for p in pct],
                       (float(v) for v in np.percentile(est[:, i, idx2], pct)), strict=True))
        for i, name in enumerate(("relapse", "trm", "efs", "os"))
    }
    Xa = np.asarray(X, dtype=float)
    return {
        "n": len(records),
        "events": {"censored": int((ev == Cause.CENSORED).sum()), "relapse": int((ev == Cause.RELAPSE).sum()),
                   "trm": int((ev == Cause.TRM).sum())},
        "synthetic": bool(synthetic),
        "label": SYNTHETIC_LABEL if synthetic else None,
        "data_fingerprint": fingerprint,
        "numeric_ranges": numeric_ranges,
        "category_counts": category_counts,
        "missing_counts": missing,
        "predicted_2y_distribution": dist,
        "feature_names": list(X.columns) if isinstance(X, pd.DataFrame) else None,
        "feature_means": Xa.mean(axis=0).tolist(),
        "median_followup_days": float(np.median(outcomes["time"][ev == Cause.CENSORED]))
        if (ev == Cause.CENSORED).any() else None,
    }
