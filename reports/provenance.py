"""Where a report's numbers come from: the model's identity, its training data and validation, the code, the report.

Read from the model's :class:`~nbrisk.core.TrainingSummary` (typed; an older untyped model is refused with a
retrain message) and the serving model's identity block (as ``/v1/risk`` reports it, plus the training run id when
the caller knows it). The report id is a hash of the record, the model and the time, so the same report printed
twice carries the same id and a different patient or model never does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nbrisk.core import TrainingSummary, ValidationMetric


@dataclass(frozen=True)
class Provenance:
    """Model identity, training data, validation, code and report identity of one report."""

    model_name: str
    model_version: str
    model_alias: str
    model_family: str
    run_id: str
    trained_at: str
    code_version: str
    synthetic: bool
    n: int
    events: dict[str, int]
    fingerprint: str
    hsct_years: tuple[int, int] | None
    validation_scheme: str
    metrics: tuple[ValidationMetric, ...]
    interval_method: str
    n_interval_bootstrap: int
    report_id: str
    generated_at: str


def code_version() -> str:
    """The installed nbrisk version (the code that rendered the report)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"nbrisk {version('nbrisk')}"
    except PackageNotFoundError:
        return "nbrisk (not installed as a package)"


def report_id(record: Mapping[str, Any], model_name: str, model_version: str, generated_at: str) -> str:
    """A short, reproducible id of one report: SHA-256 of the record, the model identity and the time."""
    blob = json.dumps({"r": record, "m": [model_name, model_version], "t": generated_at}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def provenance(
    s: TrainingSummary, model_info: Mapping[str, Any], record: Mapping[str, Any], generated_at: str
) -> Provenance:
    """Provenance of a report on ``record`` by the model with training summary ``s`` and identity ``model_info``."""
    years = s.numeric_ranges.get("hsct_year")
    name = str(model_info.get("name") or s.model_name)
    version = str(model_info.get("version") or "unregistered")
    return Provenance(
        model_name=name,
        model_version=version,
        model_alias=str(model_info.get("alias") or ""),
        model_family=s.family,
        run_id=str(model_info.get("run_id") or "not recorded"),
        trained_at=str(model_info.get("trained_at") or s.trained_at),
        code_version=code_version(),
        synthetic=bool(s.synthetic or model_info.get("synthetic_training_data")),
        n=s.n,
        events=dict(s.events),
        fingerprint=(s.data_fingerprint or "")[:16],
        hsct_years=None if years is None else (int(years[0]), int(years[1])),
        validation_scheme=s.validation_scheme,
        metrics=s.validation_metrics,
        interval_method=s.interval_method,
        n_interval_bootstrap=s.n_interval_bootstrap,
        report_id=report_id(record, name, version, generated_at),
        generated_at=generated_at,
    )
