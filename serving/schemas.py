"""The HTTP contract of the risk service: request parsing, error shapes and the documented JSON schemas.

Framework-free (no BentoML, no FastAPI): :class:`nbrisk.serving.predictor.Predictor` and the tests use it directly,
and :mod:`nbrisk.serving.service` only maps :class:`RequestError` to a status code.

Parsing is deliberately defensive because every byte of a request body is untrusted: malformed JSON, non-finite
numbers (``NaN``, ``Infinity``, ``1e400``), integers with thousands of digits, deeply nested arrays, objects where a
scalar belongs, or wrong types must all end as a 4xx answer naming the patient index and the field, never as a 5xx.
The record contract itself (vocabularies, ranges, consistency rules, ``docs/patient-record.md``) is
:func:`nbrisk.features.record.validate_records`, the same code that checks a cohort file; this module only makes
sure that what reaches it is a list of flat JSON objects of scalars.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from nbrisk.core import DEFAULT_HORIZONS_MONTHS, NbriskError

#: Largest number of patients in one ``POST /v1/risk`` (more → 413).
MAX_PATIENTS = 1000
#: Largest request body in bytes (more → 413). 1,000 complete records take about 1.3 MB of compact JSON; 8 MiB
#: leaves room for pretty-printed JSON while bounding the memory one request can take.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Allowed horizons (months after HSCT) and how many one request may ask for.
HORIZON_RANGE_MONTHS = (1.0, 120.0)
MAX_HORIZONS = 24
#: Report formats of ``POST /v1/report``.
REPORT_FORMATS = ("pdf", "html")
#: Longest text value (characters) passed on to the record validator; longer ones are refused here, so that a
#: megabyte string is never echoed, parsed or copied further.
MAX_TEXT_CHARS = 200
#: Most fields one patient object may have, and most distinct field names one request may use (the contract has
#: 41). Without a bound, a few MiB of JSON with thousands of distinct keys would become a huge sparse table.
MAX_FIELDS_PER_PATIENT = 64
MAX_DISTINCT_FIELDS = 128
#: Integers beyond this magnitude are refused before ``float()`` (which raises OverflowError past ~1e308); no field
#: of the contract comes near it.
MAX_ABS_NUMBER = 1e15
#: Longest field name looked at: no contract field comes near it, so a longer one is reported as unknown here (cut
#: to this length in the answer) without reaching the validator's did-you-mean search, which is quadratic in length.
MAX_FIELD_NAME_CHARS = 64

# A JSON \u escape of a UTF-16 surrogate (D800-DFFF). Python's json decodes an unpaired one into a str that cannot
# be encoded as UTF-8 (echoing it crashed the answer); UTF-8 input itself cannot carry one (the decoder refuses it).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_NOT_UNICODE = "not valid Unicode text: contains an unpaired UTF-16 surrogate (a \\uD800-\\uDFFF escape)"


@dataclass(frozen=True)
class ProblemDetail:
    """One problem of a request: which patient (0-based index in ``patients``; None for the request as a whole),
    which field (None when it is not about one field) and why. Never carries the offending value, so that error
    answers and logs cannot leak patient data."""

    patient_index: int | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"patient_index": self.patient_index, "field": self.field, "message": self.message}


class RequestError(NbriskError):
    """A request the service must refuse with a 4xx answer ``{"error": message, "detail": [...]}``; ``headers``
    are added to the answer (``Retry-After``, ...)."""

    status_code = 422

    def __init__(self, message: str, detail: Sequence[ProblemDetail] = (), status_code: int | None = None):
        super().__init__(message)
        self.detail: list[ProblemDetail] = list(detail)
        self.headers: dict[str, str] = {}
        if status_code is not None:
            self.status_code = status_code

    def body(self) -> dict[str, Any]:
        return {"error": str(self), "detail": [d.as_dict() for d in self.detail]}


class MalformedRequest(RequestError):
    """The body is not JSON, or not a JSON object of the documented shape (400)."""

    status_code = 400


class InvalidInput(RequestError):
    """The body is well-formed but a patient or a parameter breaks the contract (422)."""

    status_code = 422


class PayloadTooLarge(RequestError):
    """Too many patients or too large a body (413)."""

    status_code = 413


class UnsupportedMediaType(RequestError):
    """A body that is not uncompressed UTF-8 JSON by its headers (415)."""

    status_code = 415


#: Request media types read as JSON (a missing Content-Type is read as JSON too: ``curl --data-binary``).
JSON_MEDIA_TYPES = ("application/json",)


def check_body_headers(content_type: str | None, content_encoding: str | None) -> None:
    """Refuse (415) a body declared as anything but JSON in UTF-8, or compressed. Header values are never echoed."""
    if content_encoding is not None and content_encoding.strip().lower() not in ("", "identity"):
        raise UnsupportedMediaType(
            "unsupported Content-Encoding",
            [ProblemDetail(None, "Content-Encoding", "compressed bodies are not accepted; send plain JSON")],
        )
    if content_type is None:
        return
    media, _, params = content_type.partition(";")
    if media.strip().lower() not in JSON_MEDIA_TYPES:
        raise UnsupportedMediaType(
            "unsupported Content-Type",
            [ProblemDetail(None, "Content-Type", "send the body as 'Content-Type: application/json'")],
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(
                "unsupported charset",
                [ProblemDetail(None, "Content-Type", "the body must be UTF-8 (charset=utf-8)")],
            )


@dataclass(frozen=True)
class RiskRequest:
    """A parsed ``POST /v1/risk`` body: raw patient objects (not yet validated) and the horizons in months."""

    patients: list[dict[str, Any]]
    horizons_months: tuple[float, ...] = DEFAULT_HORIZONS_MONTHS
    problems: list[ProblemDetail] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# parsing


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN / Infinity / -Infinity by default; they are not JSON and not a valid value anywhere.
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(body: bytes) -> Any:
    """Decode a request body as strict JSON (UTF-8, finite numbers) → Python objects, or :class:`MalformedRequest`."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body larger than {MAX_BODY_BYTES} bytes")
    if not body.strip():
        raise MalformedRequest("empty request body; send a JSON object")
    try:
        obj = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise MalformedRequest("request body is not UTF-8 text") from None
    except RecursionError:
        raise MalformedRequest("request body is nested too deeply") from None
    except ValueError as exc:
        # json's message gives line/column only (never the content); int-digit-limit errors are ValueErrors too.
        msg = str(exc).splitlines()[0][:120] if str(exc) else "invalid JSON"
        raise MalformedRequest(f"request body is not valid JSON: {msg}") from None
    if _SURROGATE_ESCAPE.search(body):
        problems = _surrogate_problems(obj)
        if problems:
            raise InvalidInput("request text is not valid Unicode", problems[:20])
    return obj


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _surrogate_problems(obj: Any) -> list[ProblemDetail]:
    """Every field name or text value holding an unpaired surrogate, by patient index and (escaped) field name."""
    out: list[ProblemDetail] = []

    def scan(value: Any, index: int | None, field: str | None) -> None:
        if isinstance(value, str):
            if _has_surrogate(value):
                out.append(ProblemDetail(index, field, _NOT_UNICODE))
        elif isinstance(value, dict):
            for k, v in value.items():
                if _has_surrogate(k):
                    out.append(ProblemDetail(index, _safe_field_name(k), "field name is " + _NOT_UNICODE))
                else:
                    scan(v, index, field if field is not None else _safe_field_name(k))
        elif isinstance(value, list):
            for v in value:
                scan(v, index, field)

    if not isinstance(obj, dict):
        scan(obj, None, None)
        return out
    for k, v in obj.items():
        if _has_surrogate(k):
            out.append(ProblemDetail(None, _safe_field_name(k), "field name is " + _NOT_UNICODE))
        elif k == "patients" and isinstance(v, list):
            for i, p in enumerate(v):
                scan(p, i, None)
        elif k == "patient":
            scan(v, 0, None)
        else:
            scan(v, None, _safe_field_name(k))
    return out


def _check_scalar(value: Any) -> str | None:
    """Why ``value`` cannot be a field value of a record (None if it can). Values are never echoed."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_ABS_NUMBER else "number out of range"
    if isinstance(value, float):
        if not math.isfinite(value):  # pragma: no cover - parse_json_body already refuses non-finite numbers
            return "number must be finite"
        return None if abs(value) <= MAX_ABS_NUMBER else "number out of range"
    if isinstance(value, str):
        return None if len(value) <= MAX_TEXT_CHARS else f"text longer than {MAX_TEXT_CHARS} characters"
    if isinstance(value, Mapping):
        return "must be a single value, not an object"
    if isinstance(value, list):
        return "must be a single value, not an array"
    return "unsupported value type"  # pragma: no cover - json.loads yields nothing else


def check_patients(patients: Any, key: str = "patients") -> tuple[list[dict[str, Any]], list[ProblemDetail]]:
    """Shape-check the ``patients`` list: JSON objects of scalars; returns cleaned objects and shape problems.

    A patient that is not an object becomes ``{}`` plus a problem (the record validator then reports nothing more
    for it beyond what we add); a field holding an object, an array, an oversized number or an overlong text is
    removed from the object passed on and reported here instead.
    """
    if not isinstance(patients, list):
        raise MalformedRequest(
            f"'{key}' must be a JSON array of patient records",
            [ProblemDetail(None, key, "must be an array of objects")],
        )
    if len(patients) == 0:
        raise InvalidInput("no patients in the request", [ProblemDetail(None, key, "at least one patient needed")])
    if len(patients) > MAX_PATIENTS:
        raise PayloadTooLarge(
            f"too many patients: at most {MAX_PATIENTS} per request",
            [ProblemDetail(None, key, f"at most {MAX_PATIENTS} patients per request")],
        )
    cleaned: list[dict[str, Any]] = []
    problems: list[ProblemDetail] = []
    for i, p in enumerate(patients):
        if not isinstance(p, dict):
            problems.append(ProblemDetail(i, None, "a patient must be a JSON object of record fields"))
            cleaned.append({})
            continue
        if len(p) > MAX_FIELDS_PER_PATIENT:
            problems.append(ProblemDetail(i, None, f"more than {MAX_FIELDS_PER_PATIENT} fields"))
            cleaned.append({})
            continue
        ok: dict[str, Any] = {}
        for name, value in p.items():
            if len(name) > MAX_FIELD_NAME_CHARS:
                problems.append(ProblemDetail(i, _safe_field_name(name), "unknown field (not in the record contract)"))
                continue
            why = _check_scalar(value)
            if why is None and name == "patient_id" and not isinstance(value, str):
                why = "must be a JSON string"
            if why is not None:
                problems.append(ProblemDetail(i, _safe_field_name(name), why))
            else:
                ok[name] = value
        cleaned.append(ok)
    distinct = set().union(*cleaned)
    if len(distinct) > MAX_DISTINCT_FIELDS:
        raise InvalidInput(
            "too many distinct field names in the request",
            [ProblemDetail(None, key, f"at most {MAX_DISTINCT_FIELDS} distinct field names per request")],
        )
    return cleaned, problems


def _safe_field_name(name: str) -> str:
    """A client's field name fit to echo: at most 64 characters (an answer never grows with the input) and
    unpaired surrogates written as ``\\udXXX`` escapes (they cannot be encoded as UTF-8)."""
    if len(name) > MAX_FIELD_NAME_CHARS:
        name = name[: MAX_FIELD_NAME_CHARS - 3] + "..."
    if _has_surrogate(name):
        name = name.encode("utf-8", "backslashreplace").decode("utf-8")
    return name


def check_horizons(value: Any) -> tuple[float, ...]:
    """Validate ``horizons_months``: 1 to :data:`MAX_HORIZONS` distinct numbers, each 1–120 months."""
    if value is None:
        return tuple(float(h) for h in DEFAULT_HORIZONS_MONTHS)
    lo, hi = HORIZON_RANGE_MONTHS
    if not isinstance(value, list) or not value:
        raise InvalidInput(
            "invalid horizons_months", [ProblemDetail(None, "horizons_months", "must be a non-empty array of months")]
        )
    if len(value) > MAX_HORIZONS:
        raise InvalidInput(
            "invalid horizons_months", [ProblemDetail(None, "horizons_months", f"at most {MAX_HORIZONS} horizons")]
        )
    out: list[float] = []
    for h in value:
        if isinstance(h, bool) or not isinstance(h, int | float) or not (lo <= h <= hi):
            raise InvalidInput(
                "invalid horizons_months",
                [
                    ProblemDetail(
                        None, "horizons_months", f"each horizon must be a number of months from {lo:g} to {hi:g}"
                    )
                ],
            )
        out.append(float(h))
    if len(set(out)) != len(out):
        raise InvalidInput(
            "invalid horizons_months", [ProblemDetail(None, "horizons_months", "horizons must be distinct")]
        )
    return tuple(out)


def _top_level(obj: Any, allowed: set[str], required: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise MalformedRequest(
            "request body must be a JSON object", [ProblemDetail(None, None, f"expected an object with '{required}'")]
        )
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise InvalidInput(
            "unknown field in request",
            [ProblemDetail(None, _safe_field_name(k), "unknown field") for k in unknown[:20]],
        )
    if required not in obj:
        raise InvalidInput(f"missing '{required}'", [ProblemDetail(None, required, "required")])
    return obj


def parse_risk_request(body: bytes) -> RiskRequest:
    """``POST /v1/risk`` body → :class:`RiskRequest` (shape problems of patients are carried, not raised, so that
    they are reported together with the record validator's problems)."""
    obj = _top_level(parse_json_body(body), {"patients", "horizons_months"}, "patients")
    horizons = check_horizons(obj.get("horizons_months"))
    patients, problems = check_patients(obj["patients"])
    return RiskRequest(patients, horizons, problems)


def parse_report_request(body: bytes) -> RiskRequest:
    """``POST /v1/report`` body ``{"patient": record}`` → a one-patient :class:`RiskRequest`."""
    obj = _top_level(parse_json_body(body), {"patient"}, "patient")
    patients, problems = check_patients([obj["patient"]], key="patient")
    return RiskRequest(patients, tuple(float(h) for h in DEFAULT_HORIZONS_MONTHS), problems)


def check_report_format(value: str | None) -> str:
    fmt = (value or "pdf").lower()
    if fmt not in REPORT_FORMATS:
        raise InvalidInput("invalid format", [ProblemDetail(None, "format", "must be 'pdf' or 'html'")])
    return fmt


# ---------------------------------------------------------------------------------------------------------------
# documented schemas (OpenAPI at /docs.json). Answers are built as plain dicts for speed; these models describe them.


class ErrorDetail(BaseModel):
    patient_index: int | None = Field(description="0-based index of the patient in the request; null = whole request")
    field: str | None = Field(description="record field or request parameter concerned; null if none")
    message: str = Field(description="the rule that was broken")


class ErrorResponse(BaseModel):
    error: str
    detail: list[ErrorDetail] = []


class ModelInfo(BaseModel):
    name: str
    version: str | None
    alias: str | None
    trained_at: str | None
    synthetic_training_data: bool
    label: str | None = Field(None, description="'SYNTHETIC — not for clinical use' when trained on synthetic data")
    run_id: str | None = Field(None, description="the MLflow run that registered the served model version")
    intervals: str = Field(
        "",
        description="how the 95% intervals were computed (method, number of refits, measured coverage of the true "
        "risk), or that none is served",
    )


class BandOut(BaseModel):
    estimate: list[float]
    lower: list[float] | None = Field(description="95% pointwise lower bound; null when the model gives none")
    upper: list[float] | None


class PatientResult(BaseModel):
    patient_id: str
    horizons_months: list[float]
    relapse: BandOut = Field(description="cumulative incidence of relapse/progression (competing with TRM)")
    trm: BandOut = Field(description="cumulative incidence of transplant-related mortality")
    efs: BandOut = Field(description="event-free survival = 1 - relapse - trm")
    os: BandOut = Field(description="overall survival (illness-death model)")
    risk_group: str = Field(description="low | intermediate | high, by predicted 2-year EFS (training tertiles)")
    warnings: list[str]


class RiskResponse(BaseModel):
    model: ModelInfo
    results: list[PatientResult]


def record_json_schema() -> dict[str, Any]:
    """JSON schema (OpenAPI 3.0 dialect) of one patient record for prediction, generated from the contract
    (:data:`nbrisk.features.record.FIELDS`) so that the documentation cannot drift from the validator."""
    from nbrisk.features.record import FIELDS, example_record

    props: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in FIELDS.items():
        if spec.group == "outcome":
            continue  # outcomes are training data; a prediction request does not send them
        s: dict[str, Any]
        if spec.kind == "enum":
            s = {"type": "string", "enum": list(spec.allowed or ())}
        elif spec.kind in ("number", "integer"):
            s = {"type": "integer" if spec.kind == "integer" else "number"}
            if spec.minimum is not None:
                s["minimum"] = spec.minimum
            if spec.maximum is not None:
                s["maximum"] = spec.maximum
            if spec.multiple_of:
                s["multipleOf"] = spec.multiple_of
        elif spec.kind == "boolean":
            s = {"type": "boolean"}
        else:
            s = {"type": "string", "maxLength": 64}
            if spec.pattern:
                s["pattern"] = f"^{spec.pattern}$"
        if spec.nullable:
            s["nullable"] = True
        s["description"] = spec.label + (f" ({spec.unit})" if spec.unit else "")
        props[name] = s
        if spec.required and name != "center_id":
            required.append(name)
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
        "example": example_record(with_outcomes=False),
    }


def risk_request_schema() -> dict[str, Any]:
    lo, hi = HORIZON_RANGE_MONTHS
    return {
        "type": "object",
        "required": ["patients"],
        "additionalProperties": False,
        "properties": {
            "patients": {"type": "array", "minItems": 1, "maxItems": MAX_PATIENTS, "items": record_json_schema()},
            "horizons_months": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_HORIZONS,
                "uniqueItems": True,
                "items": {"type": "number", "minimum": lo, "maximum": hi},
                "description": "months after HSCT (default 12, 24, 36, 60)",
            },
        },
    }


def report_request_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["patient"],
        "additionalProperties": False,
        "properties": {"patient": record_json_schema()},
    }
