"""Render reports: summary → SVG plots → Jinja2 HTML → (WeasyPrint) PDF.

:func:`render_patient_report` is the one entry point for the tumour-board report, shared by ``nbrisk report`` and the
service's ``POST /v1/report``. The HTML is self-contained (CSS and SVG inline, no external fetches), so the same
document prints identically from a browser and from WeasyPrint.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import threading
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nbrisk.core import NbriskError, ValidationMetric
from nbrisk.reports import plots
from nbrisk.reports.summary import PatientSummary, build_patient_summary
from nbrisk.reports.whatif import FEW_TRAINING_PATIENTS, Interval

TEMPLATES = Path(__file__).parent / "templates"
#: Metrics shown in the patient report's provenance at 2 years (the full set is in the model report).
_PATIENT_METRICS = {
    "c_index": "C-index (discrimination)",
    "auc": "Time-dependent AUC",
    "ipa": "IPA (vs no-predictor model)",
    "ici": "ICI (calibration error)",
    "calibration_slope": "Calibration slope (1 = ideal)",
}


# ----------------------------------------------------------------------------------------------------------------
# formatting (Jinja filters)


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """A probability as a percentage with ``digits`` decimals (``"—"`` for ``None``/NaN)."""
    if x is None or not np.isfinite(x):
        return "—"
    return f"{100.0 * float(x):.{digits}f}%"


def fmt_ci(iv: Interval) -> str:
    """``(lower–upper)`` in percent, or ``"no interval"`` when the model gives none."""
    if iv.lower is None or iv.upper is None:
        return "(no interval)"
    return f"({fmt_pct(iv.lower)}–{fmt_pct(iv.upper)})"


def fmt_horizon(months: float) -> str:
    m = float(months)
    if m % 12 == 0:
        y = int(m // 12)
        return f"{y} year" + ("s" if y != 1 else "")
    return f"{m:g} months"


@lru_cache(maxsize=1)
def _env():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,  # a typo in a template fails loudly instead of printing nothing
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = fmt_pct
    env.filters["ci"] = fmt_ci
    env.filters["horizon"] = fmt_horizon
    env.filters["exp"] = math.exp
    return env


@lru_cache(maxsize=1)
def _css() -> str:
    return (TEMPLATES / "report.css").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------------------------------------
# patient report


def patient_figures(s: PatientSummary) -> dict[str, str | None]:
    """The patient report's figures as inline SVG strings."""
    label = s.synthetic_label
    cohort = (s.cohort_months, s.cohort_curves) if len(s.cohort_months) else None
    return {
        "stacked": plots.stacked_incidence_svg(s.plot_months, s.plot["relapse"], s.plot["trm"], label=label),
        "incidence": plots.incidence_svg(
            s.plot_months, {"relapse": s.plot["relapse"], "trm": s.plot["trm"]}, cohort, label=label
        ),
        "survival": plots.survival_svg(s.plot_months, {"os": s.plot["os"], "efs": s.plot["efs"]}, label=label),
        "icons": plots.icon_array_svg(s.icons.event_free, s.icons.relapse, s.icons.trm, label=label),
    }


def _patient_metrics(
    metrics: tuple[ValidationMetric, ...],
) -> list[tuple[str, ValidationMetric | None, ValidationMetric | None]]:
    """Rows (label, relapse metric, TRM metric) of the key validation metrics at 2 years."""
    at2 = {
        (m.outcome, m.name): m for m in metrics if m.horizon_months is not None and abs(m.horizon_months - 24) < 1e-9
    }
    rows = []
    for key, label in _PATIENT_METRICS.items():
        r, t = at2.get(("relapse", key)), at2.get(("trm", key))
        if r is not None or t is not None:
            rows.append((label, r, t))
    return rows


def _as_img(svg: str | None) -> str | None:
    """An inline ``<svg>`` as an ``<img>`` with a data URI (the same vector drawing).

    For the PDF only: WeasyPrint runs its HTML style cascade over every element of an *inline* SVG before drawing
    it, which doubles the cost of the figures; as an image it parses the SVG once. Browsers get the inline SVG.
    """
    if svg is None:
        return None
    return (
        '<img class="figure" alt="figure" src="data:image/svg+xml;base64,'
        + base64.b64encode(svg.encode("utf-8")).decode("ascii")
        + '">'
    )


def patient_html(s: PatientSummary, inline_svg: bool = True) -> str:
    """The tumour-board report as one self-contained HTML document (``inline_svg=False``: figures as SVG images,
    the faster form for WeasyPrint)."""
    figures = patient_figures(s)
    if not inline_svg:
        figures = {k: _as_img(v) for k, v in figures.items()}
    return (
        _env()
        .get_template("patient.html")
        .render(
            s=s,
            css=_css(),
            figures=figures,
            metrics=_patient_metrics(s.provenance.metrics),
            few=FEW_TRAINING_PATIENTS,
        )
    )


@lru_cache(maxsize=1)
def _font_config():
    from weasyprint.text.fonts import FontConfiguration

    return FontConfiguration()


_PDF_LOCK = threading.Lock()


def html_to_pdf(html: str) -> bytes:
    """Print self-contained HTML to A4 PDF with WeasyPrint (no network: everything is inline).

    The font configuration is built once per process (fontconfig look-ups are a large share of a small document's
    render time); WeasyPrint does not promise thread safety, so service threads print one document at a time.
    """
    import weasyprint

    with _PDF_LOCK:
        return weasyprint.HTML(string=html, base_url=str(TEMPLATES)).write_pdf(font_config=_font_config())


def warm_up() -> None:
    """Import the renderers and build the font configuration once (the first PDF of a process is several seconds
    slower than the next ones). Call it when a server starts; it renders a tiny document and discards it."""
    _env()
    _css()
    html_to_pdf("<html><body><p>nbrisk</p></body></html>")
    plots.survival_svg(np.array([0.0, 1.0]), {"os": (np.array([1.0, 0.9]), None, None)})


def render_patient_report(
    risk_model,
    record: Mapping[str, Any] | pd.DataFrame,
    fmt: str = "pdf",
    model_info: Mapping[str, Any] | None = None,
    generated_at: dt.datetime | None = None,
) -> bytes:
    """Render the tumour-board report for one patient.

    Parameters
    ----------
    risk_model : the fitted :class:`~nbrisk.models.risk_model.RiskModel` (the serving model).
    record : one patient in the record contract (JSON-like mapping or one-row DataFrame). Validated here; an invalid
        record raises :class:`~nbrisk.reports.summary.PatientReportError` (an ``NbriskError`` with ``.problems``).
    fmt : ``"pdf"`` (A4, 1–2 pages) or ``"html"`` (UTF-8, self-contained).
    model_info : ``{"name", "version", "alias", "trained_at", "synthetic_training_data"}`` as in ``/v1/risk``.
    generated_at : timestamp printed on the report (default now, UTC).

    Returns
    -------
    The document as bytes. Every number comes from ``risk_model.predict`` on the validated record — the path of
    ``POST /v1/risk`` — so the report and the API agree.
    """
    fmt = str(fmt).lower()
    if fmt not in ("pdf", "html"):
        raise NbriskError(f"unknown report format {fmt!r}: use pdf or html")
    summary = build_patient_summary(risk_model, record, model_info=model_info, generated_at=generated_at)
    if fmt == "html":
        return patient_html(summary).encode("utf-8")
    return html_to_pdf(patient_html(summary, inline_svg=False))


# ----------------------------------------------------------------------------------------------------------------
# model report


def model_figures(m) -> dict[str, Any]:
    """Calibration (both causes in one panel) and one decision curve per cause, as inline SVG."""
    from nbrisk.reports.model_summary import CAUSES

    labels = dict(CAUSES)
    figs: dict[str, Any] = {"calibration": None, "decision": []}
    if m.calibration:
        groups = [
            (
                labels.get(p.cause, p.cause),
                np.asarray(p.predicted),
                np.asarray(p.observed),
                None if p.lower is None else np.asarray(p.lower),
                None if p.upper is None else np.asarray(p.upper),
            )
            for p in m.calibration
        ]
        figs["calibration"] = plots.calibration_svg(
            groups, f"Calibration at {fmt_horizon(m.calibration[0].horizon_months)}"
        )
    for p in m.decision:
        figs["decision"].append(
            plots.decision_curve_svg(
                np.asarray(p.thresholds),
                [("Model", np.asarray(p.model))],
                np.asarray(p.treat_all),
                f"Net benefit: {labels.get(p.cause, p.cause)} at {fmt_horizon(p.horizon_months)}",
            )
        )
    return figs


def model_html(m, inline_svg: bool = True) -> str:
    """The model report (TRIPOD+AI items) as one self-contained HTML document."""
    from nbrisk.reports.model_summary import CAUSES, PERFORMANCE_METRICS, PRIMARY_HORIZON_MONTHS

    figures = model_figures(m)
    if not inline_svg:
        figures = {
            "calibration": _as_img(figures["calibration"]),
            "decision": [_as_img(f) for f in figures["decision"]],
        }
    return (
        _env()
        .get_template("model.html")
        .render(
            m=m,
            css=_css(),
            figures=figures,
            causes=CAUSES,
            metric_labels=PERFORMANCE_METRICS,
            primary=PRIMARY_HORIZON_MONTHS,
        )
    )


def render_model_report(sources, fmt: str = "html", generated_at: dt.datetime | None = None) -> bytes:
    """Render the model report from gathered :class:`~nbrisk.reports.sources.ModelSources` (HTML or PDF bytes)."""
    from nbrisk.reports.model_summary import build_model_summary

    fmt = str(fmt).lower()
    if fmt not in ("pdf", "html"):
        raise NbriskError(f"unknown report format {fmt!r}: use html or pdf")
    m = build_model_summary(sources, generated_at=generated_at)
    return model_html(m).encode("utf-8") if fmt == "html" else html_to_pdf(model_html(m, inline_svg=False))
