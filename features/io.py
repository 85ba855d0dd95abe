"""Reading cohort and prediction files into validated records (I/O at the edge; everything else takes DataFrames).

* :func:`read_table` — raw CSV (every column as text, so validation sees exactly what the file says) or Parquet.
* :func:`read_cohort` — a training cohort: validated records + derived outcomes + provenance (:class:`Cohort`).
* :func:`read_records` — prediction input: a CSV/Parquet/JSON file, a JSON object or list, or a DataFrame.

Every function raises :class:`~nbrisk.features.record.CohortValidationError` listing **every** problem of the
input, or :class:`~nbrisk.core.NbriskError` for a file that cannot be read at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nbrisk.core import NbriskError
from nbrisk.features.outcomes import derive_outcomes
from nbrisk.features.record import (
    ID_FIELDS,
    OUTCOME_FIELDS,
    PREDICTOR_FIELDS,
    CohortValidationError,
    Problem,
    records_frame,
    validate_records,
)

#: Patient-id prefix written by the synthetic cohort generator (:mod:`nbrisk.features.synthetic`).
SYNTHETIC_ID_PREFIX = "SYN-"
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
#: The problem of a file without a single data row.
NO_RECORDS = Problem(None, None, "(file)", "", "no patient records")


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise NbriskError(f"file not found: {path}")
    if not path.is_file():
        raise NbriskError(f"not a file: {path}")
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file by extension into a raw DataFrame (no validation).

    CSV is read with every column as ``str`` and no NA conversion (an empty cell is ``""``), so that the validator
    sees raw values: ``"12"`` is parsed there, ``"abc"`` reported there. A UTF-8 byte-order mark is accepted.
    """
    path = _check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NbriskError(f"cannot read {path}: {first}") from None
    raise NbriskError(f"unsupported file type {suffix or '(none)'!r} for {path}: use .csv or .parquet")


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a DataFrame as CSV or Parquet by extension (CSV without the index)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise NbriskError(f"unsupported output type {suffix or '(none)'!r} for {path}: use .csv or .parquet")
    if path.parent and not path.parent.exists():
        raise NbriskError(f"output folder does not exist: {path.parent}")
    if suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


def is_synthetic(patient_ids: pd.Series) -> bool:
    """True when any patient id carries the generator's ``SYN-`` prefix (the label must then be shown)."""
    ids = patient_ids.dropna().astype(str)
    return bool(ids.str.startswith(SYNTHETIC_ID_PREFIX).any())


@dataclass(frozen=True, eq=False)
class Cohort:
    """A validated training cohort.

    Attributes
    ----------
    records : typed DataFrame of the identification and predictor fields (see
        :func:`~nbrisk.features.record.validate_records` for the types), index 0..n-1.
    outcomes : :func:`~nbrisk.features.outcomes.derive_outcomes` frame, same index (``y = outcomes[["event",
        "time"]]``, time in days).
    source : the file path.
    fingerprint : SHA-256 of the file bytes (logged with every training run).
    synthetic : True when the generator wrote it (``SYN-`` ids): label everything built on it
        ``SYNTHETIC — not for clinical use``.
    """

    records: pd.DataFrame
    outcomes: pd.DataFrame
    source: str
    fingerprint: str
    synthetic: bool

    @property
    def n(self) -> int:
        return len(self.records)

    @property
    def y(self) -> pd.DataFrame:
        """The competing-risks target: columns ``event`` (Cause codes) and ``time`` (days)."""
        return self.outcomes[["event", "time"]]


def file_fingerprint(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_cohort(path: str | Path, *, require_center: bool = True) -> Cohort:
    """Read and validate a training cohort file (CSV or Parquet) with outcomes.

    Raises
    ------
    CohortValidationError : every problem of the file (exit code 1); nothing is dropped silently.
    NbriskError : the file is missing or unreadable.
    """
    raw = read_table(path)
    if len(raw) == 0:
        raise CohortValidationError([NO_RECORDS], source=str(path))
    typed, problems = validate_records(raw, require_outcomes=True, require_center=require_center)
    if problems:
        raise CohortValidationError(problems, source=str(path))
    typed = typed.reset_index(drop=True)
    outcomes = derive_outcomes(typed)
    records = typed[[c for c in [*ID_FIELDS, *PREDICTOR_FIELDS] if c in typed.columns]]
    return Cohort(
        records=records,
        outcomes=outcomes,
        source=str(path),
        fingerprint=file_fingerprint(path),
        synthetic=is_synthetic(records["patient_id"]),
    )


def _json_records(obj: Any) -> tuple[pd.DataFrame, list[Problem]]:
    """A JSON value → (raw frame, problems of non-object entries). Accepts one object, a list of objects or the
    service body ``{"patients": [...]}``."""
    if isinstance(obj, Mapping) and "patients" in obj:
        obj = obj["patients"]
        if not isinstance(obj, list):
            raise NbriskError('"patients" must be a list of patient objects')
    if isinstance(obj, Mapping):
        obj = [obj]
    if not isinstance(obj, list):
        raise NbriskError('JSON input must be a patient object, a list of patient objects or {"patients": [...]}')
    return records_frame(obj)


def read_json_records(path: str | Path) -> tuple[pd.DataFrame, list[Problem]]:
    """Read a JSON file of patients (object, list, or ``{"patients": [...]}``) → (raw frame, problems of entries
    that are not objects). Rows are 0-based list indices."""
    path = _check_file(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NbriskError(f"cannot read {path}: invalid JSON ({exc.args[0] if exc.args else exc})") from None
    return _json_records(obj)


def merge_problems(pre: list[Problem], found: list[Problem]) -> list[Problem]:
    """Problems of non-object entries first-class, without the noise of their empty stand-in rows ("required value
    missing" for every field), file-level problems first, then by row."""
    not_objects = {p.row for p in pre}
    merged = [*pre, *(p for p in found if p.row is None or p.row not in not_objects)]
    merged.sort(key=lambda p: -1 if p.row is None else p.row)
    return merged


def read_records(source: str | Path | Mapping | list | pd.DataFrame, *, require_center: bool = False) -> pd.DataFrame:
    """Read and validate prediction input → typed records (identification + predictor fields), index 0..n-1.

    ``source`` may be a CSV/Parquet/JSON file path, a JSON object (one patient), a list of objects, or a raw
    DataFrame. Outcome fields are not required (and are dropped when present, after validation). Rows in problems
    are 1-based data rows for CSV/Parquet and 0-based indices for JSON lists.

    Raises :class:`CohortValidationError` listing every problem.
    """
    label = None
    pre: list[Problem] = []
    first_row = 1
    if isinstance(source, pd.DataFrame):
        frame = source
    elif isinstance(source, Mapping | list):
        frame, pre = _json_records(source)
        first_row = 0
    else:
        path = _check_file(source)
        label = str(path)
        if path.suffix.lower() == ".json":
            frame, pre = read_json_records(path)
            first_row = 0
        else:
            frame = read_table(path)
    if len(frame) == 0 and not pre:
        raise NbriskError(f"no patient records in {label or 'the input'}")
    typed, problems = validate_records(
        frame, require_outcomes=False, require_center=require_center, first_row=first_row
    )
    problems = merge_problems(pre, problems)
    if problems:
        raise CohortValidationError(problems, source=label)
    keep = [c for c in typed.columns if c not in OUTCOME_FIELDS]
    return typed[keep].reset_index(drop=True)
