"""One patient in, checked: the record forms the report accepts, validation with the record contract, display values.

The report takes exactly one patient, given as the record object itself, as the body of ``POST /v1/report``
(``{"patient": record}``) or as the body of ``POST /v1/risk`` with one patient (``{"patients": [record], ...}``),
so that ``docs/example_patient.json`` and ``docs/example_request.json`` both work with ``nbrisk report``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nbrisk.core import NbriskError

UNKNOWN = "unknown"
_NUMERIC_KINDS = ("number", "integer")


class PatientReportError(NbriskError):
    """The patient record cannot be reported on (invalid record). ``problems`` lists every problem found."""

    exit_code = 1

    def __init__(self, problems: Sequence[Any]):
        self.problems = list(problems)
        parts = [f"{getattr(p, 'field', '?')}: {getattr(p, 'rule', p)}" for p in self.problems]
        shown = "; ".join(parts[:8]) + (f"; … ({len(parts) - 8} more)" if len(parts) > 8 else "")
        super().__init__(f"invalid patient record ({len(parts)} problem(s)): {shown}")


def one_patient(obj: Any, source: str = "the input") -> dict[str, Any]:
    """The one patient record in ``obj``: a record object, ``{"patient": record}``, a ``/v1/risk`` body with one
    patient (``{"patients": [record], "horizons_months": ...}``) or a one-element list. Anything else is refused
    with one clear sentence (a wrapper is never validated as if it were the record)."""
    if isinstance(obj, Mapping) and set(obj) == {"patient"}:
        obj = obj["patient"]
    elif isinstance(obj, Mapping) and "patients" in obj and set(obj) <= {"patients", "horizons_months"}:
        obj = obj["patients"]
    if isinstance(obj, list):
        if len(obj) != 1:
            raise NbriskError(f"{source} holds {len(obj)} patients; the report is for one patient")
        obj = obj[0]
    if not isinstance(obj, Mapping):
        raise NbriskError(f"{source} must hold one patient record (a JSON object)")
    return dict(obj)


def validate_patient(record: Mapping[str, Any] | pd.DataFrame) -> pd.DataFrame:
    """Validate one patient record with the record contract → the typed one-row frame the model predicts from.

    Accepts a JSON-like mapping or a one-row DataFrame. Raises :class:`PatientReportError` listing every problem.
    """
    from nbrisk.features.record import validate_record

    if isinstance(record, pd.DataFrame):
        if len(record) != 1:
            raise PatientReportError([_problem("(record)", f"expected one patient, got {len(record)} rows")])
        record = {k: json_value(v) for k, v in record.iloc[0].to_dict().items()}
    if not isinstance(record, Mapping):
        raise PatientReportError([_problem("(record)", "a patient must be a JSON object")])
    typed, problems = validate_record(record)
    if problems:
        raise PatientReportError(problems)
    return typed.reset_index(drop=True)


def _problem(field_name: str, rule: str):
    from nbrisk.features.record import Problem

    return Problem(0, None, field_name, "", rule)


def json_value(v: Any) -> Any:
    """A typed-frame cell → the JSON value the record contract accepts (NaN/NaT → None, numpy → Python)."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return str(v.date())
    return v


def display_value(spec: Any, value: Any) -> str:
    """A record value as the report prints it (units, yes/no, enum words); ``"missing"`` for a missing value."""
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
