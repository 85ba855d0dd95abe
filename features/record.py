"""The patient record contract (``docs/patient-record.md``) as data, and its validator.

One row (CSV/Parquet) or one JSON object per patient. :data:`FIELDS` is the single source of truth for every field:
file import, the HTTP service, the feature pipeline and the reports read names, vocabularies and ranges from here.

:func:`validate_records` checks a whole table at once and collects **every** problem (it never stops at the first one
and never drops a row silently); :func:`validate_record` does the same for one JSON object (the HTTP service).

Canonical types of the returned DataFrame (the contract everybody downstream codes against):

* ``enum`` and ``string`` fields: Python ``str`` in an ``object`` column (``None`` when missing). Enum values are
  matched case-insensitively after stripping whitespace and returned in their canonical spelling (``"cr"`` → ``"CR"``).
* ``number`` **and** ``integer`` fields: ``float64`` (``NaN`` when missing). Integer fields are checked to hold whole
  numbers, but are stored as float so that missing values need no special dtype and the feature pipeline gets floats.
* ``boolean`` fields: ``float64`` 1.0 / 0.0 (``NaN`` when invalid). Accepted inputs: ``true``/``false``
  (any case), ``1``/``0``, JSON booleans.
* ``date`` fields: ``datetime64[ns]`` (``NaT`` when missing). Input: ISO 8601 ``YYYY-MM-DD`` strings or dates.

Missing values: ``None``/``NaN``, empty or blank strings and the tokens ``NA``, ``N/A``, ``null``, ``None``,
``NaN`` (any case). A value that fails a rule is set to missing in the returned frame; callers must not use the frame
when the problem list is not empty.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from nbrisk.core import NbriskError

Kind = Literal["enum", "number", "integer", "boolean", "string", "date"]
Group = Literal["identification", "disease", "pre_transplant_status", "donor_graft", "conditioning", "outcome"]

#: Lower-cased tokens read as a missing value (besides None/NaN and blank strings).
MISSING_TOKENS = frozenset({"", "na", "n/a", "null", "none", "nan"})
#: Intended-use refusal message (a record outside the population the model was built for).
OUTSIDE_INTENDED_USE = "outside the model's intended use"
_PATIENT_ID_RE = r"[A-Za-z0-9_\-]{1,64}"
_MAX_VALUE_CHARS = 60


@dataclass(frozen=True)
class FieldSpec:
    """One field of the record contract.

    ``required``: the column (or JSON key) must be present. ``nullable``: a present value may be missing (for
    enums with an ``unknown`` level the contract says "use ``unknown``" instead, so they are not nullable).
    ``allowed``: canonical enum vocabulary. ``minimum``/``maximum``: inclusive range in ``unit``.
    ``multiple_of``: integer step (Lansky score). ``intended_use``: values outside ``allowed`` are refused as out of
    the intended population rather than as a typo.
    """

    name: str
    kind: Kind
    group: Group
    label: str
    required: bool = True
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    unit: str | None = None
    multiple_of: int | None = None
    pattern: str | None = None
    intended_use: bool = False
    lookup: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.allowed is not None:
            object.__setattr__(self, "lookup", {v.lower(): v for v in self.allowed})

    @property
    def is_predictor(self) -> bool:
        return self.group not in ("identification", "outcome")


def _enum(name, group, label, allowed, **kw) -> FieldSpec:
    return FieldSpec(name, "enum", group, label, allowed=tuple(allowed), **kw)


def _num(name, group, label, lo, hi, unit=None, *, integer=False, nullable=False, **kw) -> FieldSpec:
    return FieldSpec(
        name,
        "integer" if integer else "number",
        group,
        label,
        minimum=lo,
        maximum=hi,
        unit=unit,
        nullable=nullable,
        required=not nullable,
        **kw,
    )


_UNK = ("unknown",)
_FIELD_LIST: list[FieldSpec] = [
    # identification
    FieldSpec("patient_id", "string", "identification", "Pseudonymous patient ID", pattern=_PATIENT_ID_RE),
    FieldSpec("center_id", "string", "identification", "Center", required=False, nullable=True),
    # disease at diagnosis
    _enum("sex", "disease", "Sex", ("male", "female")),
    _num("age_at_diagnosis_months", "disease", "Age at diagnosis", 0, 216, "months"),
    _num("months_diagnosis_to_hsct", "disease", "Time from diagnosis to allo-HSCT", 1, 180, "months"),
    _enum("inrg_stage", "disease", "INRG stage", ("M",), intended_use=True),
    _enum("mycn_status", "disease", "MYCN", ("amplified", "gain", "not_amplified", *_UNK)),
    _enum("chr11q_aberration", "disease", "11q aberration", ("present", "absent", *_UNK)),
    _enum("alk_status", "disease", "ALK", ("mutated", "wild_type", *_UNK)),
    _enum("inpc_histology", "disease", "INPC histology", ("favorable", "unfavorable", *_UNK)),
    _num("ldh_at_diagnosis_u_l", "disease", "LDH at diagnosis", 50, 20000, "U/L", nullable=True),
    _num(
        "metastatic_sites_at_diagnosis",
        "disease",
        "Metastatic compartments at diagnosis",
        1,
        6,
        "compartments",
        integer=True,
    ),
    FieldSpec("bone_marrow_metastasis_at_diagnosis", "boolean", "disease", "Bone-marrow metastasis at diagnosis"),
    # status before the transplant
    _enum(
        "disease_phase",
        "pre_transplant_status",
        "Disease phase",
        ("upfront_consolidation", "refractory", "first_relapse", "second_or_later_relapse"),
    ),
    _num("prior_auto_hsct", "pre_transplant_status", "Prior autologous HSCTs", 0, 2, integer=True),
    _enum(
        "disease_status_at_hsct",
        "pre_transplant_status",
        "Disease status at HSCT (INRC 2017)",
        ("CR", "VGPR", "PR", "MR", "SD", "PD"),
    ),
    _num(
        "curie_score_at_hsct", "pre_transplant_status", "MIBG Curie score at HSCT", 0, 30, integer=True, nullable=True
    ),
    _num(
        "bone_marrow_tumor_percent_at_hsct",
        "pre_transplant_status",
        "Bone-marrow tumour at HSCT",
        0,
        100,
        "%",
        nullable=True,
    ),
    _enum("mrd_at_hsct", "pre_transplant_status", "MRD at HSCT", ("negative", "positive", *_UNK)),
    _num("lansky_score", "pre_transplant_status", "Lansky score", 10, 100, integer=True, multiple_of=10),
    _num("hct_ci", "pre_transplant_status", "HCT-CI", 0, 29, integer=True, nullable=True),
    # donor and graft
    _enum(
        "donor_type",
        "donor_graft",
        "Donor type",
        (
            "matched_sibling",
            "matched_related",
            "matched_unrelated",
            "mismatched_unrelated",
            "haploidentical",
            "cord_blood",
        ),
    ),
    _num("hla_mismatches", "donor_graft", "HLA mismatches", 0, 5, integer=True),
    _enum("kir_ligand_mismatch", "donor_graft", "KIR-ligand mismatch", ("yes", "no", *_UNK)),
    _enum("graft_source", "donor_graft", "Graft source", ("bone_marrow", "peripheral_blood", "cord_blood")),
    _enum(
        "graft_manipulation",
        "donor_graft",
        "Graft manipulation",
        ("none", "alpha_beta_t_depleted", "cd3_cd19_depleted", "cd34_selected"),
    ),
    _num("cd34_dose_1e6_per_kg", "donor_graft", "CD34+ dose", 0.1, 60, "×10⁶/kg", nullable=True),
    _enum("recipient_cmv", "donor_graft", "Recipient CMV", ("positive", "negative", *_UNK)),
    _enum("donor_cmv", "donor_graft", "Donor CMV", ("positive", "negative", *_UNK)),
    _num("donor_age_years", "donor_graft", "Donor age", 0, 80, "years", nullable=True),
    _enum("donor_sex", "donor_graft", "Donor sex", ("male", "female", *_UNK)),
    # conditioning and plan
    _enum(
        "conditioning_intensity",
        "conditioning",
        "Conditioning intensity",
        ("myeloablative", "reduced_intensity", "non_myeloablative"),
    ),
    _enum("serotherapy", "conditioning", "Serotherapy", ("atg", "alemtuzumab", "none")),
    _enum(
        "gvhd_prophylaxis",
        "conditioning",
        "GVHD prophylaxis",
        ("calcineurin_based", "ptcy_based", "t_cell_depletion_only", "other"),
    ),
    _enum(
        "planned_post_hsct_immunotherapy",
        "conditioning",
        "Planned post-HSCT immunotherapy",
        ("anti_gd2", "other", "none"),
    ),
    _num("hsct_year", "conditioning", "Year of HSCT", 1990, 2035, integer=True),
    # outcomes (training data only)
    FieldSpec("date_hsct", "date", "outcome", "Date of allo-HSCT (day 0)"),
    FieldSpec("date_relapse", "date", "outcome", "Date of relapse/progression", required=False, nullable=True),
    FieldSpec("date_death", "date", "outcome", "Date of death", required=False, nullable=True),
    _enum(
        "cause_of_death",
        "outcome",
        "Cause of death",
        ("relapse_progression", "transplant_related", "other", "unknown"),
        required=False,
        nullable=True,
    ),
    FieldSpec("date_last_followup", "date", "outcome", "Date of last follow-up"),
]

#: The whole contract, in spec order: field name → :class:`FieldSpec`.
FIELDS: dict[str, FieldSpec] = {f.name: f for f in _FIELD_LIST}
#: Identification fields (never predictors).
ID_FIELDS: list[str] = [f.name for f in _FIELD_LIST if f.group == "identification"]
#: Baseline predictors (known before day 0), in contract order (``docs/patient-record.md``).
PREDICTOR_FIELDS: list[str] = [f.name for f in _FIELD_LIST if f.is_predictor]
#: Outcome fields (training data only).
OUTCOME_FIELDS: list[str] = [f.name for f in _FIELD_LIST if f.group == "outcome"]

#: ``donor_type`` → allowed inclusive range of ``hla_mismatches``.
HLA_MISMATCH_RANGE: dict[str, tuple[int, int]] = {
    "matched_sibling": (0, 0),
    "matched_related": (0, 0),
    "matched_unrelated": (0, 0),
    "mismatched_unrelated": (1, 2),
    "haploidentical": (2, 5),
    "cord_blood": (0, 3),
}
#: Age at HSCT (years) of the intended population.
AGE_AT_HSCT_RANGE_YEARS = (0.5, 25.0)


@dataclass(frozen=True)
class Problem:
    """One problem in an input: where (``row``, ``patient_id``, ``field``), what (``value``) and why (``rule``).

    ``row`` is the 1-based data row of a file, or the 0-based index in a JSON list; ``None`` for a problem of the
    whole file (an unknown or missing column). ``field`` names several fields, comma-separated, for a consistency
    rule. ``value`` is the raw input as text (truncated).
    """

    row: int | None
    patient_id: str | None
    field: str
    value: str
    rule: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "patient_id": self.patient_id,
            "field": self.field,
            "value": self.value,
            "rule": self.rule,
        }


class CohortValidationError(NbriskError):
    """Input records break the contract. ``problems`` lists every problem found (never just the first)."""

    exit_code = 1

    def __init__(self, problems: Iterable[Problem], source: str | None = None):
        self.problems: list[Problem] = list(problems)
        n_rows = len({p.row for p in self.problems if p.row is not None})
        where = f" in {source}" if source else ""
        first = self.problems[0] if self.problems else None
        hint = ""
        if first is not None:
            loc = f"row {first.row}, " if first.row is not None else ""
            hint = f"; first: {loc}{first.field}: {first.rule}"
        super().__init__(
            f"{len(self.problems)} problem(s){where} affecting {n_rows} row(s){hint}"
            " (run `nbrisk data validate` for the full list)"
        )


# --------------------------------------------------------------------------------------------------------------
# Column parsing. Each parser takes the raw column as a numpy array (object for CSV text and JSON values, float or
# datetime64 for typed Parquet columns) and returns the typed values plus a list of ``(mask, rule)`` problems. The
# common case (a well-formed value) takes one dictionary lookup or one ``float()`` per value; only irregular values
# go through the slow path. This keeps 1,000 JSON records well under 50 ms (the HTTP service validates every
# request) -- pandas' per-column string methods cost several milliseconds each and were too slow.
# --------------------------------------------------------------------------------------------------------------

_NAN = float("nan")


def _to_text(v: Any) -> str | None:
    """A raw value as stripped text, ``None`` for a true missing value (None, NaN, NA, NaT)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, float) and v != v:
        return None
    return str(v)


def _is_missing(v: Any) -> bool:
    t = _to_text(v)
    return t is None or t.lower() in MISSING_TOKENS


def _display(v: Any) -> str:
    t = _to_text(v)
    if t is None:
        return ""
    return t if len(t) <= _MAX_VALUE_CHARS else t[: _MAX_VALUE_CHARS - 1] + "…"


_NUMBER_CLASSES = (int, float, np.float64, np.float32, np.int64, np.int32)


def _numeric_objects(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse an object column of numbers / numeric text → (values, missing, bad type)."""
    n = len(arr)
    try:  # fast path: every value is numeric text or a number (numpy calls float() in C)
        vals = arr.astype(float)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer beyond float range
        pass
    else:
        # float(True) == 1.0: booleans can only hide among the 0/1 values, check just those.
        maybe_bool = np.flatnonzero((vals == 0.0) | (vals == 1.0))
        if not any(isinstance(arr[i], bool | np.bool_) for i in maybe_bool):
            missing = np.isnan(vals)
            return vals, missing, np.zeros(n, bool)
    vals = np.empty(n)
    missing = np.zeros(n, bool)
    bad_type = np.zeros(n, bool)
    for i, v in enumerate(arr):
        c = v.__class__
        if c is str or c in _NUMBER_CLASSES:
            try:
                x = float(v)
            except (ValueError, OverflowError):
                x = _NAN
                if c is str and v.strip().lower() in MISSING_TOKENS:
                    missing[i] = True
                else:
                    bad_type[i] = True
            else:
                if x != x:  # "nan" text or a float NaN
                    missing[i] = True
            vals[i] = x
        elif _to_text(v) is None:
            vals[i] = _NAN
            missing[i] = True
        else:  # booleans, lists, objects: never a number
            vals[i] = _NAN
            bad_type[i] = True
    return vals, missing, bad_type


def _parse_numeric(arr: np.ndarray, spec: FieldSpec) -> tuple[np.ndarray, np.ndarray, list]:
    """Float values, missing mask and problems of a number/integer column."""
    n = len(arr)
    if arr.dtype == bool:
        return np.full(n, _NAN), np.zeros(n, bool), [(np.ones(n, bool), "not a number (got a boolean)")]
    if arr.dtype.kind in "iuf":
        vals = arr.astype(float)
        missing = np.isnan(vals)
        bad_type = np.zeros(n, bool)
    else:
        vals, missing, bad_type = _numeric_objects(arr)
    checks: list[tuple[np.ndarray, str]] = []
    with np.errstate(invalid="ignore"):
        bad_type |= ~missing & ~np.isfinite(vals)
        checks.append((bad_type, "not a number"))
        ok = ~missing & ~bad_type
        if spec.kind == "integer":
            frac = ok & (np.floor(vals) != vals)
            checks.append((frac, "not a whole number"))
            ok &= ~frac
        lo, hi = spec.minimum, spec.maximum
        if lo is not None and hi is not None:
            unit = f" {spec.unit}" if spec.unit else ""
            out = ok & ((vals < lo) | (vals > hi))
            checks.append((out, f"out of range {lo:g}–{hi:g}{unit}"))
            ok &= ~out
        if spec.multiple_of:
            checks.append((ok & (np.mod(vals, spec.multiple_of) != 0), f"must be a multiple of {spec.multiple_of}"))
    return vals, missing, checks


def _lookup_column(arr: np.ndarray, table: Mapping[Any, Any], normalise) -> tuple[list, np.ndarray, np.ndarray]:
    """Map each value through ``table`` (exact hit fast; else ``normalise`` then lookup; else missing or bad)."""
    get = table.get
    try:
        out = [get(v) for v in arr]
    except TypeError:  # an unhashable value (a JSON list or object)
        out = [get(v) if isinstance(v, str | int | float | bool) else None for v in arr]
    n = len(arr)
    missing = np.zeros(n, bool)
    bad = np.zeros(n, bool)
    for i, c in enumerate(out):
        if c is None:
            v = arr[i]
            if _is_missing(v):
                missing[i] = True
            else:
                key = normalise(v)
                c = get(key) if key is not None else None
                if c is None:
                    bad[i] = True
                out[i] = c
    return out, missing, bad


def _norm_text(v: Any) -> str | None:
    return v.strip().lower() if isinstance(v, str) else None


def _parse_enum(arr: np.ndarray, spec: FieldSpec) -> tuple[np.ndarray, np.ndarray, list]:
    table = {**{v: v for v in (spec.allowed or ())}, **spec.lookup}
    out, missing, bad = _lookup_column(arr, table, _norm_text)
    if spec.intended_use:
        rule = f"{OUTSIDE_INTENDED_USE} (only {', '.join(spec.allowed or ())} is accepted)"
    else:
        rule = f"not one of {', '.join(spec.allowed or ())}"
    vals = np.array(out, dtype=object)
    return vals, missing, [(bad, rule)]


_BOOL_TABLE: dict[Any, float] = {
    True: 1.0,
    False: 0.0,
    "true": 1.0,
    "false": 0.0,
    "1": 1.0,
    "0": 0.0,
    "1.0": 1.0,
    "0.0": 0.0,
}


def _norm_bool(v: Any) -> Any:
    if isinstance(v, str):
        return v.strip().lower()
    if isinstance(v, np.bool_ | np.integer | np.floating):
        return v.item()
    return None


def _parse_boolean(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    if arr.dtype.kind in "biuf":
        vals = arr.astype(float)
        missing = np.isnan(vals)
        bad = ~missing & ~np.isin(vals, (0.0, 1.0))
    else:
        out, missing, bad = _lookup_column(arr, _BOOL_TABLE, _norm_bool)
        vals = np.array([_NAN if c is None else c for c in out], dtype=float)
    return vals, missing, [(bad, "not a boolean (true/false)")]


def _parse_string(arr: np.ndarray, spec: FieldSpec) -> tuple[np.ndarray, np.ndarray, list]:
    n = len(arr)
    vals = np.empty(n, dtype=object)
    missing = np.zeros(n, bool)
    for i, v in enumerate(arr):
        t = _to_text(v)
        if t is None or t.lower() in MISSING_TOKENS:
            missing[i] = True
            t = None
        vals[i] = t
    checks = []
    if spec.pattern:
        match = re.compile(spec.pattern).fullmatch
        bad = np.array([t is not None and match(t) is None for t in vals], dtype=bool)
        checks.append((bad, "must be 1–64 characters of A-Z a-z 0-9 _ - (pseudonymous)"))
    return vals, missing, checks


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _one_date(v: Any) -> tuple[Any, int]:
    """``(date, status)``: status 0 ok, 1 missing, 2 bad."""
    if isinstance(v, str):
        t = v.strip()
        if _ISO_DATE.fullmatch(t):
            try:
                return dt.date.fromisoformat(t), 0
            except ValueError:
                return None, 2
        return None, 1 if t.lower() in MISSING_TOKENS else 2
    if isinstance(v, dt.date | np.datetime64):  # date, datetime, pandas Timestamp, numpy datetime64
        return (None, 1) if pd.isna(v) else (pd.Timestamp(v).normalize().to_datetime64(), 0)
    return (None, 1) if _to_text(v) is None else (None, 2)


def _parse_date(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    if arr.dtype.kind == "M":
        vals = arr.astype("datetime64[ns]")
        return vals, np.isnat(vals), []
    if all(v.__class__ is str and len(v) == 10 for v in arr):
        try:  # fast path: all well-formed ISO days (numpy parses them in C and rejects impossible dates)
            vals = arr.astype("datetime64[D]").astype("datetime64[ns]")
        except ValueError:
            pass
        else:
            return vals, np.zeros(len(arr), bool), []
    parsed = [_one_date(v) for v in arr]
    status = np.array([s for _, s in parsed], dtype=np.int8)
    vals = np.array([d if s == 0 else None for d, s in parsed], dtype="datetime64[D]").astype("datetime64[ns]")
    return vals, status == 1, [(status == 2, "not a valid ISO 8601 date (YYYY-MM-DD)")]


def _column_array(col: pd.Series) -> np.ndarray:
    """A column as a plain numpy array: float for numeric dtypes, datetime64 for dates, object otherwise."""
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype) and not col.isna().any():
        return col.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return col.to_numpy(dtype=float, na_value=_NAN)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        if getattr(dtype, "tz", None) is not None:
            col = col.dt.tz_localize(None)
        return col.to_numpy(dtype="datetime64[ns]")
    return col.to_numpy(dtype=object)


def _typed_empty(spec: FieldSpec, n: int) -> np.ndarray:
    if spec.kind in ("enum", "string"):
        return np.full(n, None, dtype=object)
    if spec.kind == "date":
        return np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    return np.full(n, np.nan)


# --------------------------------------------------------------------------------------------------------------
# The validator.
# --------------------------------------------------------------------------------------------------------------


def validate_records(
    df: pd.DataFrame,
    *,
    require_outcomes: bool,
    require_center: bool,
    first_row: int = 1,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Check every row of ``df`` against the record contract and return ``(typed, problems)``.

    Parameters
    ----------
    df : raw records, one row per patient (CSV read as strings, Parquet, or JSON objects).
    require_outcomes : training data: the outcome fields (``date_hsct``, ``date_last_followup``, ...) are required
        and checked by :func:`nbrisk.features.outcomes.outcome_problems`.
    require_center : ``center_id`` required (training data, for internal-external validation).
    first_row : number of the first data row in problems (1 for a file, 0 for a JSON list).

    Returns
    -------
    typed : DataFrame with the same index as ``df`` and the contract's columns in contract order (id fields, predictors,
        and the outcome fields when required or present), in the canonical types of the module docstring.
    problems : every :class:`Problem` found, in row order (file-level problems first). Empty means valid.

    The rules themselves live in :func:`_check_columns`, which works on plain numpy columns; this function only
    takes the columns out of the frame and puts the typed ones back into one. :func:`validate_columns` (the HTTP
    service's path for JSON objects) calls the same rules without any DataFrame.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError("validate_records expects a pandas DataFrame")
    columns = [str(c) for c in df.columns]
    raw = {name: _column_array(df[name]) for name in dict.fromkeys(columns) if columns.count(name) == 1}
    # ids as given (an integer id column shows as "7", not as the float the numeric parser would make of it)
    ids = df["patient_id"].to_numpy(dtype=object) if "patient_id" in raw else None
    typed, problems, per_row = _check_columns(
        raw,
        columns,
        len(df),
        require_outcomes=require_outcomes,
        require_center=require_center,
        first_row=first_row,
        raw_ids=ids,
    )
    out = pd.DataFrame(typed, index=df.index, copy=False)
    if require_outcomes:
        from nbrisk.features.outcomes import outcome_problems

        order = len(per_row)
        for p in outcome_problems(out, first_row=first_row):
            pos = int(p.row) - first_row if p.row is not None else 0
            per_row.append((pos, order, p))
            order += 1
    per_row.sort(key=lambda t: (t[0], t[1]))
    problems.extend(p for _, _, p in per_row)
    return out, problems


def validate_columns(
    columns: Mapping[str, np.ndarray], n: int, *, require_center: bool = False, first_row: int = 0
) -> tuple[dict[str, np.ndarray], list[Problem]]:
    """:func:`validate_records` for raw columns given as 1-D numpy arrays (no DataFrame built, in or out).

    The HTTP service's path: a one-patient request is a few hundred numbers, and building, indexing and copying
    pandas frames cost milliseconds of it. ``columns`` maps each field name sent to its ``n`` raw values (an
    ``object`` array of JSON values, ``None`` where a patient lacks the key). Returns the typed columns (the same
    arrays, dtypes and values as the columns of :func:`validate_records`' frame) and the same problems in the same
    order, because both run :func:`_check_columns`. Outcome fields are checked for type only (as
    ``validate_records(require_outcomes=False)`` does).
    """
    typed, problems, per_row = _check_columns(
        columns, list(columns), n, require_outcomes=False, require_center=require_center, first_row=first_row
    )
    per_row.sort(key=lambda t: (t[0], t[1]))
    problems.extend(p for _, _, p in per_row)
    return typed, problems


def _check_columns(
    raw_columns: Mapping[str, np.ndarray],
    columns: list[str],
    n: int,
    *,
    require_outcomes: bool,
    require_center: bool,
    first_row: int,
    raw_ids: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], list[Problem], list[tuple[int, int, Problem]]]:
    """Every rule of the contract on plain numpy columns (the one implementation behind both validators).

    ``columns``: the column names as given, duplicates included (a duplicated column is a problem and is not in
    ``raw_columns``). ``raw_ids``: the ``patient_id`` values to show in problems (default: its raw column).
    Returns ``(typed columns, file-level problems, row problems as (position, order, problem))``;
    the callers sort the row problems (after adding the outcome rules, which need a frame).
    """
    problems: list[Problem] = []
    per_row: list[tuple[int, int, Problem]] = []  # (position, order, problem) sorted at the end

    # Unknown and duplicate columns.
    for col in columns:
        if col not in FIELDS:
            close = difflib.get_close_matches(col, list(FIELDS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(Problem(None, None, col, "", f"unknown field (not in the record contract){hint}"))
    if len(set(columns)) != len(columns):
        for col in sorted({c for c in columns if columns.count(c) > 1}):
            problems.append(Problem(None, None, col, "", "column appears more than once"))

    present = set(columns)
    wanted = _WANTED_WITH_OUTCOMES if require_outcomes or not present.isdisjoint(OUTCOME_FIELDS) else _WANTED

    def required(name: str) -> bool:
        spec = FIELDS[name]
        if name == "center_id":
            return require_center
        if spec.group == "outcome":
            return require_outcomes and spec.required
        return spec.required

    def value_required(name: str) -> bool:
        spec = FIELDS[name]
        if name == "center_id":
            return require_center
        if spec.group == "outcome":
            return require_outcomes and not spec.nullable
        return not spec.nullable

    for name in wanted:
        if name not in present and required(name):
            problems.append(Problem(None, None, name, "", "required field missing"))

    # Patient ids first: every row-level problem carries the id.
    if raw_ids is None:
        raw_ids = raw_columns.get("patient_id")
    ids_display = [_display(v) or None for v in raw_ids] if raw_ids is not None else [None] * n

    typed: dict[str, np.ndarray] = {}
    order = 0
    for name in wanted:
        spec = FIELDS[name]
        raw = raw_columns.get(name)
        if raw is None:
            typed[name] = _typed_empty(spec, n)
            continue
        if spec.kind in ("number", "integer"):
            vals, missing, checks = _parse_numeric(raw, spec)
        elif spec.kind == "enum":
            vals, missing, checks = _parse_enum(raw, spec)
        elif spec.kind == "boolean":
            vals, missing, checks = _parse_boolean(raw)
        elif spec.kind == "string":
            vals, missing, checks = _parse_string(raw, spec)
        else:
            vals, missing, checks = _parse_date(raw)
        if missing.any() and value_required(name):
            rule = "required value missing"
            if spec.allowed and "unknown" in spec.allowed:
                rule += "; use 'unknown' if not known"
            checks.append((missing, rule))
        empty = _typed_empty(spec, 1)[0]
        for mask, rule in checks:
            if not mask.any():
                continue
            vals = vals.copy()
            vals[mask] = empty
            for pos in np.flatnonzero(mask):
                per_row.append(
                    (int(pos), order, Problem(int(pos) + first_row, ids_display[pos], name, _display(raw[pos]), rule))
                )
                order += 1
        typed[name] = vals

    # Uniqueness of patient_id (every occurrence of a repeated id is reported, each naming the first).
    if raw_ids is not None and n > 1:
        first_pos: dict[str, int] = {}
        repeated: set[str] = set()
        for pos, pid in enumerate(typed["patient_id"]):
            if pid is not None:
                if pid in first_pos:
                    repeated.add(pid)
                else:
                    first_pos[pid] = pos
        if repeated:
            for pos, pid in enumerate(typed["patient_id"]):
                if pid not in repeated:
                    continue
                other = first_pos[pid]
                note = f" (first in row {other + first_row})" if other != pos else ""
                shown = ids_display[pos]
                problem = Problem(pos + first_row, shown, "patient_id", shown or "", f"duplicate patient_id{note}")
                per_row.append((pos, order, problem))
                order += 1

    for pos, fields_, value, rule in _consistency_problems(typed):
        per_row.append((pos, order, Problem(pos + first_row, ids_display[pos], fields_, value, rule)))
        order += 1
    return typed, problems, per_row


_WANTED: tuple[str, ...] = (*ID_FIELDS, *PREDICTOR_FIELDS)
_WANTED_WITH_OUTCOMES: tuple[str, ...] = (*_WANTED, *OUTCOME_FIELDS)


def _outside(x: Any, lo: float, hi: float) -> Any:
    """``x < lo or x > hi`` elementwise (False for a missing value: NaN compares False)."""
    return (x < lo) | (x > hi)


def _make_consistency_rules() -> list[tuple[tuple[str, ...], str, Callable[[Mapping[str, Any]], Any]]]:
    """The contract's cross-field rules as ``(fields, rule, broken)``.

    ``broken(t)`` takes typed values — numpy columns (:func:`_consistency_problems`) or one record's plain values
    (:func:`fast_validate`) — and is true where the rule is broken. It is false where one of its fields is missing
    (NaN compares false, ``None`` equals no level), so a rule is only checked where all its fields were
    individually valid: a bad value is reported once, by its own field rule, not again as an inconsistency.
    """
    lo, hi = AGE_AT_HSCT_RANGE_YEARS
    age = ("age_at_diagnosis_months", "months_diagnosis_to_hsct")
    rules: list[tuple[tuple[str, ...], str, Callable[[Mapping[str, Any]], Any]]] = [
        (
            age,
            f"age at HSCT (diagnosis age + months to HSCT) must be {lo:g}–{hi:g} years: {OUTSIDE_INTENDED_USE}",
            lambda t: _outside((t[age[0]] + t[age[1]]) / 12.0, lo, hi),
        )
    ]

    def hla_broken(d: str, a: int, b: int) -> Callable[[Mapping[str, Any]], Any]:
        return lambda t: (t["donor_type"] == d) & _outside(t["hla_mismatches"], a, b)

    def cr_broken(f: str) -> Callable[[Mapping[str, Any]], Any]:
        return lambda t: (t["disease_status_at_hsct"] == "CR") & (t[f] > 0)

    for donor_, (lo_m, hi_m) in HLA_MISMATCH_RANGE.items():
        want = f"{lo_m}" if lo_m == hi_m else f"{lo_m}–{hi_m}"
        rules.append(
            (
                ("donor_type", "hla_mismatches"),
                f"donor_type {donor_} requires hla_mismatches {want}",
                hla_broken(donor_, lo_m, hi_m),
            )
        )
    rules.append(
        (
            ("donor_type", "graft_source"),
            "donor_type cord_blood if and only if graft_source cord_blood",
            lambda t: (
                (t["donor_type"] != None)  # noqa: E711 (elementwise on object columns)
                & (t["graft_source"] != None)  # noqa: E711
                & ((t["donor_type"] == "cord_blood") != (t["graft_source"] == "cord_blood"))
            ),
        )
    )
    rules.append(
        (
            ("disease_phase", "prior_auto_hsct"),
            "disease_phase upfront_consolidation requires prior_auto_hsct ≤ 1",
            lambda t: (t["disease_phase"] == "upfront_consolidation") & (t["prior_auto_hsct"] > 1),
        )
    )
    for f in ("bone_marrow_tumor_percent_at_hsct", "curie_score_at_hsct"):
        rules.append(
            (
                ("disease_status_at_hsct", f),
                f"disease_status_at_hsct CR requires {f} missing or 0",
                cr_broken(f),
            )
        )
    return rules


#: The cross-field rules of the contract (see :func:`_make_consistency_rules`).
CONSISTENCY_RULES = _make_consistency_rules()


def _consistency_problems(t: Mapping[str, np.ndarray]) -> list[tuple[int, str, str, str]]:
    """Cross-field rules of the contract on the typed columns; each ``(position, fields, values, rule)``."""
    out: list[tuple[int, str, str, str]] = []
    with np.errstate(invalid="ignore"):
        for fields_, rule, broken in CONSISTENCY_RULES:
            for pos in np.flatnonzero(broken(t)):
                values = ", ".join(f"{f}={display_value(t[f][pos])}" for f in fields_)
                out.append((int(pos), ",".join(fields_), values, rule))
    return out


# --------------------------------------------------------------------------------------------------------------
# The fast path for a few JSON objects (the HTTP service's one-patient requests).
# --------------------------------------------------------------------------------------------------------------

_DEFER = object()  # "not decided here": the value needs the full column validator


def _scalar_parser(spec: FieldSpec) -> Callable[[Any], Any]:
    """One raw JSON value → its typed value (as :func:`_check_columns` types it), or :data:`_DEFER`.

    Built from the field's :class:`FieldSpec` — the same table the column parsers read — and deliberately narrow:
    it accepts only the plain spellings of valid values (a JSON number or numeric text in range, an enum level as
    listed, ...) and defers everything else (missing tokens, other case, booleans as numbers, any broken rule) to
    the column validator, which decides and words the problem. A value accepted here is one the column validator
    accepts with the same typed value; ``tests/features/test_fast_record.py`` checks this on generated records.
    """
    # prediction records: center_id is optional (nullable in the table), outcome fields never reach this path
    if_missing = (_NAN if _is_float_kind(spec) else None) if spec.nullable else _DEFER

    if spec.kind in ("number", "integer"):
        lo = -np.inf if spec.minimum is None else spec.minimum
        hi = np.inf if spec.maximum is None else spec.maximum
        whole, step = spec.kind == "integer", spec.multiple_of

        def parse(v: Any) -> Any:
            c = v.__class__
            if c is float or c is int or c is str:
                try:
                    x = float(v)
                except (ValueError, OverflowError):
                    return _DEFER
            else:
                return if_missing if v is None else _DEFER
            if x != x:  # NaN: "nan" text or a float NaN
                return if_missing
            if not lo <= x <= hi or (whole and x != math.floor(x)) or (step and x % step != 0):
                return _DEFER
            return x

    elif spec.kind == "enum":
        table = {**{v: v for v in (spec.allowed or ())}, **spec.lookup}

        def parse(v: Any) -> Any:
            if v.__class__ is str:
                c = table.get(v)
                return _DEFER if c is None else c
            return if_missing if v is None else _DEFER

    elif spec.kind == "boolean":

        def parse(v: Any) -> Any:
            if v.__class__ in (bool, str, int, float):
                c = _BOOL_TABLE.get(v)
                return _DEFER if c is None else c
            return if_missing if v is None else _DEFER

    elif spec.kind == "string":
        match = re.compile(spec.pattern).fullmatch if spec.pattern else None

        def parse(v: Any) -> Any:
            if v.__class__ is str:
                t = v.strip()
                if t.lower() in MISSING_TOKENS:
                    return if_missing
                return _DEFER if match is not None and match(t) is None else t
            return if_missing if v is None else _DEFER

    else:  # dates are outcome fields: never on the fast path

        def parse(v: Any) -> Any:
            return _DEFER

    return parse


def _is_float_kind(spec: FieldSpec) -> bool:
    """Typed as float64 (numbers, integers and booleans) rather than object (enums, strings)."""
    return spec.kind in ("number", "integer", "boolean")


#: Per field of a prediction record (identification + predictors): (name, scalar parser, typed value when the key
#: is absent — _DEFER for a required field —, float column?).
_FAST_FIELDS: list[tuple[str, Callable[[Any], Any], Any, bool]] = [
    (
        name,
        _scalar_parser(spec),
        _DEFER if spec.required else (_NAN if _is_float_kind(spec) else None),
        _is_float_kind(spec),
    )
    for name, spec in ((n, FIELDS[n]) for n in _WANTED)
]
_KNOWN_PREDICTION_FIELDS = frozenset(_WANTED)


def fast_validate(records: Sequence[Any], *, unique_ids: bool = True) -> dict[str, np.ndarray] | None:
    """Typed columns of a few valid JSON records without any DataFrame, or ``None`` to defer.

    The HTTP service's fast path for small requests: one pass of plain Python over each record's fields, with
    per-field parsers generated from :data:`FIELDS` (:func:`_scalar_parser`) and the contract's
    :data:`CONSISTENCY_RULES`. When every record is valid it returns exactly what :func:`validate_columns` would
    (same columns, order, dtypes and values, no problem); when anything is not plainly valid — a broken rule, an
    unknown or outcome field, a missing-value token, a non-object — it returns ``None``, and the caller runs
    :func:`validate_columns`, which finds and words every problem. The fast path therefore never changes an
    answer or an error; it only skips the column machinery (about 1 ms of numpy calls on length-1 arrays) for
    the requests that need none of it. ``unique_ids=False`` skips the patient_id uniqueness rule (the service's
    micro-batcher, whose batches mix requests, applies it per request).
    """
    n = len(records)
    if n == 0:
        return None
    rows: list[dict[str, Any]] = []
    for rec in records:
        if not isinstance(rec, Mapping) or not _KNOWN_PREDICTION_FIELDS.issuperset(rec):
            return None
        row: dict[str, Any] = {}
        for name, parse, absent, _ in _FAST_FIELDS:
            v = rec.get(name, _DEFER)
            v = absent if v is _DEFER else parse(v)
            if v is _DEFER:
                return None
            row[name] = v
        for _, _, broken in CONSISTENCY_RULES:
            if broken(row):
                return None
        rows.append(row)
    if unique_ids and n > 1 and len({r["patient_id"] for r in rows}) < n:
        return None
    if n == 1:
        (row,) = rows
        return {
            name: np.array([row[name]], dtype=float if is_float else object) for name, _, _, is_float in _FAST_FIELDS
        }
    return {
        name: np.array([r[name] for r in rows], dtype=float if is_float else object)
        for name, _, _, is_float in _FAST_FIELDS
    }


def display_value(v: Any) -> str:
    """A stored value as error messages show it: whole numbers without ``.0``, dates as ISO days, long text cut."""
    return _display(_plain(v))


def _plain(v: Any) -> Any:
    if isinstance(v, float) and np.isfinite(v) and v == int(v):
        return int(v)
    if isinstance(v, np.datetime64 | pd.Timestamp):
        return str(pd.Timestamp(v).date()) if not pd.isna(v) else None
    return v


def validate_record(
    obj: Mapping[str, Any],
    index: int = 0,
    *,
    require_outcomes: bool = False,
    require_center: bool = False,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Validate one JSON object (the HTTP service: one patient of a request) → ``(typed one-row frame, problems)``.

    Problems carry ``row=index`` (the patient's index in the request). Defaults suit prediction requests: outcomes
    not required, ``center_id`` optional.
    """
    if not isinstance(obj, Mapping):
        return _empty_typed(), [Problem(index, None, "(record)", _display(obj), "a patient must be a JSON object")]
    frame = pd.DataFrame({k: pd.Series([v], dtype=object) for k, v in obj.items()})
    if frame.empty and not obj:
        frame = pd.DataFrame(index=[0])
    return validate_records(frame, require_outcomes=require_outcomes, require_center=require_center, first_row=index)


def records_frame(objs: list[Any]) -> tuple[pd.DataFrame, list[Problem]]:
    """Build a raw frame from a JSON list of objects (values kept as given); non-objects are problems (row=index)."""
    problems = [
        Problem(i, None, "(record)", _display(o), "a patient must be a JSON object")
        for i, o in enumerate(objs)
        if not isinstance(o, Mapping)
    ]
    rows = [o if isinstance(o, Mapping) else {} for o in objs]
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    frame = pd.DataFrame(
        {k: pd.Series([r.get(k) for r in rows], dtype=object) for k in keys}, index=pd.RangeIndex(len(rows))
    )
    return frame, problems


def _empty_typed() -> pd.DataFrame:
    return validate_records(pd.DataFrame(columns=FIELDS), require_outcomes=False, require_center=False)[0].iloc[:0]


def example_record(with_outcomes: bool = True) -> dict[str, Any]:
    """A valid record (JSON-ready values): documentation, MLflow input examples, OpenAPI examples and tests."""
    rec: dict[str, Any] = {
        "patient_id": "EX-0001",
        "center_id": "C01",
        "sex": "female",
        "age_at_diagnosis_months": 38,
        "months_diagnosis_to_hsct": 20,
        "inrg_stage": "M",
        "mycn_status": "amplified",
        "chr11q_aberration": "absent",
        "alk_status": "wild_type",
        "inpc_histology": "unfavorable",
        "ldh_at_diagnosis_u_l": 850,
        "metastatic_sites_at_diagnosis": 3,
        "bone_marrow_metastasis_at_diagnosis": True,
        "disease_phase": "first_relapse",
        "prior_auto_hsct": 1,
        "disease_status_at_hsct": "PR",
        "curie_score_at_hsct": 4,
        "bone_marrow_tumor_percent_at_hsct": 5.0,
        "mrd_at_hsct": "positive",
        "lansky_score": 90,
        "hct_ci": 1,
        "donor_type": "haploidentical",
        "hla_mismatches": 4,
        "kir_ligand_mismatch": "yes",
        "graft_source": "peripheral_blood",
        "graft_manipulation": "alpha_beta_t_depleted",
        "cd34_dose_1e6_per_kg": 12.5,
        "conditioning_intensity": "reduced_intensity",
        "serotherapy": "atg",
        "gvhd_prophylaxis": "t_cell_depletion_only",
        "recipient_cmv": "positive",
        "donor_cmv": "negative",
        "donor_age_years": 38,
        "donor_sex": "male",
        "planned_post_hsct_immunotherapy": "anti_gd2",
        "hsct_year": 2019,
    }
    if with_outcomes:
        rec.update(
            {
                "date_hsct": "2019-03-14",
                "date_relapse": "2019-11-02",
                "date_death": "2020-06-20",
                "cause_of_death": "relapse_progression",
                "date_last_followup": "2020-06-20",
            }
        )
    return rec
