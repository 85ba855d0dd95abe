"""The ``POST /v1/risk`` answer in HL7 FHIR R4: a ``Bundle`` (type ``collection``) of ``RiskAssessment`` resources.

What a hospital system gets with ``Accept: application/fhir+json`` — the same numbers as the JSON answer, in the
resource FHIR defines for "an assessment of the likely outcome(s) for a patient" (FHIR R4, RiskAssessment,
http://hl7.org/fhir/R4/riskassessment.html). One resource per patient:

``status``
    ``final``.
``subject``
    a logical reference to the patient by the request's ``patient_id``: ``{"type": "Patient", "identifier":
    {"system": PATIENT_ID_SYSTEM, "value": <patient_id>}}`` (the id is the caller's pseudonym; the receiving system
    maps it to its own Patient resource).
``method``
    the model: ``coding`` ``{"system": MODEL_SYSTEM, "code": "<name>/<version>"}`` and a text naming name, version,
    registry alias and training time.
``occurrenceDateTime``
    when the prediction was made (UTC).
``prediction``
    one element per outcome × horizon, in the order relapse, TRM, EFS, OS and, within each, the requested horizons:
    ``outcome.text`` says what the probability is of (the cumulative incidence of relapse/progression or of
    transplant-related mortality by the horizon, or the probability of being alive without an event / alive at
    the horizon), ``probabilityDecimal`` is the estimate of the JSON answer (same decimals) and ``whenRange`` is
    0 to the horizon in months after HSCT (UCUM ``mo``). There is no calendar date of HSCT in a request, so
    ``whenPeriod`` (dates) cannot be used.
``prediction.extension`` — the 95% interval (:data:`INTERVAL_EXTENSION`)
    FHIR R4 has no element for an interval around ``probabilityDecimal`` (``probabilityRange`` replaces the
    estimate instead of qualifying it), so the pointwise 95% interval of the JSON answer is a complex extension
    with three parts: ``lower`` and ``upper`` (``valueDecimal``, the JSON ``lower``/``upper``) and ``level``
    (``valueDecimal`` 0.95). Absent when the model gives no interval.
``note``
    ``SYNTHETIC — not for clinical use`` first when the model was trained on synthetic data; then the risk group
    (tertiles of the predicted 2-year EFS in the training cohort) and any warning of the JSON answer.
``meta.security``
    ``HTEST`` ("test health data", HL7 v3 ActReason) on the Bundle and on every resource when the model was trained
    on synthetic data, so a receiving system can keep the estimates out of a clinical record.

Validated in the tests with ``fhir.resources`` (its R4B models: R4B changed nothing in Bundle or RiskAssessment,
so what validates as R4B is valid R4).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from nbrisk.core import SYNTHETIC_LABEL

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"
#: Canonical identifier of the interval extension (a name, not a location: nothing is ever fetched from it).
INTERVAL_EXTENSION = "urn:nbrisk:fhir:StructureDefinition:prediction-interval"
PATIENT_ID_SYSTEM = "urn:nbrisk:patient_id"
MODEL_SYSTEM = "urn:nbrisk:model"
UCUM = "http://unitsofmeasure.org"
SYNTHETIC_SECURITY = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "code": "HTEST",
    "display": "test health data",
}

#: outcome key of the JSON answer → FHIR ``prediction.outcome.text`` (what the probability is of).
OUTCOMES = {
    "relapse": "Relapse or progression by the horizon (cumulative incidence; transplant-related death competing)",
    "trm": "Transplant-related mortality by the horizon (cumulative incidence; relapse competing)",
    "efs": "Event-free survival: alive without relapse or progression at the horizon",
    "os": "Overall survival: alive at the horizon",
}


def wants_fhir(accept: str | None) -> bool:
    """True when the ``Accept`` header asks for ``application/fhir+json`` (and does not refuse it with q=0)."""
    if not accept or "fhir" not in accept:
        return False
    for part in accept.split(","):
        media, _, params = part.partition(";")
        if media.strip().lower() == FHIR_JSON:
            q = [p.split("=", 1)[1].strip() for p in params.split(";") if p.strip().lower().startswith("q=")]
            try:
                return not q or float(q[0]) > 0
            except ValueError:
                return True
    return False


def _months(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "month", "system": UCUM, "code": "mo"}


def _method(model: dict[str, Any]) -> dict[str, Any]:
    name, version = model.get("name") or "nbrisk", model.get("version")
    text = f"nbrisk model {name} version {version if version is not None else 'unknown'}"
    if model.get("alias"):
        text += f" (registry alias {model['alias']})"
    if model.get("trained_at"):
        text += f", trained {model['trained_at']}"
    return {
        "coding": [{"system": MODEL_SYSTEM, "code": f"{name}/{version if version is not None else 'unknown'}"}],
        "text": text,
    }


def risk_assessment(result: dict[str, Any], model: dict[str, Any], when: str) -> dict[str, Any]:
    """One patient's ``results`` entry of the JSON answer → a FHIR R4 ``RiskAssessment`` (see the module)."""
    synthetic = bool(model.get("synthetic_training_data"))
    predictions = []
    for key, text in OUTCOMES.items():
        band = result[key]
        for j, horizon in enumerate(result["horizons_months"]):
            p: dict[str, Any] = {
                "outcome": {"text": text},
                "probabilityDecimal": band["estimate"][j],
                "whenRange": {"low": _months(0), "high": _months(horizon)},
            }
            if band.get("lower") is not None and band.get("upper") is not None:
                p["extension"] = [
                    {
                        "url": INTERVAL_EXTENSION,
                        "extension": [
                            {"url": "lower", "valueDecimal": band["lower"][j]},
                            {"url": "upper", "valueDecimal": band["upper"][j]},
                            {"url": "level", "valueDecimal": 0.95},
                        ],
                    }
                ]
            predictions.append(p)
    notes = [SYNTHETIC_LABEL] if synthetic else []
    notes.append(
        f"Risk group: {result['risk_group']} (tertiles of the predicted 2-year event-free survival in the training "
        "cohort)"
    )
    if model.get("intervals"):
        notes.append(f"Intervals: {model['intervals']}")
    notes += [str(w) for w in result.get("warnings", [])]
    ra: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": str(uuid.uuid4()),
        "status": "final",
        "code": {"text": "Relapse / transplant-related mortality risk after allogeneic HSCT (stage M neuroblastoma)"},
        "subject": {"type": "Patient", "identifier": {"system": PATIENT_ID_SYSTEM, "value": result["patient_id"]}},
        "occurrenceDateTime": when,
        "method": _method(model),
        "prediction": predictions,
        "note": [{"text": t} for t in notes],
    }
    if synthetic:
        ra["meta"] = {"security": [SYNTHETIC_SECURITY]}
    return ra


def risk_bundle(answer: dict[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
    """The whole JSON answer of ``POST /v1/risk`` → a FHIR R4 ``Bundle`` of type ``collection``."""
    now = now or dt.datetime.now(dt.UTC)
    when = now.isoformat(timespec="seconds")
    model = answer["model"]
    entries = []
    for result in answer["results"]:
        ra = risk_assessment(result, model, when)
        entries.append({"fullUrl": f"urn:uuid:{ra['id']}", "resource": ra})
    meta: dict[str, Any] = {"lastUpdated": when}
    if model.get("synthetic_training_data"):
        meta["security"] = [SYNTHETIC_SECURITY]
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": meta,
        "type": "collection",
        "timestamp": when,
        "entry": entries,
    }
