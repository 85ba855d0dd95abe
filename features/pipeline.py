"""Records → numeric predictors: the feature pipeline every model is fitted on (and served with).

:class:`RecordFeatures` turns validated records (:func:`nbrisk.features.record.validate_records`) into a float
DataFrame with stable, readable column names. Everything it learns comes from the **training records only**
(medians for imputation, the category levels present, the reference year, standardisation parameters), so that
cross-validation folds and the served model transform new patients exactly as the training data were transformed.

Derived predictors (literature basis in ``docs/synthetic-cohort.md``):

* ``age_at_hsct_years`` = (age at diagnosis + months diagnosis→HSCT) / 12 and ``age_at_hsct_over_10y``
  (Ladenstein 2008); ``age_at_diagnosis_over_18m``; ``years_diagnosis_to_hsct``;
* ``era`` = (``hsct_year`` − training median year) / 5: one unit per 5 years (Penack 2020 reports TRM per 5 y);
* prior autologous HSCT ``prior_auto_hsct_any`` (≥ 1, Hale 2013) and ``prior_auto_hsct_tandem`` (= 2);
* disease status at HSCT grouped CR (reference) / VGPR-PR / MR-SD / PD (Hale 2013; Flaadt 2023);
* ``curie_score_over_2``: an observed MIBG Curie score > 2 at HSCT (Yanik 2018); a missing score gets the training
  share of scores > 2 among patients with the same disease status (conditional-mean imputation of the indicator:
  a missing score means little in CR and much in PD); the missing flag is its own column;
* ``kir_ligand_mismatch_haplo``: KIR-ligand mismatch with a haploidentical donor (Venstrom 2009: the effect is
  reported for haploidentical / T-cell-depleted grafts);
* ``relapsed_dx_to_hsct_0_18m`` / ``_18_36m`` / ``_over_36m``: in relapsed disease, a linear spline (years) of the
  interval diagnosis → HSCT with knots at 18 and 36 months, a proxy of the time to first relapse (London 2011: < 18
  and 18–36 months vs later); 0 outside relapsed disease;
* ``residual_burden``: 0–3, the number of residual-disease markers at HSCT: status worse than VGPR, MIBG Curie score
  > 2 (Yanik 2018), bone-marrow tumour > 0% (a missing marker counts as absent; its missing flag is a column);
* HLA mismatches grouped 0 / 1–2 / 3+; HCT-CI grouped 0 / 1–2 / 3+ (Smith 2011); ``lansky_below_90``;
* log10 of LDH and of the CD34+ dose; one-hot indicators of every enum field with a fixed reference level.

Optional numeric fields are imputed with the training median; a ``<field>_missing`` indicator is added for every
field that had missing values in the training data. Columns that are constant or exact duplicates of an earlier
column in the training data (e.g. ``graft_source=cord_blood`` is ``donor_type=cord_blood`` by the contract) are
dropped at fit time (``dropped_columns_``), so regression models never see a singular design.

A category that was not present in the training data raises :class:`UnseenCategoryError` at transform time,
naming the field and the value: the model has no coefficient for it, and a silent all-zero encoding would quietly
score the patient as the reference level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from nbrisk.core import DAYS_PER_MONTH, NbriskError


class UnseenCategoryError(NbriskError, ValueError):
    """A category value at transform time that the training records did not contain.

    ``unseen`` lists ``(field, value, positions)`` for every such value (positions are 0-based rows of the input).
    """

    def __init__(self, unseen: list[tuple[str, str, list[int]]]):
        self.unseen = unseen
        parts = [
            f"{f}={v!r} (row(s) {', '.join(str(p) for p in pos[:5])}{', …' if len(pos) > 5 else ''})"
            for f, v, pos in unseen
        ]
        super().__init__("category not seen in the training data, the model cannot score it: " + "; ".join(parts))
        self.field = unseen[0][0] if unseen else None
        self.value = unseen[0][1] if unseen else None


# --------------------------------------------------------------------------------------------------------------
# Declarative description of the derived predictors.
# --------------------------------------------------------------------------------------------------------------


class _Band:
    """Map numbers to labels: the label of the first ``(upper bound, label)`` with value ≤ bound (None for NaN)."""

    def __init__(self, cuts: tuple[tuple[float, str], ...]):
        self.cuts = cuts

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.full(len(x), None, dtype=object)
        done = np.isnan(x)
        for bound, label in self.cuts:
            hit = ~done & (x <= bound)
            out[hit] = label
            done |= hit
        return out

    def label(self, x: float) -> str | None:
        """The label of one number (what ``self(np.array([x]))[0]`` gives)."""
        if x == x:
            for bound, label in self.cuts:
                if x <= bound:
                    return label
        return None


_STATUS_GROUP = {"CR": "CR", "VGPR": "VGPR/PR", "PR": "VGPR/PR", "MR": "MR/SD", "SD": "MR/SD", "PD": "PD"}


@dataclass(frozen=True)
class _Factor:
    """A categorical predictor: one-hot columns ``<field>=<level>`` for every training level but the reference."""

    field: str
    reference: str
    mapper: Mapping[str, str] | _Band | None = None  # None: the enum value itself


_FACTORS: tuple[_Factor, ...] = (
    _Factor("sex", "male"),
    _Factor("mycn_status", "not_amplified"),
    _Factor("chr11q_aberration", "absent"),
    _Factor("alk_status", "wild_type"),
    _Factor("inpc_histology", "favorable"),
    _Factor("disease_phase", "upfront_consolidation"),
    _Factor("disease_status_at_hsct", "CR", _STATUS_GROUP),
    _Factor("mrd_at_hsct", "negative"),
    _Factor("hct_ci", "0", _Band(((0, "0"), (2, "1-2"), (np.inf, "3+")))),
    _Factor("donor_type", "matched_sibling"),
    _Factor("hla_mismatches", "0", _Band(((0, "0"), (2, "1-2"), (np.inf, "3+")))),
    _Factor("kir_ligand_mismatch", "no"),
    _Factor("graft_source", "bone_marrow"),
    _Factor("graft_manipulation", "none"),
    _Factor("conditioning_intensity", "myeloablative"),
    _Factor("serotherapy", "none"),
    _Factor("gvhd_prophylaxis", "calcineurin_based"),
    _Factor("recipient_cmv", "negative"),
    _Factor("donor_cmv", "negative"),
    _Factor("donor_sex", "male"),
    _Factor("planned_post_hsct_immunotherapy", "none"),
)

#: Numeric input fields and whether the contract allows them to be missing (imputed with the training median).
_NUMERIC_INPUTS: dict[str, bool] = {
    "age_at_diagnosis_months": False,
    "months_diagnosis_to_hsct": False,
    "ldh_at_diagnosis_u_l": True,
    "metastatic_sites_at_diagnosis": False,
    "bone_marrow_metastasis_at_diagnosis": False,
    "prior_auto_hsct": False,
    "curie_score_at_hsct": True,
    "bone_marrow_tumor_percent_at_hsct": True,
    "lansky_score": False,
    "hct_ci": True,
    "hla_mismatches": False,
    "cd34_dose_1e6_per_kg": True,
    "donor_age_years": True,
    "hsct_year": False,
}

#: Continuous columns (standardised when ``standardize=True``); every other column is a 0/1 indicator.
_CONTINUOUS = (
    "age_at_hsct_years",
    "years_diagnosis_to_hsct",
    "metastatic_sites",
    "log10_ldh",
    "curie_score",
    "marrow_tumor_percent",
    "residual_burden",
    "log10_cd34_dose",
    "donor_age_years",
    "era",
    "relapsed_dx_to_hsct_0_18m",
    "relapsed_dx_to_hsct_18_36m",
    "relapsed_dx_to_hsct_over_36m",
)

_AGE = "age_at_diagnosis_months+months_diagnosis_to_hsct"
_BURDEN = "disease_status_at_hsct+curie_score_at_hsct+bone_marrow_tumor_percent_at_hsct"
#: Numeric output column → the input field(s) it is made from ("+"-joined when several).
_NUMERIC_SOURCE: dict[str, str] = {
    "age_at_hsct_years": _AGE,
    "age_at_hsct_over_10y": _AGE,
    "age_at_diagnosis_over_18m": "age_at_diagnosis_months",
    "years_diagnosis_to_hsct": "months_diagnosis_to_hsct",
    "metastatic_sites": "metastatic_sites_at_diagnosis",
    "bone_marrow_metastasis": "bone_marrow_metastasis_at_diagnosis",
    "log10_ldh": "ldh_at_diagnosis_u_l",
    "prior_auto_hsct_any": "prior_auto_hsct",
    "prior_auto_hsct_tandem": "prior_auto_hsct",
    "curie_score": "curie_score_at_hsct",
    # made from two fields, but about one: the report groups a patient's drivers by this field (the interval's
    # whole effect, the KIR mismatch's whole effect), and a short label keeps the one-page report on its pages
    "curie_score_over_2": "curie_score_at_hsct",
    "kir_ligand_mismatch_haplo": "kir_ligand_mismatch",
    "relapsed_dx_to_hsct_0_18m": "months_diagnosis_to_hsct",
    "relapsed_dx_to_hsct_18_36m": "months_diagnosis_to_hsct",
    "relapsed_dx_to_hsct_over_36m": "months_diagnosis_to_hsct",
    "marrow_tumor_percent": "bone_marrow_tumor_percent_at_hsct",
    "residual_burden": _BURDEN,
    "lansky_below_90": "lansky_score",
    "log10_cd34_dose": "cd34_dose_1e6_per_kg",
    "donor_age_years": "donor_age_years",
    "era": "hsct_year",
    "lansky_per_10": "lansky_score",
    "log2_marrow_tumor_percent": "bone_marrow_tumor_percent_at_hsct",
}

#: Continuous columns that get a linear spline (two hinge terms at the training tertiles) when ``splines=True``.
SPLINE_COLUMNS: tuple[str, ...] = (
    "age_at_hsct_years",
    "years_diagnosis_to_hsct",
    "log10_ldh",
    "log2_marrow_tumor_percent",
    "donor_age_years",
    "log10_cd34_dose",
    "lansky_per_10",
)

#: Fields whose missing value is 0 for a patient in CR (the contract: CR requires them missing or 0).
_ZERO_IF_CR = ("curie_score_at_hsct", "bone_marrow_tumor_percent_at_hsct")

_REQUIRED_INPUTS = tuple(dict.fromkeys([*_NUMERIC_INPUTS, *(f.field for f in _FACTORS)]))


def _to_float(col: np.ndarray) -> np.ndarray:
    try:  # typed records: floats / None → float array in C
        return col.astype(float)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(col), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


@dataclass
class _Inputs:
    """The predictor fields of a batch as plain numpy arrays (pandas column access is slow per call)."""

    raw: dict[str, np.ndarray]  # numeric inputs, NaN where missing
    objs: dict[str, np.ndarray]  # enum inputs (object)
    num: dict[str, np.ndarray] = field(default_factory=dict)  # numeric inputs, imputed
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # factor level of each record


def _extract(records: pd.DataFrame | Mapping[str, np.ndarray]) -> _Inputs:
    # one pass; selecting a sub-frame costs milliseconds (block copies). A mapping holds the typed columns of
    # nbrisk.features.record.validate_columns as numpy arrays (the HTTP service's path: no frame at all).
    series = dict(records.items())
    objs = {f: _object_column(series[f]) for f in _REQUIRED_INPUTS if f not in _NUMERIC_INPUTS}
    objs["disease_status_at_hsct"] = _object_column(series["disease_status_at_hsct"])
    raw = {}
    for f in _NUMERIC_INPUTS:
        col = series[f]
        if col.dtype.kind in "fiub":
            raw[f] = col.to_numpy(dtype=float, na_value=np.nan) if isinstance(col, pd.Series) else col.astype(float)
        else:
            raw[f] = _to_float(_object_column(col))
    center = series.get("center_id")
    objs["center_id"] = np.full(_n_rows(records), None, dtype=object) if center is None else _object_column(center)
    return _Inputs(raw=raw, objs=objs)


def _object_column(col: pd.Series | np.ndarray) -> np.ndarray:
    return col.to_numpy(dtype=object) if isinstance(col, pd.Series) else np.asarray(col, dtype=object)


def _n_rows(records: pd.DataFrame | Mapping[str, np.ndarray]) -> int:
    """Number of records of a frame, or of a mapping of equally long columns."""
    if isinstance(records, pd.DataFrame):
        return len(records)
    return len(next(iter(records.values()))) if records else 0


@dataclass(frozen=True)
class _Row:
    """One record's predictor inputs (:meth:`RecordFeatures._row_inputs`): :class:`_Inputs` for a single record."""

    raw: dict[str, float]  # numeric inputs, NaN where missing
    num: dict[str, float]  # numeric inputs, imputed
    labels: dict[str, Any]  # factor level of each factor field
    status: Any  # disease status at HSCT (the contract's level)
    center: Any  # center_id or None
    record: Mapping[str, Any]  # the record as given (enum values)


def _one_typed_record(records: pd.DataFrame | Mapping[str, np.ndarray]) -> dict[str, Any] | None:
    """The record of a mapping of typed columns that holds exactly one record with float-typed numeric columns (what
    the service's validators give), as ``{field: value}``; None for anything else (a DataFrame, several records),
    which takes the column code."""
    if isinstance(records, pd.DataFrame) or _n_rows(records) != 1:
        return None
    for f in _NUMERIC_INPUTS:
        if records[f].dtype.kind != "f":
            return None
    return {f: col[0] for f, col in records.items()}


class RecordFeatures(TransformerMixin, BaseEstimator):
    """Validated patient records → float predictor DataFrame (see the module docstring for every column).

    Parameters
    ----------
    standardize : bool, default False
        Centre and scale the continuous columns with the training mean and SD (indicators are left 0/1).
    rare_count : int, default 10
        A category seen in fewer than ``rare_count`` training records is flagged by :meth:`input_warnings`.
    center_effects : bool, default False
        Add one column ``center_effect=<center>`` per training center but the first, in deviation (sum-to-zero)
        coding: +1 for the patient's own center, −1 for every column if the patient is from the first center, and 0
        for a patient whose ``center_id`` is missing or was not in the training data — who therefore gets the
        average center. For models of a multicenter cohort whose centers differ (the synthetic cohort has center
        log hazard ratios up to ±0.15); off by default, since a model meant for any hospital should not lean on the
        training hospitals.
    splines : bool, default False
        Add a linear spline (hinge terms ``<column>_hinge1``/``_hinge2`` = max(0, x − knot) at the training
        tertiles) of each continuous input in :data:`SPLINE_COLUMNS`, plus the continuous ``lansky_per_10`` and
        ``log2_marrow_tumor_percent``: the inputs of a data-driven Cox model that may find non-linear effects the
        pre-specified thresholds (age > 10, Lansky < 90, ...) miss (Harrell 2015, *Regression Modeling Strategies*,
        ch. 2: regression splines for continuous predictors). Off by default: the served pipeline is unchanged.

    Attributes
    ----------
    feature_names_out_ : list[str] — output columns, in order.
    feature_source_ : dict[str, str] — output column → input field (several fields joined by ``+``).
    medians_ : dict[str, float] — training medians of the numeric inputs (imputation values).
    missing_indicators_ : list[str] — numeric input fields with a ``<field>_missing`` column.
    levels_ : dict[str, dict[str, int]] — per factor field, the training levels and their counts.
    references_ : dict[str, str] — reference level of each factor (no column).
    ranges_ : dict[str, tuple[float, float]] — training min/max of each numeric input field.
    year_center_ : float — median ``hsct_year`` of the training records (``era`` = 0).
    curie_over_2_share_ : dict disease status → training share of Curie scores > 2 (key "" = all statuses).
    dropped_columns_ : list[str] — candidate columns dropped because constant or duplicated in training.
    scale_ : dict[str, tuple[float, float]] — (mean, sd) per standardised column (empty unless ``standardize``).
    """

    def __init__(
        self, standardize: bool = False, rare_count: int = 10, center_effects: bool = False, splines: bool = False
    ):
        self.standardize = standardize
        self.splines = splines
        self.center_effects = center_effects
        self.rare_count = rare_count

    # ------------------------------------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> RecordFeatures:
        """Learn imputation medians, category levels, the reference year and column set from training records."""
        records = self._check_records(X)
        if len(records) == 0:
            raise NbriskError("cannot fit the feature pipeline on zero records")
        inp = _extract(records)
        nums = inp.raw
        self.medians_ = {}
        self.ranges_ = {}
        for f, v in nums.items():
            ok = v[np.isfinite(v)]
            if ok.size == 0:
                raise NbriskError(f"cannot fit the feature pipeline: {f} is missing in every training record")
            self.medians_[f] = float(np.median(ok))
            self.ranges_[f] = (float(ok.min()), float(ok.max()))
        self.missing_indicators_ = [
            f for f, nullable in _NUMERIC_INPUTS.items() if nullable and bool(np.isnan(nums[f]).any())
        ]
        self.year_center_ = float(np.median(nums["hsct_year"]))
        known = [str(c) for c in inp.objs["center_id"] if c is not None and c == c]
        self.centers_ = sorted(set(known)) if self.center_effects else []
        # Share of Curie score > 2 among the observed scores of each disease status (conditional-mean imputation of
        # the indicator for a missing score; the overall share for a status without an observed score).
        curie, status = nums["curie_score_at_hsct"], inp.objs["disease_status_at_hsct"].astype(str)
        seen_curie = np.isfinite(curie)
        overall = float(np.mean(curie[seen_curie] > 2))
        self.curie_over_2_share_ = {
            str(st): (
                float(np.mean(curie[seen_curie & (status == st)] > 2))
                if np.any(seen_curie & (status == st))
                else overall
            )
            for st in np.unique(status)
        }
        self.curie_over_2_share_[""] = overall
        self._complete(inp)
        self.spline_knots_: dict[str, Any] = {}
        if self.splines:
            self.spline_knots_ = {}  # the tertiles of the imputed training values (knots must exist before columns)
            base = self._numeric_columns(inp)
            for name in SPLINE_COLUMNS:
                knots = np.unique(np.quantile(base[name], [1 / 3, 2 / 3]))
                self.spline_knots_[name] = [float(k) for k in knots]
        labels = inp.labels
        self.levels_, self.references_ = {}, {}
        for fac in _FACTORS:
            vals, counts = np.unique(labels[fac.field].astype(str), return_counts=True)
            levels = {str(v): int(c) for v, c in zip(vals, counts, strict=True)}
            self.levels_[fac.field] = levels
            # The declared reference when the training data contain it, else the most frequent level.
            self.references_[fac.field] = (
                fac.reference if fac.reference in levels else max(levels, key=lambda k: (levels[k], k))
            )

        self.scale_ = {}
        self.dropped_columns_ = []
        self.feature_names_out_ = []  # every candidate column, filtered below
        names, matrix = self._candidate_matrix(inp)
        keep: list[int] = []
        seen: dict[bytes, str] = {}
        for j, name in enumerate(names):
            col = matrix[:, j]
            key = col.tobytes()
            if np.all(col == col[0]) or key in seen:
                self.dropped_columns_.append(name)
                continue
            seen[key] = name
            keep.append(j)
        self.feature_names_out_ = [names[j] for j in keep]
        position = {name: j for j, name in enumerate(self.feature_names_out_)}
        # factor field → {level: output column}; the reference and dropped levels have no column.
        self._onehot_index_ = {
            fac.field: {
                lvl: position[f"{fac.field}={lvl}"]
                for lvl in self.levels_[fac.field]
                if f"{fac.field}={lvl}" in position
            }
            for fac in _FACTORS
        }
        if self.standardize:
            kept = matrix[:, np.asarray(keep, dtype=int)]
            for j, name in enumerate(self.feature_names_out_):
                if name in _CONTINUOUS:
                    mu, sd = float(kept[:, j].mean()), float(kept[:, j].std())
                    self.scale_[name] = (mu, sd if sd > 0 else 1.0)
        self.feature_source_ = {name: self._source(name) for name in self.feature_names_out_}
        self.n_features_out_ = len(self.feature_names_out_)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Return the float predictor frame ``(n_records, n_features_out_)`` with the input's index.

        Raises :class:`UnseenCategoryError` for a category absent from the training records.
        """
        check_is_fitted(self, "feature_names_out_")
        records = self._check_records(X)
        row = _one_typed_record(records)
        if row is not None:  # one record of typed columns (the service's fast path): plain Python, same numbers
            return pd.DataFrame(
                self.transform_record(row)[None, :],
                columns=list(self.feature_names_out_),
                index=pd.RangeIndex(1),
                copy=False,
            )
        inp = self._complete(_extract(records))
        labels = inp.labels
        unseen = []
        for fac in _FACTORS:
            lab = labels[fac.field]
            levels = self.levels_[fac.field]
            bad = np.array([v not in levels for v in lab], dtype=bool) if len(lab) else np.zeros(0, bool)
            if bad.any():
                for value in dict.fromkeys(lab[bad]):
                    pos = [int(i) for i in np.flatnonzero(lab == value)]
                    unseen.append((fac.field, "(missing)" if value is None else str(value), pos))
        if unseen:
            raise UnseenCategoryError(unseen)
        matrix = self._output_matrix(inp)
        for j, name in enumerate(self.feature_names_out_):
            if name in self.scale_:
                mu, sd = self.scale_[name]
                matrix[:, j] = (matrix[:, j] - mu) / sd
        index = records.index if isinstance(records, pd.DataFrame) else pd.RangeIndex(_n_rows(records))
        return pd.DataFrame(matrix, columns=list(self.feature_names_out_), index=index, copy=False)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)

    # ------------------------------------------------------------------------------------------------------------
    def input_warnings(self, X: pd.DataFrame) -> list[list[str]]:
        """Per record, plain-language warnings: numeric inputs outside the training range, optional fields that were
        missing and imputed, categories rare (< ``rare_count``) or absent in the training data. Never raises for an
        unseen category (that is :meth:`transform`'s job); messages name fields, never identifiers."""
        check_is_fitted(self, "feature_names_out_")
        records = self._check_records(X)
        row = _one_typed_record(records)
        if row is not None:
            return [self.record_warnings(row)]
        n = _n_rows(records)
        out: list[list[str]] = [[] for _ in range(n)]
        inp = self._complete(_extract(records))
        for f, v in inp.raw.items():
            lo, hi = self.ranges_[f]
            with np.errstate(invalid="ignore"):
                outside = np.isfinite(v) & ((v < lo) | (v > hi))
            for i in np.flatnonzero(outside):
                out[i].append(f"{f} is outside the training data's range ({_fmt(lo)}–{_fmt(hi)})")
            for i in np.flatnonzero(np.isnan(v)):
                out[i].append(f"{f} was missing and imputed{self._imputation_note(f, inp, i)}")
        labels = inp.labels
        for fac in _FACTORS:
            levels = self.levels_[fac.field]
            for i, value in enumerate(labels[fac.field]):
                count = levels.get(value, 0) if isinstance(value, str) else 0
                if count == 0:
                    out[i].append(f"{fac.field}={value} was not seen in the training data")
                elif count < self.rare_count:
                    out[i].append(f"{fac.field}={value} is rare in the training data (n={count})")
        return out

    # ------------------------------------------------------------------------------------------------------------
    # One record in plain Python. A one-patient request is what a clinician's screen sends; on length-1 arrays the
    # column code above pays numpy's fixed cost per call (about 100 calls: ~0.3 ms) for a few dozen numbers. The
    # methods below compute the same numbers with the same IEEE operations in the same order (numpy's own ufuncs
    # for the logarithms), so the row equals the column code's to the last bit (tests/features: property test).

    def transform_record(self, record: Mapping[str, Any]) -> np.ndarray:
        """One validated record → its row of :meth:`transform` as a 1-D float array ``(n_features_out_,)``.

        ``record`` maps every predictor field to its typed value (what :func:`nbrisk.features.record.fast_validate`
        types: a float, NaN where missing, for numbers, integers and booleans; the level, or None, for enums).
        Raises :class:`UnseenCategoryError` (position 0) for a category absent from the training records.
        """
        check_is_fitted(self, "feature_names_out_")
        row = self._row_inputs(record)
        labels = row.labels
        unseen = [
            (fac.field, "(missing)" if labels[fac.field] is None else str(labels[fac.field]), [0])
            for fac in _FACTORS
            if labels[fac.field] not in self.levels_[fac.field]
        ]
        if unseen:
            raise UnseenCategoryError(unseen)
        numeric = self._row_numeric(row)
        values = [numeric.get(name, 0.0) for name in self.feature_names_out_]
        for name, index in self._onehot_index_.items():
            col = index.get(labels[name])
            if col is not None:
                values[col] = 1.0
        for name, (mu, sd) in self.scale_.items():
            j = self.feature_names_out_.index(name)
            values[j] = (values[j] - mu) / sd
        return np.array(values, dtype=float)

    def record_warnings(self, record: Mapping[str, Any]) -> list[str]:
        """:meth:`input_warnings` of one validated record (see :meth:`transform_record` for ``record``)."""
        check_is_fitted(self, "feature_names_out_")
        row = self._row_inputs(record)
        out: list[str] = []
        for f, v in row.raw.items():
            lo, hi = self.ranges_[f]
            if v == v and v not in (np.inf, -np.inf) and (v < lo or v > hi):
                out.append(f"{f} is outside the training data's range ({_fmt(lo)}–{_fmt(hi)})")
            if v != v:
                note = (
                    " as 0 (disease status CR)"
                    if f in _ZERO_IF_CR and row.status == "CR"
                    else f" with the training median ({_fmt(self.medians_[f])})"
                )
                out.append(f"{f} was missing and imputed{note}")
        for fac in _FACTORS:
            value = row.labels[fac.field]
            count = self.levels_[fac.field].get(value, 0) if isinstance(value, str) else 0
            if count == 0:
                out.append(f"{fac.field}={value} was not seen in the training data")
            elif count < self.rare_count:
                out.append(f"{fac.field}={value} is rare in the training data (n={count})")
        return out

    def _row_inputs(self, record: Mapping[str, Any]) -> _Row:
        """:func:`_extract` and :meth:`_complete` for one record: raw and imputed numbers, enum values, labels."""
        missing = [f for f in _REQUIRED_INPUTS if f not in record]
        if missing:
            raise NbriskError(f"records lack predictor field(s): {', '.join(missing)}")
        status = record["disease_status_at_hsct"]
        cr = status == "CR"
        raw: dict[str, float] = {}
        num: dict[str, float] = {}
        for f in _NUMERIC_INPUTS:
            v = record[f]
            v = np.nan if v is None else float(v)
            raw[f] = v
            if v != v:
                v = (0.0 if cr else self.medians_[f]) if f in _ZERO_IF_CR else self.medians_[f]
            num[f] = v
        labels: dict[str, Any] = {}
        for fac in _FACTORS:
            if isinstance(fac.mapper, _Band):  # a band of a number (never missing once imputed)
                labels[fac.field] = fac.mapper.label(num[fac.field])
            elif fac.mapper is not None:
                value = record[fac.field]
                labels[fac.field] = fac.mapper.get(value, value)
            else:
                labels[fac.field] = record[fac.field]
        center = record.get("center_id")
        return _Row(raw, num, labels, status, center, record)

    def _row_numeric(self, row: _Row) -> dict[str, float]:
        """:meth:`_numeric_columns` of one record (same operations, in the same order, on Python floats)."""
        raw, v, rec = row.raw, row.num, row.record
        age_y = (v["age_at_diagnosis_months"] + v["months_diagnosis_to_hsct"]) / 12.0
        curie_obs, marrow_obs = raw["curie_score_at_hsct"], raw["bone_marrow_tumor_percent_at_hsct"]
        worse_than_vgpr = row.status in ("PR", "MR", "SD", "PD")
        burden = float(worse_than_vgpr) + float(curie_obs > 2) + float(marrow_obs > 0)
        relapsed = rec["disease_phase"] in ("first_relapse", "second_or_later_relapse")
        months = v["months_diagnosis_to_hsct"]
        share = self.curie_over_2_share_
        cols: dict[str, float] = {
            "age_at_hsct_years": age_y,
            "age_at_hsct_over_10y": float(age_y > 10),
            "age_at_diagnosis_over_18m": float(v["age_at_diagnosis_months"] >= 18),
            "years_diagnosis_to_hsct": v["months_diagnosis_to_hsct"] / 12.0,
            "metastatic_sites": v["metastatic_sites_at_diagnosis"],
            "bone_marrow_metastasis": v["bone_marrow_metastasis_at_diagnosis"],
            "log10_ldh": float(np.log10(v["ldh_at_diagnosis_u_l"])),
            "prior_auto_hsct_any": float(v["prior_auto_hsct"] >= 1),
            "prior_auto_hsct_tandem": float(v["prior_auto_hsct"] >= 2),
            "curie_score": v["curie_score_at_hsct"],
            "curie_score_over_2": (
                share.get(str(row.status), share[""]) if curie_obs != curie_obs else float(curie_obs > 2)
            ),
            "kir_ligand_mismatch_haplo": float(
                rec["donor_type"] == "haploidentical" and rec["kir_ligand_mismatch"] == "yes"
            ),
            "marrow_tumor_percent": v["bone_marrow_tumor_percent_at_hsct"],
            "residual_burden": burden,
            "lansky_below_90": float(v["lansky_score"] < 90),
            "log10_cd34_dose": float(np.log10(v["cd34_dose_1e6_per_kg"])),
            "donor_age_years": v["donor_age_years"],
            "era": (v["hsct_year"] - self.year_center_) / 5.0,
            "relapsed_dx_to_hsct_0_18m": (min(months, 18.0) / 12.0) if relapsed else 0.0,
            "relapsed_dx_to_hsct_18_36m": (min(max(months - 18.0, 0.0), 18.0) / 12.0) if relapsed else 0.0,
            "relapsed_dx_to_hsct_over_36m": (max(months - 36.0, 0.0) / 12.0) if relapsed else 0.0,
        }
        if getattr(self, "splines", False):
            cols["lansky_per_10"] = v["lansky_score"] / 10.0
            cols["log2_marrow_tumor_percent"] = float(np.log2(1.0 + v["bone_marrow_tumor_percent_at_hsct"]))
            for name, knots in getattr(self, "spline_knots_", {}).items():
                for k, knot in enumerate(knots, start=1):
                    cols[f"{name}_hinge{k}"] = max(cols[name] - knot, 0.0)
        for f in self.missing_indicators_:
            cols[f"{f}_missing"] = float(raw[f] != raw[f])
        if self.centers_:
            c = row.center
            cid = None if c is None or c != c else str(c)
            first = float(cid == self.centers_[0])
            for c in self.centers_[1:]:
                cols[f"center_effect={c}"] = float(cid == c) - first
        return cols

    # ------------------------------------------------------------------------------------------------------------
    @staticmethod
    def _check_records(X: Any) -> pd.DataFrame | Mapping[str, np.ndarray]:
        """The records as given: a DataFrame, or a mapping of typed numpy columns (``validate_columns``)."""
        columns = isinstance(X, Mapping) and all(isinstance(v, np.ndarray) for v in X.values())
        if not (isinstance(X, pd.DataFrame) or columns):
            raise NbriskError("the feature pipeline expects a DataFrame of validated records (or their typed columns)")
        missing = [f for f in _REQUIRED_INPUTS if f not in X]
        if missing:
            raise NbriskError(f"records lack predictor field(s): {', '.join(missing)}")
        return X

    def _imputation_note(self, f: str, inp: _Inputs, i: int) -> str:
        if f in _ZERO_IF_CR and inp.objs["disease_status_at_hsct"][i] == "CR":
            return " as 0 (disease status CR)"
        return f" with the training median ({_fmt(self.medians_[f])})"

    def _complete(self, inp: _Inputs) -> _Inputs:
        """Impute the numeric inputs and compute every factor's level labels (in place; returns ``inp``)."""
        cr = inp.objs["disease_status_at_hsct"] == "CR"
        num = {}
        for f, v in inp.raw.items():
            nan = np.isnan(v)
            if nan.any():
                fill = np.where(cr, 0.0, self.medians_[f]) if f in _ZERO_IF_CR else self.medians_[f]
                v = np.where(nan, fill, v)
            num[f] = v
        labels = {}
        for fac in _FACTORS:
            if callable(fac.mapper):
                lab = fac.mapper(num[fac.field])
            elif fac.mapper is not None:
                get = fac.mapper.get
                lab = np.array([get(v, v) for v in inp.objs[fac.field]], dtype=object)
            else:
                lab = inp.objs[fac.field]
            labels[fac.field] = lab
        inp.num, inp.labels = num, labels
        return inp

    def _numeric_columns(self, inp: _Inputs) -> dict[str, np.ndarray]:
        """The derived numeric and missing-indicator columns (every candidate, before dropping)."""
        raw, v = inp.raw, inp.num
        age_y = (v["age_at_diagnosis_months"] + v["months_diagnosis_to_hsct"]) / 12.0
        # Burden counts only observed markers: an imputed Curie/marrow value is not evidence of residual disease.
        curie_obs, marrow_obs = raw["curie_score_at_hsct"], raw["bone_marrow_tumor_percent_at_hsct"]
        worse_than_vgpr = np.isin(inp.objs["disease_status_at_hsct"], ("PR", "MR", "SD", "PD"))
        with np.errstate(invalid="ignore"):
            burden = worse_than_vgpr.astype(float) + (curie_obs > 2).astype(float) + (marrow_obs > 0).astype(float)
        # Time diagnosis → HSCT in relapsed disease (a proxy of the time to first relapse, London 2011: < 18 and
        # 18–36 months vs later): a linear spline with knots at 18 and 36 months, zero outside relapsed disease.
        relapsed = np.isin(inp.objs["disease_phase"], ("first_relapse", "second_or_later_relapse"))
        months = v["months_diagnosis_to_hsct"]
        cols_relapse = {
            "relapsed_dx_to_hsct_0_18m": np.where(relapsed, np.minimum(months, 18.0) / 12.0, 0.0),
            "relapsed_dx_to_hsct_18_36m": np.where(relapsed, np.clip(months - 18.0, 0.0, 18.0) / 12.0, 0.0),
            "relapsed_dx_to_hsct_over_36m": np.where(relapsed, np.maximum(months - 36.0, 0.0) / 12.0, 0.0),
        }
        share = self.curie_over_2_share_
        curie_share = np.array([share.get(str(st), share[""]) for st in inp.objs["disease_status_at_hsct"]])
        cols: dict[str, np.ndarray] = {
            "age_at_hsct_years": age_y,
            "age_at_hsct_over_10y": (age_y > 10).astype(float),
            "age_at_diagnosis_over_18m": (v["age_at_diagnosis_months"] >= 18).astype(float),
            "years_diagnosis_to_hsct": v["months_diagnosis_to_hsct"] / 12.0,
            "metastatic_sites": v["metastatic_sites_at_diagnosis"],
            "bone_marrow_metastasis": v["bone_marrow_metastasis_at_diagnosis"],
            "log10_ldh": np.log10(v["ldh_at_diagnosis_u_l"]),
            "prior_auto_hsct_any": (v["prior_auto_hsct"] >= 1).astype(float),
            "prior_auto_hsct_tandem": (v["prior_auto_hsct"] >= 2).astype(float),
            "curie_score": v["curie_score_at_hsct"],
            "curie_score_over_2": np.where(np.isnan(curie_obs), curie_share, curie_obs > 2),
            "kir_ligand_mismatch_haplo": (
                (inp.objs["donor_type"] == "haploidentical") & (inp.objs["kir_ligand_mismatch"] == "yes")
            ).astype(float),
            "marrow_tumor_percent": v["bone_marrow_tumor_percent_at_hsct"],
            "residual_burden": burden,
            "lansky_below_90": (v["lansky_score"] < 90).astype(float),
            "log10_cd34_dose": np.log10(v["cd34_dose_1e6_per_kg"]),
            "donor_age_years": v["donor_age_years"],
            "era": (v["hsct_year"] - self.year_center_) / 5.0,
            **cols_relapse,
        }
        if getattr(self, "splines", False):
            cols["lansky_per_10"] = v["lansky_score"] / 10.0
            cols["log2_marrow_tumor_percent"] = np.log2(1.0 + v["bone_marrow_tumor_percent_at_hsct"])
            for name, knots in getattr(self, "spline_knots_", {}).items():
                for k, knot in enumerate(knots, start=1):
                    cols[f"{name}_hinge{k}"] = np.maximum(cols[name] - knot, 0.0)
        for f in self.missing_indicators_:
            cols[f"{f}_missing"] = np.isnan(raw[f]).astype(float)
        if self.centers_:
            cid = np.array([None if c is None or c != c else str(c) for c in inp.objs["center_id"]], dtype=object)
            first = (cid == self.centers_[0]).astype(float)
            for c in self.centers_[1:]:
                cols[f"center_effect={c}"] = (cid == c).astype(float) - first
        return cols

    def _candidate_matrix(self, inp: _Inputs) -> tuple[list[str], np.ndarray]:
        """All candidate columns (fit: before dropping) → (names, float matrix (n, k))."""
        cols = self._numeric_columns(inp)
        for fac in _FACTORS:
            lab = inp.labels[fac.field]
            ref = self.references_[fac.field]
            for level in self.levels_[fac.field]:
                if level != ref:
                    cols[f"{fac.field}={level}"] = (lab == level).astype(float)
        names = list(cols)
        return names, np.column_stack([cols[name] for name in names])

    def _output_matrix(self, inp: _Inputs) -> np.ndarray:
        """Only the kept columns: numeric ones copied, one-hot ones set by one dictionary lookup per record."""
        numeric = self._numeric_columns(inp)
        n = len(numeric["age_at_hsct_years"])
        matrix = np.zeros((n, len(self.feature_names_out_)))
        for j, name in enumerate(self.feature_names_out_):
            if name in numeric:
                matrix[:, j] = numeric[name]
        # One pass of dictionary lookups over all factors, then one fancy-index assignment: per-factor numpy calls
        # dominate the cost for the single-patient requests of the service.
        rows: list[int] = []
        cols: list[int] = []
        for name, index in self._onehot_index_.items():
            get = index.get
            for i, level in enumerate(inp.labels[name]):
                col = get(level)
                if col is not None:
                    rows.append(i)
                    cols.append(col)
        matrix[rows, cols] = 1.0
        return matrix

    @staticmethod
    def _source(name: str) -> str:
        if "_hinge" in name:
            name = name.rsplit("_hinge", 1)[0]
        if name in _NUMERIC_SOURCE:
            return _NUMERIC_SOURCE[name]
        if name.startswith("center_effect="):
            return "center_id"
        if name.endswith("_missing"):
            return name[: -len("_missing")]
        return name.split("=", 1)[0]


#: The pre-specified ("clinical") predictor set of the Cox family: the factors of the literature table in
#: ``docs/synthetic-cohort.md`` (relapse: disease phase and status at HSCT, Curie score > 2, MYCN,
#: metastatic sites, prior autologous HSCT, age > 10 years, KIR-ligand mismatch with a haplo donor, anti-GD2,
#: conditioning, the interval diagnosis → HSCT in relapsed disease; TRM: HCT-CI, donor type and graft manipulation,
#: Lansky < 90, era, conditioning, prior autologous HSCT, age) with their missing flags. Chosen before looking at any
#: outcome (TRIPOD+AI item 9a, choice and pre-selection of predictors): a Cox model on all ~80 columns spends ~3
#: TRM events per coefficient and over-fits.
#: Shell-style patterns over the output columns of :class:`RecordFeatures`.
CLINICAL_PREDICTORS: tuple[str, ...] = (
    "age_at_hsct_over_10y",
    "years_diagnosis_to_hsct",
    "metastatic_sites",
    "prior_auto_hsct_any",
    "era",
    "lansky_below_90",
    "curie_score_over_2",
    "curie_score_at_hsct_missing",
    "hct_ci=*",
    "hct_ci_missing",
    "mycn_status=amplified",
    "disease_phase=*",
    "disease_status_at_hsct=*",
    "relapsed_dx_to_hsct_*",
    "donor_type=*",
    "graft_manipulation=*",
    "kir_ligand_mismatch_haplo",
    "conditioning_intensity=*",
    "planned_post_hsct_immunotherapy=anti_gd2",
)

#: Disease status at HSCT may act differently early on: its log hazard ratio is a step function changing at 6 and 12
#: months (in days, the unit of the outcomes) in the clinical Cox specification.
CLINICAL_TIME_VARYING: tuple[str, ...] = ("disease_status_at_hsct=*",)
CLINICAL_KNOTS_DAYS: tuple[float, ...] = (6 * DAYS_PER_MONTH, 12 * DAYS_PER_MONTH)


def clinical_cox_params(*extra_features: str) -> dict[str, Any]:
    """``CauseSpecificCox`` parameters of the clinical specification (what ``configs/*.toml`` spell out), optionally
    with more feature patterns (e.g. ``"center_effect=*"``)."""
    return {
        "features": (*CLINICAL_PREDICTORS, *extra_features),
        "time_varying": CLINICAL_TIME_VARYING,
        "time_varying_knots": CLINICAL_KNOTS_DAYS,
    }


def _fmt(x: float) -> str:
    return f"{x:g}"


def make_feature_pipeline(**kw: Any) -> RecordFeatures:
    """The project's feature pipeline with its defaults (keyword arguments are :class:`RecordFeatures` params)."""
    return RecordFeatures(**kw)
