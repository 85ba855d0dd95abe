"""The whole fitted pipeline: what MLflow stores and what the service and the reports load.

A :class:`RiskModel` bundles, fitted on one training cohort:

* ``feature_pipeline`` — :class:`nbrisk.features.pipeline.RecordFeatures` (records → numeric predictors);
* ``illness_death`` — :class:`nbrisk.models.illness_death.IllnessDeathModel`: the relapse/TRM competing-risks model
  plus the post-relapse survival model, which together give coherent OS (``os ≥ efs``, ``1 − os ≥ trm``);
* ``risk_cutoffs`` — the 2-year EFS tertile cut-offs of the training cohort (fixed at training, never re-derived);
* ``training_summary`` — a frozen :class:`nbrisk.core.TrainingSummary`: n, events by cause, synthetic flag, data
  fingerprint, numeric ranges, category counts, the training distribution of predicted 2-year risks, the observed
  cohort curve and similar-patient groups, typed validation metrics with CIs, model name/family, trained_at.

Prediction intervals (95%, pointwise) come from the illness–death model: a bootstrap of the whole fitted pair
(relapse/TRM model + post-relapse model; refit on patient resamples, percentile intervals; evaluated in closed form
for the cause-specific Cox family). The feature pipeline is held fixed across resamples, so the intervals reflect
model-estimation uncertainty. A model fitted without intervals returns ``lower``/``upper`` = ``None`` —
never a fake interval.

:func:`fit_risk_model` is the one way to build one — for cross-validation refits, the final fit and its
registration, and tests alike — from validated records and derived outcomes.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nbrisk.core import (
    DEFAULT_HORIZONS_MONTHS,
    SYNTHETIC_LABEL,
    TRAINING_SUMMARY_VERSION,
    Band,
    Cause,
    NbriskError,
    ObservedGroup,
    RiskCurves,
    TrainingSummary,
    ValidationMetric,
)
from nbrisk.models._base import CIFCoherenceWarning

#: Horizon (months) of the risk groups and of the training-distribution summary.
RISK_GROUP_HORIZON_MONTHS = 24.0


class RiskModel:
    """A fitted feature pipeline + illness–death model + risk-group cut-offs + training summary (picklable).

    Parameters
    ----------
    feature_pipeline : fitted ``RecordFeatures``.
    illness_death : fitted ``IllnessDeathModel``.
    risk_cutoffs : ``(c_low, c_high)`` 2-year EFS tertile cut-offs: EFS < c_low → ``high``, EFS ≥ c_high → ``low``;
        ``None`` for a validation refit (``fit_risk_model(..., describe=False)``), which has no risk groups.
    training_summary : :class:`nbrisk.core.TrainingSummary` (see the module docstring); ``None`` for a validation
        refit.
    drop_columns : predictor columns removed after the feature pipeline (see ``evaluate_on`` of
        :func:`fit_risk_model`). unseen_level_rows : how many evaluation records made that necessary.
    """

    #: class-level defaults: what a model pickled before these attributes existed means
    drop_columns: tuple[str, ...] = ()
    unseen_level_rows: int = 0

    def __init__(
        self,
        feature_pipeline,
        illness_death,
        risk_cutoffs: tuple[float, float] | None,
        training_summary: TrainingSummary | None,
        drop_columns: Sequence[str] = (),
        unseen_level_rows: int = 0,
    ):
        self.feature_pipeline = feature_pipeline
        self.illness_death = illness_death
        self.risk_cutoffs = None if risk_cutoffs is None else (float(risk_cutoffs[0]), float(risk_cutoffs[1]))
        self.training_summary = training_summary
        self.drop_columns = tuple(drop_columns)
        self.unseen_level_rows = int(unseen_level_rows)

    # ------------------------------------------------------------------------------------------------------------
    @property
    def synthetic(self) -> bool:
        return self.training_summary is not None and bool(self.training_summary.get("synthetic", False))

    @property
    def label(self) -> str | None:
        """``SYNTHETIC — not for clinical use`` when trained on synthetic data, else None."""
        return SYNTHETIC_LABEL if self.synthetic else None

    @property
    def supports_intervals(self) -> bool:
        return self.illness_death.supports_intervals and bool(self.illness_death.replicates_)

    def transform(self, records: pd.DataFrame) -> pd.DataFrame:
        """Records (validated) → the numeric predictor frame the models were fitted on."""
        X = self.feature_pipeline.transform(records)
        return X.drop(columns=list(self.drop_columns)) if self.drop_columns else X

    # ------------------------------------------------------------------------------------------------------------
    def predict(
        self, records: pd.DataFrame, horizons_months=DEFAULT_HORIZONS_MONTHS, intervals: bool = True
    ) -> RiskCurves:
        """Relapse / TRM cumulative incidence, EFS and OS with 95% pointwise intervals.

        Parameters
        ----------
        records : validated records (:func:`nbrisk.features.record.validate_records`), one row per patient; or the
            typed columns of :func:`nbrisk.features.record.validate_columns` (a mapping of numpy arrays: the HTTP
            service's path, which builds no DataFrame).
        horizons_months : months after HSCT (each > 0); sorted and de-duplicated (curves are in time order).
        intervals : ``False``: point estimates only (``lower``/``upper`` None), which skips the bootstrap replicates.

        Returns
        -------
        :class:`nbrisk.core.RiskCurves`, arrays of shape ``(n_patients, n_horizons)``, ``horizons_months`` sorted.
        """
        h = np.atleast_1d(np.asarray(horizons_months, dtype=float))
        if h.size == 0 or np.any(~np.isfinite(h)) or np.any(h <= 0):
            raise NbriskError("horizons must be positive numbers of months")
        with warnings.catch_warnings():
            # Rescaling ΔΛ1 + ΔΛ2 > 1 in the sparse tail is part of the estimator's definition (docs/statistics.md);
            # it is counted once at training (training_summary['cif_rescaled']), not repeated per request.
            warnings.simplefilter("ignore", CIFCoherenceWarning)
            curves = self.illness_death.predict_curves(self.transform(records), np.unique(h), intervals=intervals)
        # calibration in the large learnt at training when the family was off (nbrisk.models.recalibration)
        recal = getattr(self, "recalibration", None)
        if recal is None:
            return curves
        from nbrisk.models.recalibration import recalibrate_curves

        return recalibrate_curves(curves, recal)

    def risk_groups(self, curves: RiskCurves) -> np.ndarray:
        """``low`` / ``intermediate`` / ``high`` by predicted 2-year EFS and the training tertile cut-offs."""
        idx = np.flatnonzero(np.isclose(curves.horizons_months, RISK_GROUP_HORIZON_MONTHS))
        if idx.size:
            efs2 = curves.efs.estimate[:, idx[0]]
        else:  # the caller asked for other horizons: compute 2-year EFS from the curves' source is not possible
            raise NbriskError("risk groups need the 24-month horizon in the predicted curves")
        return self.risk_groups_from_efs(efs2)

    def risk_groups_from_efs(self, efs_2y: np.ndarray) -> np.ndarray:
        if self.risk_cutoffs is None:
            raise NbriskError("this model was fitted for validation only (no training summary, no risk groups)")
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
        n = len(records) if isinstance(records, pd.DataFrame) else len(records["patient_id"])
        out: list[list[str]] = [[] for _ in range(n)]
        fp = getattr(self.feature_pipeline, "input_warnings", None)
        if callable(fp):
            for i, msgs in enumerate(fp(records)):
                out[i].extend(msgs)
        ranges = self.training_summary.get("numeric_ranges", {}) if self.training_summary is not None else {}
        for field, (lo, hi) in ranges.items():
            if field not in records:
                continue
            col = records[field]
            if isinstance(col, np.ndarray) and col.dtype.kind == "f":  # typed columns (the service): already floats
                vals = col
            else:
                vals = pd.to_numeric(col, errors="coerce")
                vals = vals.to_numpy(dtype=float) if isinstance(vals, pd.Series) else np.asarray(vals, dtype=float)
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
        n = len(records)
        X = self.transform(records)
        means = None if self.training_summary is None else self.training_summary.get("feature_means")
        center = np.zeros(X.shape[1]) if means is None else np.asarray(means, dtype=float)
        contrib = _contributions_matrix(self.illness_death, X, center)
        if contrib is None:
            return [{"relapse": [], "trm": [], "available": False} for _ in range(n)]
        cols = list(X.columns)
        source = getattr(self.feature_pipeline, "feature_source_", None) or {}
        fields = [source.get(c, c) for c in cols]
        uniq = list(dict.fromkeys(fields))
        agg = np.zeros((len(cols), len(uniq)))  # column → record field (several columns per field are summed)
        for j, f in enumerate(fields):
            agg[j, uniq.index(f)] = 1.0
        per_field = contrib @ agg  # (n, 2, n_fields)
        out = []
        for i in range(n):
            row: dict[str, Any] = {"available": True}
            for k, cause in enumerate(("relapse", "trm")):
                pairs = sorted(zip(uniq, per_field[i, k].tolist(), strict=True), key=lambda p: (-abs(p[1]), p[0]))
                row[cause] = [(f, float(v)) for f, v in pairs]
            out.append(row)
        return out

    @property
    def contributions_available(self) -> bool:
        cr = _cr_model(self.illness_death)
        return cr is not None and (callable(getattr(cr, "contributions", None)) or hasattr(cr, "coef_"))

    # ------------------------------------------------------------------------------------------------------------
    def predict_frame(self, records: pd.DataFrame, horizons_months) -> pd.DataFrame:
        """Long DataFrame (one row per patient and sorted horizon) with the columns of ``nbrisk predict``.

        The risk group always comes from the 2-year EFS, computed even when 24 months is not requested.
        """
        h = np.unique(np.atleast_1d(np.asarray(horizons_months, dtype=float)))
        curves = self.predict(records, np.union1d(h, [RISK_GROUP_HORIZON_MONTHS]))
        groups = self.risk_groups(curves)
        keep = np.flatnonzero(np.isin(curves.horizons_months, h))
        return curves_to_frame(records["patient_id"].astype(str).tolist(), select_horizons(curves, keep), groups)

    def __repr__(self) -> str:
        s: Any = self.training_summary or {}
        return (
            f"RiskModel(model={s.get('model_name', '?')!r}, family={s.get('family', '?')!r}, "
            f"n={s.get('n', '?')}, synthetic={self.synthetic})"
        )


def select_horizons(curves: RiskCurves, idx: np.ndarray) -> RiskCurves:
    """The same curves restricted to the horizons at positions ``idx``."""

    def sel(b: Band) -> Band:
        return Band(
            b.estimate[:, idx],
            None if b.lower is None else b.lower[:, idx],
            None if b.upper is None else b.upper[:, idx],
        )

    return RiskCurves(
        curves.horizons_months[idx], sel(curves.relapse), sel(curves.trm), sel(curves.efs), sel(curves.os)
    )


def curves_to_frame(patient_ids: Sequence[str], curves: RiskCurves, groups: Sequence[str] | np.ndarray) -> pd.DataFrame:
    """RiskCurves → long frame ``patient_id, horizon_months, relapse, relapse_lower, …, os_upper, risk_group``.

    One row per patient and horizon (patients in input order, horizons in time order); missing intervals are NaN.
    """
    k = len(curves.horizons_months)
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
    from nbrisk.features.io import read_records

    return read_records(records)


# ----------------------------------------------------------------------------------------------------------------
# helpers


def _cr_model(illness_death):
    """The fitted relapse/TRM estimator inside the illness–death model."""
    for attr in ("cr_model_", "cr_model"):
        model = getattr(illness_death, attr, None)
        if model is not None:
            return model
    return None


def _contributions_matrix(illness_death, X: pd.DataFrame, center: np.ndarray) -> np.ndarray | None:
    """(n, 2, p) per-column contributions to each cause's linear predictor, or None for non-linear models.

    Uses the estimator's own ``contributions`` (β_kj (x_ij − x̄_j), x̄ its training mean) when it has one, else
    ``coef_`` (2, p) against the training means ``center``.
    """
    cr = _cr_model(illness_death)
    if cr is None:
        return None
    if callable(getattr(cr, "contributions", None)):
        out = np.asarray(cr.contributions(X), dtype=float)
        return out if out.ndim == 3 and out.shape[1] == 2 else None
    coef = getattr(cr, "coef_", None)
    if coef is None:
        return None
    coef = np.asarray(coef, dtype=float)
    if coef.ndim != 2 or coef.shape[0] != 2:
        return None
    return (np.asarray(X, dtype=float) - center)[:, None, :] * coef[None, :, :]


def _fmt(x: float) -> str:
    return f"{x:g}"


# ----------------------------------------------------------------------------------------------------------------
# fitting


@dataclass(frozen=True, eq=False)  # holds a DataFrame: compare by identity
class PreparedFeatures:
    """A feature pipeline fitted on training records and their predictor frame (see :func:`prepare_features`).

    ``pipeline`` the fitted pipeline, ``X`` the training predictors (``drop`` columns removed), ``drop`` the
    predictor columns removed for unseen levels, ``unseen_level_rows`` how many evaluation records needed that.
    """

    pipeline: Any
    X: pd.DataFrame
    drop: tuple[str, ...]
    unseen_level_rows: int

    def transform(self, records: pd.DataFrame) -> pd.DataFrame:
        """Predictors of other records, as the :class:`RiskModel` built on these features computes them."""
        X = self.pipeline.transform(records)
        return X.drop(columns=list(self.drop)) if self.drop else X


def prepare_features(
    records: pd.DataFrame, features=None, evaluate_on: Sequence[pd.DataFrame] = ()
) -> PreparedFeatures:
    """Fit the feature pipeline (default ``make_feature_pipeline()``) on ``records`` as :func:`fit_risk_model`
    does, including its handling of category levels that only ``evaluate_on`` records have (see there)."""
    from sklearn.base import clone

    from nbrisk.features.pipeline import UnseenCategoryError, make_feature_pipeline

    features = make_feature_pipeline() if features is None else features
    records = records.reset_index(drop=True)
    pipeline = clone(features).fit(records)
    extra_rows: list[pd.DataFrame] = []
    for rec in evaluate_on:
        try:
            pipeline.transform(rec)
        except UnseenCategoryError as exc:
            rows = sorted({p for _field, _value, pos in exc.unseen for p in pos})
            extra_rows.append(rec.iloc[rows])
    if extra_rows:
        pipeline = clone(features).fit(pd.concat([records, *extra_rows], ignore_index=True))
    X = pipeline.transform(records)
    drop = tuple(c for c in X.columns if X[c].nunique() <= 1) if extra_rows else ()
    X = X.drop(columns=list(drop))
    return PreparedFeatures(pipeline, X, drop, int(sum(len(r) for r in extra_rows)))


def fit_risk_model(
    records: pd.DataFrame,
    outcomes: pd.DataFrame,
    estimator,
    *,
    n_interval_bootstrap: int = 0,
    seed: int = 0,
    n_jobs: int = 1,
    features=None,
    evaluate_on: Sequence[pd.DataFrame] = (),
    describe: bool = True,
    model_name: str = "model",
    family: str | None = None,
    synthetic: bool = False,
    fingerprint: str | None = None,
    validation_metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    prepared: PreparedFeatures | None = None,
) -> RiskModel:
    """Fit the whole pipeline on validated ``records`` and their ``derive_outcomes`` ``outcomes``: the one model
    factory (cross-validation and the other validation refits, the final fit that is validated *and* registered,
    tests).

    Parameters
    ----------
    records : typed records (validated), one row per patient.
    outcomes : frame from :func:`nbrisk.features.outcomes.derive_outcomes`, same row order as ``records``
        (``event``/``time`` for the relapse/TRM model; ``relapse_time``/``post_relapse_time``/
        ``post_relapse_event`` for the post-relapse model).
    estimator : an unfitted competing-risks estimator (e.g. ``CauseSpecificCox(alpha=1.0)``); it is cloned.
    n_interval_bootstrap : bootstrap refits of the illness–death model for 95% percentile intervals (0: none).
    seed : seed of those refits. n_jobs : parallel refits (joblib).
    features : an unfitted feature pipeline (default ``make_feature_pipeline()``).
    evaluate_on : records the model will be asked to predict (a CV test fold, a left-out center, the original cohort
        for a bootstrap refit). A category level absent from a small training set (a rare donor type in one fold, a
        center-specific practice, a level not drawn in a resample) would make the feature pipeline refuse those
        records. In that case only, the pipeline's levels are learned from the training records plus the offending
        evaluation records' **covariates** (no outcome is used), and every predictor column that is constant in the
        training rows is dropped — so those patients are encoded at the reference level, which is what a model that
        never saw the level can do. Their count is ``unseen_level_rows`` of the result.
    describe : ``True``: describe the fit — predict the training cohort, derive the risk-group cut-offs (tertiles of
        predicted 2-year EFS) and the :class:`~nbrisk.core.TrainingSummary` from ``model_name`` … ``params``.
        ``False`` (validation refits, which are only asked for predictions): neither, which saves a prediction of
        the whole training cohort per refit.
    prepared : the feature pipeline already fitted on these ``records`` by :func:`prepare_features` (with the same
        ``features`` and ``evaluate_on``; both are then ignored): hyper-parameter tuning fits several estimators on
        one training split, and the pipeline does not depend on their parameters.

    Returns
    -------
    A fitted :class:`RiskModel`.
    """
    from sklearn.base import clone

    from nbrisk.models.illness_death import IllnessDeathModel

    records = records.reset_index(drop=True)
    outcomes = outcomes.reset_index(drop=True)
    if prepared is None:
        prepared = prepare_features(records, features, evaluate_on)
    pipeline, X, drop, unseen = prepared.pipeline, prepared.X, prepared.drop, prepared.unseen_level_rows
    id_model = IllnessDeathModel(
        clone(estimator), n_bootstrap=int(n_interval_bootstrap), random_state=seed, n_jobs=n_jobs
    )
    if not describe:
        with warnings.catch_warnings():
            # tail rescaling of ΔΛ1 + ΔΛ2 > 1 is part of the estimator's definition (docs/statistics.md)
            warnings.simplefilter("ignore", CIFCoherenceWarning)
            id_model.fit(X, outcomes)
        return RiskModel(pipeline, id_model, None, None, drop, unseen)
    # the default horizons (which include the risk groups' 2 years): what the training summary describes
    horizons = np.union1d(np.asarray(DEFAULT_HORIZONS_MONTHS, dtype=float), [RISK_GROUP_HORIZON_MONTHS])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CIFCoherenceWarning)
        id_model.fit(X, outcomes)
        curves = id_model.predict_curves(X, horizons)
    rescaled = 0
    for w in caught:
        if issubclass(w.category, CIFCoherenceWarning):
            rescaled += 1
        else:  # anything else is passed on as it came
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    efs2 = curves.efs.estimate[:, int(np.flatnonzero(horizons == RISK_GROUP_HORIZON_MONTHS)[0])]
    q_low, q_high = np.quantile(efs2, [1 / 3, 2 / 3])
    cutoffs = (float(q_low), float(q_high))
    summary = training_summary(
        records,
        outcomes,
        X,
        curves,
        synthetic=synthetic,
        fingerprint=fingerprint,
        model_name=model_name,
        family=family or type(estimator).__name__,
        params={k: v for k, v in (params or {}).items() if not str(k).startswith("_")},
        validation_metrics=typed_metrics(validation_metrics or {}),
        interval_method="none" if not curves.has_intervals else "bootstrap",
        n_interval_bootstrap=int(n_interval_bootstrap),
        # how many predictions of the training cohort needed the ΔΛ1 + ΔΛ2 > 1 tail rescaling (0 = none)
        cif_rescaled=rescaled,
        # Fine–Gray fitted cause by cause: share of training patients whose F1 + F2 exceeded 1 (capped)
        incoherent_fraction=getattr(id_model.cr_model_, "incoherent_fraction_", None),
    )
    return RiskModel(pipeline, id_model, cutoffs, summary, drop, unseen)


# ----------------------------------------------------------------------------------------------------------------
# the training summary (a frozen nbrisk.core.TrainingSummary)

#: Flat metric names of the training jobs (``relapse_cindex_24m``, ``relapse_cindex_24m_lower``, ``os_ibs``):
#: outcome, metric, optional horizon in months, optional CI bound.
_METRIC_KEY = re.compile(
    r"^(?P<outcome>relapse|trm|efs|os)_(?P<name>[a-z0-9_]+?)(?:_(?P<h>\d+(?:\.\d+)?)m)?(?:_(?P<ci>lower|upper))?$"
)
#: The training jobs' short metric names → the names a ValidationMetric carries.
METRIC_NAMES = {"cindex": "c_index", "cal_slope": "calibration_slope", "cal_intercept": "calibration_intercept"}
#: Monthly grid (months) of the stored cohort curve; the patient report draws it beside the patient's curve.
COHORT_CURVE_MONTHS = np.arange(0.0, 61.0, 1.0)
#: The "similar patients" of the report: training patients in the same tenth of predicted 2-year EFS.
N_SIMILAR_GROUPS = 10
#: No observed outcomes are stored (or shown) for a group of fewer patients than this.
MIN_GROUP_SIZE = 10


def typed_metrics(flat: Mapping[str, Any]) -> tuple[ValidationMetric, ...]:
    """Flat validation metrics as the training jobs log them → typed :class:`~nbrisk.core.ValidationMetric` records.

    ``{"relapse_cindex_24m": 0.66, "relapse_cindex_24m_lower": 0.61, "relapse_cindex_24m_upper": 0.70}`` → one
    record with its CI. Keys of other shapes (timings, ``loco_…``, ``corrected_…``) and non-finite values are not
    metrics of the pooled validation and are skipped; a CI is kept only when both bounds are present.
    """
    points: dict[tuple[str, str, float | None], float] = {}
    bounds: dict[tuple[str, str, float | None, str], float] = {}
    for key, value in flat.items():
        m = _METRIC_KEY.match(str(key))
        if m is None or value is None or isinstance(value, bool):
            continue
        v = float(value)
        if not math.isfinite(v):
            continue
        ident = (m["outcome"], METRIC_NAMES.get(m["name"], m["name"]), None if m["h"] is None else float(m["h"]))
        if m["ci"]:
            bounds[(*ident, m["ci"])] = v
        else:
            points[ident] = v
    out = []
    for (outcome, name, h), v in sorted(points.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0.0)):
        lo, hi = bounds.get((outcome, name, h, "lower")), bounds.get((outcome, name, h, "upper"))
        both = lo is not None and hi is not None
        out.append(ValidationMetric(outcome, name, h, v, lo if both else None, hi if both else None))
    return tuple(out)


def _observed(time: np.ndarray, event: np.ndarray, horizons_days: np.ndarray, cause: Cause):
    from nbrisk.models.nonparametric import cumulative_incidence

    est, lo, hi = cumulative_incidence(time, event, cause, horizons_days)
    return tuple((float(a), float(b), float(c)) for a, b, c in zip(est, lo, hi, strict=True))


def similar_groups(
    efs_2y: np.ndarray, outcomes: pd.DataFrame, horizons_months: Sequence[float]
) -> tuple[ObservedGroup, ...]:
    """Observed Aalen–Johansen relapse and TRM of training patients grouped by tenths of predicted 2-year EFS.

    The similarity rule of the patient report: "training patients whose predicted 2-year event-free survival is in
    the same tenth of the training cohort's predictions as this patient's". Groups smaller than
    :data:`MIN_GROUP_SIZE` are not stored (aggregates of a handful of children could identify them).
    """
    from nbrisk.core import months_to_days

    efs_2y = np.asarray(efs_2y, dtype=float)
    edges = np.quantile(efs_2y, np.linspace(0.0, 1.0, N_SIMILAR_GROUPS + 1))
    group = np.clip(np.searchsorted(edges, efs_2y, side="right") - 1, 0, N_SIMILAR_GROUPS - 1)
    time = outcomes["time"].to_numpy(dtype=float)
    event = outcomes["event"].to_numpy().astype(int)
    hd = months_to_days(np.asarray(horizons_months, dtype=float))
    out = []
    for g in range(N_SIMILAR_GROUPS):
        idx = np.flatnonzero(group == g)
        if idx.size < MIN_GROUP_SIZE:
            continue
        lo, hi = float(edges[g]), float(edges[g + 1])
        out.append(
            ObservedGroup(
                rule=f"training patients with a predicted 2-year event-free survival of {100 * lo:.1f}–{100 * hi:.1f}%"
                f" (tenth {g + 1} of {N_SIMILAR_GROUPS} of the training cohort's predictions)",
                lo=lo,
                hi=hi,
                n=int(idx.size),
                n_relapse=int((event[idx] == Cause.RELAPSE).sum()),
                n_trm=int((event[idx] == Cause.TRM).sum()),
                horizons_months=tuple(float(h) for h in horizons_months),
                relapse=_observed(time[idx], event[idx], hd, Cause.RELAPSE),
                trm=_observed(time[idx], event[idx], hd, Cause.TRM),
            )
        )
    return tuple(out)


def training_summary(
    records: pd.DataFrame,
    outcomes: pd.DataFrame,
    X,
    curves: RiskCurves,
    *,
    synthetic: bool,
    fingerprint: str | None,
    model_name: str,
    family: str,
    **extra: Any,
) -> TrainingSummary:
    """Aggregate, non-identifying description of the training cohort and the fit (no patient-level values).

    ``curves`` are the fitted model's predictions for the training cohort at 12/24/36/60 months (apparent
    predictions): their 2-year percentiles place a new patient in the cohort, and their 2-year EFS defines the
    similar-patient groups. ``extra`` fills the remaining :class:`~nbrisk.core.TrainingSummary` fields.
    """
    from nbrisk.core import months_to_days
    from nbrisk.features.record import FIELDS, PREDICTOR_FIELDS
    from nbrisk.models.nonparametric import aalen_johansen

    ev = outcomes["event"].to_numpy()
    time = outcomes["time"].to_numpy(dtype=float)
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
    j2 = int(np.flatnonzero(np.isclose(curves.horizons_months, RISK_GROUP_HORIZON_MONTHS))[0])
    dist = {
        name: {f"p{p}": float(v) for p, v in zip(pct, np.percentile(band.estimate[:, j2], pct), strict=True)}
        for name, band in curves.bands().items()
    }
    grid_days = months_to_days(COHORT_CURVE_MONTHS)
    Xa = np.asarray(X, dtype=float)
    censored = ev == Cause.CENSORED
    return TrainingSummary(
        version=TRAINING_SUMMARY_VERSION,
        model_name=model_name,
        family=family,
        trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        n=len(records),
        events={
            "censored": int(censored.sum()),
            "relapse": int((ev == Cause.RELAPSE).sum()),
            "trm": int((ev == Cause.TRM).sum()),
        },
        synthetic=bool(synthetic),
        data_fingerprint=fingerprint,
        numeric_ranges=numeric_ranges,
        category_counts=category_counts,
        missing_counts=missing,
        predicted_2y_distribution=dist,
        feature_names=tuple(str(c) for c in X.columns) if isinstance(X, pd.DataFrame) else (),
        feature_means=tuple(float(v) for v in Xa.mean(axis=0)),
        median_followup_days=float(np.median(time[censored])) if censored.any() else None,
        cohort_months=tuple(float(m) for m in COHORT_CURVE_MONTHS),
        cohort_relapse=tuple(float(v) for v in aalen_johansen(time, ev, Cause.RELAPSE).at(grid_days)),
        cohort_trm=tuple(float(v) for v in aalen_johansen(time, ev, Cause.TRM).at(grid_days)),
        similar_groups=similar_groups(curves.efs.estimate[:, j2], outcomes, curves.horizons_months.tolist()),
        **extra,
    )
