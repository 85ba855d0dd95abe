"""SVG figures for the reports: pure functions of numbers → an ``<svg>`` string (matplotlib, no pyplot state).

Each function takes plain arrays (already computed by :mod:`nbrisk.reports.summary`) and returns the SVG markup to
inline in the HTML; WeasyPrint draws the same SVG as vector graphics in the PDF. Text is kept as SVG ``<text>``
(``svg.fonttype = "none"``) so labels stay searchable and crisp in both formats, in DejaVu Sans, the font the
PDF renderer has.

Figures are built on :class:`matplotlib.figure.Figure` directly (never ``pyplot``), so rendering in the service's
worker threads shares no global figure state.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

# Colour-blind-safe (Okabe–Ito) and consistent across every report figure.
COLOURS = {
    "relapse": "#D55E00",
    "trm": "#0072B2",
    "event_free": "#009E73",
    "efs": "#009E73",
    "os": "#CC79A7",
    "model": "#0072B2",
    "reference": "#555555",
}
AXIS_LABEL_MONTHS = "Months after HSCT"
#: The one y-axis label of every patient-report curve (cumulative incidence and survival alike).
AXIS_LABEL_SHARE = "% of patients"

_RC: Any = {  # Any: matplotlib types rc_context's keys as a Literal of every rcParam
    "svg.fonttype": "none",  # keep text as text: searchable in the PDF, smaller SVG
    "font.family": "DejaVu Sans",
    "font.size": 7.5,
    "axes.titlesize": 8.5,
    "axes.labelsize": 7.5,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "nbrisk",  # deterministic element ids, so the same input gives the same SVG
}


#: rc_context swaps matplotlib's *global* settings; the service renders in worker threads, so one figure at a time.
_RC_LOCK = threading.Lock()
#: Fixed margins (figure fractions) of the patient report's two side-by-side panels.
_PANEL_MARGINS = {"left": 0.15, "right": 0.97, "top": 0.86, "bottom": 0.36}


def _to_svg(fig: Figure) -> str:
    """Serialise a figure to an inline ``<svg>`` element (no XML prolog, no date metadata)."""
    buf = io.StringIO()
    # No tight bbox: every figure of a kind keeps the same axes box, so side-by-side panels line up.
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    # A fixed width in pt would overflow narrow columns; let CSS scale it while keeping the aspect ratio.
    return re.sub(r'<svg([^>]*?) width="[^"]+" height="[^"]+"', r"<svg\1", svg, count=1)


def _months_axis(ax, max_months: float) -> None:
    ax.set_xlim(0, max_months)
    step = 12 if max_months > 24 else 6
    ax.set_xticks(np.arange(0, max_months + 0.1, step))
    ax.set_xlabel(AXIS_LABEL_MONTHS)
    ax.grid(True, color="#dddddd", linewidth=0.5)
    ax.set_axisbelow(True)


def _pct_axis(ax) -> None:
    ax.set_ylim(0, 1)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_yticklabels([f"{int(v * 100)}%" for v in np.linspace(0, 1, 6)])


def stacked_incidence_svg(
    months: np.ndarray,
    relapse: tuple[np.ndarray, np.ndarray | None, np.ndarray | None],
    trm: tuple[np.ndarray, np.ndarray | None, np.ndarray | None],
    width_in: float = 3.5,
    height_in: float = 1.75,
    label: str | None = None,
) -> str:
    """Stacked cumulative incidence for one patient.

    Relapse from the bottom, TRM from the top, alive event-free between.

    Stacking relapse up from 0 and TRM down from 1 lets each cause keep its own 95% band exactly (the band of F1
    around the lower boundary, the band of F2 around ``1 - F2``), which a naive stack (F1 + F2) would not.

    Parameters
    ----------
    months : (k,) months after HSCT, starting at 0.
    relapse, trm : (estimate, lower, upper), each (k,) in [0, 1]; lower/upper ``None`` if the model gives no interval.
    """
    months = np.asarray(months, dtype=float)
    r, r_lo, r_hi = relapse
    t, t_lo, t_hi = trm
    with _RC_LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width_in, height_in))
        ax = fig.subplots()
        kw: dict[str, Any] = {"step": "post", "linewidth": 0}
        ax.fill_between(months, 0, r, color=COLOURS["relapse"], alpha=0.55, label="Relapse / progression", **kw)
        ax.fill_between(months, r, 1 - t, color=COLOURS["event_free"], alpha=0.30, label="Alive, event-free", **kw)
        ax.fill_between(months, 1 - t, 1, color=COLOURS["trm"], alpha=0.55, label="Transplant-related death", **kw)
        ax.step(months, r, where="post", color=COLOURS["relapse"], linewidth=1.2)
        ax.step(months, 1 - t, where="post", color=COLOURS["trm"], linewidth=1.2)
        # Each cause's 95% band is a lighter zone around its boundary, edged by dashed lines.
        for lo, hi, colour in (
            (r_lo, r_hi, COLOURS["relapse"]),
            (None if t_hi is None else 1 - t_hi, None if t_lo is None else 1 - t_lo, COLOURS["trm"]),
        ):
            if lo is None or hi is None:
                continue
            # dashed bounds only: a veil over the band would tint the estimate's colour to the bound's
            ax.step(months, lo, where="post", color=colour, linewidth=0.6, linestyle="--")
            ax.step(months, hi, where="post", color=colour, linewidth=0.6, linestyle="--")
        _months_axis(ax, float(months[-1]))
        _pct_axis(ax)
        ax.set_ylabel(AXIS_LABEL_SHARE)
        has_band = r_lo is not None or t_lo is not None
        ax.set_title("Cumulative incidence" + (" (dashed: 95% interval)" if has_band else " (no interval)"), loc="left")
        handles, labels = ax.get_legend_handles_labels()
        # Legend below the axes, in the same top-to-bottom order as the stacked bands.
        order = [2, 1, 0]
        ax.legend(
            [handles[i] for i in order],
            [labels[i] for i in order],
            loc="upper center",
            bbox_to_anchor=(0.5, -0.3),
            ncol=2,
            frameon=False,
            columnspacing=0.8,
            handlelength=1.2,
        )
        _stamp(fig, label)
        fig.subplots_adjust(**_PANEL_MARGINS)
        return _to_svg(fig)


def survival_svg(
    months: np.ndarray,
    curves: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]],
    width_in: float = 3.5,
    height_in: float = 1.75,
    label: str | None = None,
) -> str:
    """Overall survival and event-free survival for one patient, each with its 95% pointwise band.

    ``curves`` maps ``"os"`` / ``"efs"`` to (estimate, lower, upper), each (k,), over ``months`` (k,) from 0.
    """
    labels = {"os": "Overall survival", "efs": "Event-free survival"}
    months = np.asarray(months, dtype=float)
    with _RC_LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width_in, height_in))
        ax = fig.subplots()
        for key in ("os", "efs"):
            if key not in curves:
                continue
            est, lo, hi = curves[key]
            if lo is not None and hi is not None:
                ax.fill_between(months, lo, hi, step="post", color=COLOURS[key], alpha=0.18, linewidth=0)
            ax.step(months, est, where="post", color=COLOURS[key], linewidth=1.6, label=labels[key])
        _months_axis(ax, float(months[-1]))
        _pct_axis(ax)
        ax.set_ylabel(AXIS_LABEL_SHARE)
        has_band = any(v[1] is not None for v in curves.values())
        ax.set_title("Survival" + (" (shaded: 95% interval)" if has_band else " (no interval)"), loc="left")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False, handlelength=1.2)
        _stamp(fig, label)
        fig.subplots_adjust(**_PANEL_MARGINS)
        return _to_svg(fig)


def _stamp(fig: Figure, label: str | None) -> None:
    """Write ``label`` (e.g. ``SYNTHETIC — not for clinical use``) inside the figure, so a cropped plot keeps it."""
    if label:
        fig.text(0.99, 0.99, label, ha="right", va="top", fontsize=5.5, color="#b00020", fontweight="bold")


def incidence_svg(
    months: np.ndarray,
    curves: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]],
    cohort: tuple[np.ndarray, dict[str, np.ndarray]] | None,
    width_in: float = 3.5,
    height_in: float = 1.75,
    label: str | None = None,
) -> str:
    """Relapse and TRM cumulative incidence of this patient (solid, shaded 95% band) beside the training cohort's
    observed Aalen–Johansen curves (dashed): "patients like this one" against "all transplanted children"."""
    names = {"relapse": "Relapse / progression", "trm": "Transplant-related death"}
    months = np.asarray(months, dtype=float)
    with _RC_LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width_in, height_in))
        ax = fig.subplots()
        for key in ("relapse", "trm"):
            est, lo, hi = curves[key]
            if lo is not None and hi is not None:
                ax.fill_between(months, lo, hi, step="post", color=COLOURS[key], alpha=0.18, linewidth=0)
            ax.step(months, est, where="post", color=COLOURS[key], linewidth=1.6, label=names[key])
            if cohort is not None:
                cm, cc = cohort
                keep = cm <= months[-1]
                ax.step(cm[keep], cc[key][keep], where="post", color=COLOURS[key], linewidth=0.9, linestyle="--")
        if cohort is not None:
            ax.plot(
                [], [], color=COLOURS["reference"], linestyle="--", linewidth=0.9, label="Training cohort (observed)"
            )
        _months_axis(ax, float(months[-1]))
        _pct_axis(ax)
        ax.set_ylabel(AXIS_LABEL_SHARE)
        has_band = any(v[1] is not None for v in curves.values())
        ax.set_title("Patient vs cohort" + (" (shaded: 95% interval)" if has_band else " (no interval)"), loc="left")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False, handlelength=1.6)
        _stamp(fig, label)
        fig.subplots_adjust(**_PANEL_MARGINS)
        return _to_svg(fig)


def icon_array_svg(event_free: int, relapse: int, trm: int, label: str | None = None) -> str:
    """A 10 × 10 icon array of 100 children: alive without relapse, relapsed, died of TRM (counts sum to 100).

    Icon arrays convey absolute risk better than percentages to most readers (Galesic, Garcia-Retamero & Gigerenzer
    2009, Health Psychol 28:210). Filled row by row from the top left: event-free first, then relapse, then TRM.
    """
    if event_free + relapse + trm != 100 or min(event_free, relapse, trm) < 0:
        raise ValueError("icon counts must be non-negative and sum to 100")
    colours = [COLOURS["event_free"]] * event_free + [COLOURS["relapse"]] * relapse + [COLOURS["trm"]] * trm
    with _RC_LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(1.7, 1.75))
        ax = fig.subplots()
        for k, colour in enumerate(colours):
            r, c = divmod(k, 10)
            ax.add_patch(matplotlib.patches.Circle((c + 0.5, 9.5 - r), 0.36, facecolor=colour, linewidth=0))
        ax.set_xlim(0, 10)
        ax.set_ylim(0, 10)
        ax.set_aspect("equal")
        ax.axis("off")
        _stamp(fig, label)
        fig.subplots_adjust(left=0.02, right=0.98, top=0.92, bottom=0.02)
        return _to_svg(fig)


def cohort_position_svg(
    rows: Sequence[tuple[str, float, np.ndarray, np.ndarray]],
    width_in: float = 3.6,
    height_in: float = 1.1,
) -> str:
    """Where one patient's predicted 2-year risks fall in the training cohort's distribution.

    ``rows``: (label, patient value in [0, 1], percentile levels (m,) in 0–100, sorted, training values at those
    levels (m,)). Each row draws the training distribution as a box (quartiles and median, interpolated between
    stored levels when needed) with whiskers to the lowest and highest stored percentile, and the patient as a marker.
    """
    with _RC_LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width_in, height_in))
        ax = fig.subplots()
        for i, (label, value, levels, values) in enumerate(rows):
            y = len(rows) - 1 - i
            q = lambda p, lv=levels, vv=values: float(np.interp(p, lv, vv))  # noqa: E731
            # whiskers span the most extreme stored percentiles (e.g. 5th–95th); the box is the quartiles
            ax.plot([float(values[0]), float(values[-1])], [y, y], color=COLOURS["reference"], linewidth=1.0)
            ax.add_patch(
                matplotlib.patches.Rectangle(
                    (q(25), y - 0.18),
                    q(75) - q(25),
                    0.36,
                    facecolor="#e6e6e6",
                    edgecolor=COLOURS["reference"],
                    linewidth=0.7,
                )
            )
            ax.plot([q(50), q(50)], [y - 0.18, y + 0.18], color=COLOURS["reference"], linewidth=1.0)
            colour = COLOURS["relapse"] if "elapse" in label else COLOURS["trm"]
            ax.plot([value], [y], marker="D", color=colour, markersize=5, zorder=3)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r[0] for r in reversed(rows)])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xlim(0, 1)
        ax.set_xticks(np.linspace(0, 1, 6))
        ax.set_xticklabels([f"{int(v * 100)}%" for v in np.linspace(0, 1, 6)])
        ax.set_xlabel("Predicted 2-year risk")
        ax.grid(True, axis="x", color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
        fig.subplots_adjust(left=0.17, right=0.96, top=0.95, bottom=0.36)
        return _to_svg(fig)


def calibration_svg(
    groups: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]],
    title: str,
    width_in: float = 3.2,
    height_in: float = 3.0,
) -> str:
    """Calibration plot (:func:`nbrisk.training.plots.draw_calibration`) as inline SVG.

    ``groups``: (label, predicted (g,), observed (g,), observed lower or None, observed upper or None), one per
    model or cause, each point one risk decile.
    """
    from nbrisk.training.plots import draw_calibration

    with _RC_LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width_in, height_in))
        draw_calibration(fig.subplots(), groups, title)
        fig.subplots_adjust(left=0.17, right=0.97, top=0.92, bottom=0.13)
        return _to_svg(fig)


def decision_curve_svg(
    thresholds: np.ndarray,
    curves: Sequence[tuple[str, np.ndarray]],
    treat_all: np.ndarray | None,
    title: str,
    width_in: float = 3.2,
    height_in: float = 2.6,
) -> str:
    """Decision curve (:func:`nbrisk.training.plots.draw_decision_curve`) as inline SVG: ``curves`` (label, net
    benefit (m,)) per model over ``thresholds`` (m,); ``treat_all`` (m,); treat-none is the zero line."""
    from nbrisk.training.plots import draw_decision_curve

    with _RC_LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width_in, height_in))
        draw_decision_curve(fig.subplots(), thresholds, curves, treat_all, title)
        fig.subplots_adjust(left=0.17, right=0.97, top=0.91, bottom=0.16)
        return _to_svg(fig)
