"""``nbrisk report``: the tumour-board report for one patient, or the model report for a registered version.

* ``nbrisk report PATIENT.json [--model URI] --out FILE.pdf|FILE.html`` — one patient (a JSON record, the
  ``{"patient": record}`` body of ``POST /v1/report`` or a ``POST /v1/risk`` body with one patient),
  scored by ``--model`` (default ``models:/nbrisk@champion``).
* ``nbrisk report --model VERSION --out FILE.html|FILE.pdf`` — the model report (TRIPOD+AI items) of a registered
  version (a number, ``models:/nbrisk/3`` or ``models:/nbrisk@candidate``).

User mistakes (unreadable JSON, an invalid record, an unknown model) raise :class:`nbrisk.core.NbriskError`: the
CLI prints one line and exits with a non-zero code. Patient values are never printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from nbrisk.core import SYNTHETIC_LABEL, NbriskError

_FORMATS = {".pdf": "pdf", ".html": "html", ".htm": "html"}


def _format_of(out: Path) -> str:
    fmt = _FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise NbriskError(f"--out must end in .pdf or .html (got {Path(out).name!r})")
    return fmt


def read_patient(path: Path) -> dict[str, Any]:
    """One patient record from a JSON file: a record object, ``{"patient": record}`` (the ``/v1/report`` body), a
    ``/v1/risk`` body with one patient, or a one-element list."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NbriskError(f"patient file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NbriskError(f"cannot read patient file {path}: {exc}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NbriskError(f"{path.name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    from nbrisk.reports.record import one_patient

    return one_patient(obj, path.name)


def _write(out: Path, data: bytes) -> None:
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    except OSError as exc:
        raise NbriskError(f"cannot write {out}: {exc}") from None


def report(patient: Path | None, out: Path, model: str | None) -> Path:
    """Write the patient report (``patient`` given) or the model report (``patient`` None, ``model`` given)."""
    from nbrisk.reports import sources
    from nbrisk.reports.render import render_model_report, render_patient_report

    fmt = _format_of(out)
    if patient is None:
        if model is None:
            raise NbriskError("give PATIENT.json for a patient report, or --model VERSION for the model report")
        src = sources.model_sources(model)
        _write(out, render_model_report(src, fmt))
        label = f"  [{SYNTHETIC_LABEL}]" if getattr(src.risk_model, "synthetic", False) else ""
        typer.echo(f"model report for {src.resolved.name} version {src.resolved.version} written to {out}{label}")
        return Path(out)
    from nbrisk.reports.record import validate_patient

    record = read_patient(patient)  # read (and refuse bad JSON or an invalid record) before loading a model
    validate_patient(record)
    risk_model, info = sources.load_model(model)
    _write(out, render_patient_report(risk_model, record, fmt, model_info=info))
    label = f"  [{SYNTHETIC_LABEL}]" if info.get("synthetic_training_data") else ""
    typer.echo(f"report written to {out} (model {info['name']} version {info['version']}){label}")
    return Path(out)
