"""Calibration plots and decision curves: drawn once here, used by the training runs' logged figures and the reports.

:func:`draw_calibration` and :func:`draw_decision_curve` draw on a matplotlib ``Axes`` (no pyplot state), so the
same drawing becomes the PNG/SVG figure every model run logs (:func:`validation_figures`, from the JSON tables
:mod:`nbrisk.training.jobs` logs next to it, so a figure never shows anything the run does not record as numbers)
and the SVG of the model report (:mod:`nbrisk.reports.plots`). Figures of runs on synthetic data carry
``SYNTHETIC — not for clinical use``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from nbrisk.core import SYNTHETIC_LABEL

CAUSE_TITLES = {"relapse": "Relapse", "trm": "TRM"}
#: Colour-blind-safe (Okabe–Ito) palette of the curves, in order.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
REFERENCE = "#555555"

#: One calibration series: (label, mean predicted (g,), observed (g,), observed lower or None, upper or None).
CalibrationGroup = tuple[str, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


def _col(table: dict[str, Any], *names: str) -> np.ndarray | None:
    for n in names:
        if n in table and table[n] is not None:
            return np.array([np.nan if v is None else v for v in table[n]], dtype=float)
    return None


def draw_calibration(ax, groups: Sequence[CalibrationGroup], title: str) -> None:
    """Observed (Aalen–Johansen, with its 95% CI) vs mean predicted incidence per decile of predicted risk, one
    series per cause or model, and the diagonal of perfect calibration (Austin, Putter et al. 2020, Stat Med 39)."""
    hi = 0.05
    for i, (label, pred, obs, lo, up) in enumerate(groups):
        pred, obs = np.asarray(pred, float), np.asarray(obs, float)
        colour = PALETTE[i % len(PALETTE)]
        if lo is not None and up is not None:
            lo, up = np.asarray(lo, float), np.asarray(up, float)
            yerr = np.vstack([np.clip(obs - lo, 0, None), np.clip(up - obs, 0, None)])
            ax.errorbar(pred, obs, yerr=yerr, fmt="o-", color=colour, markersize=3, linewidth=0.9, elinewidth=0.6,
                        capsize=1.5, label=label)  # fmt: skip
            hi = max(hi, float(np.nanmax(up)))
        else:
            ax.plot(pred, obs, "o-", color=colour, markersize=3, linewidth=0.9, label=label)
        hi = max(hi, float(np.nanmax(pred)), float(np.nanmax(obs)))
    hi = min(1.0, hi * 1.05)
    ax.plot([0, hi], [0, hi], color=REFERENCE, linestyle=":", linewidth=0.8, label="Ideal")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("Mean predicted incidence")
    ax.set_ylabel("Observed incidence (Aalen–Johansen)")
    ax.set_title(title)
    ax.grid(True, color="#dddddd", linewidth=0.5)
    ax.legend(loc="lower right", frameon=False)  # points run along the diagonal from the lower left


def draw_decision_curve(
    ax, thresholds: np.ndarray, curves: Sequence[tuple[str, np.ndarray]], treat_all: np.ndarray | None, title: str
) -> None:
    """Net benefit vs threshold probability (Vickers & Elkin 2006): each model, treat-all (dashed), treat-none (0)."""
    thresholds = np.asarray(thresholds, float)
    top = 0.02
    for i, (label, nb) in enumerate(curves):
        nb = np.asarray(nb, float)
        ax.plot(thresholds, nb, color=PALETTE[i % len(PALETTE)], linewidth=1.2, label=label)
        top = max(top, float(np.nanmax(nb)))
    if treat_all is not None:
        ta = np.asarray(treat_all, float)
        ax.plot(thresholds, ta, color=REFERENCE, linewidth=0.9, linestyle="--", label="Treat all")
        top = max(top, float(np.nanmax(ta)))
    ax.axhline(0, color="black", linewidth=0.8, label="Treat none")
    ax.set_ylim(-0.05 * max(top, 0.1), top * 1.1)
    ax.set_xlim(float(thresholds.min()), float(thresholds.max()))
    ax.set_xlabel("Threshold probability")
    ax.set_ylabel("Net benefit")
    ax.set_title(title)
    ax.grid(True, color="#dddddd", linewidth=0.5)
    ax.legend(loc="upper right", frameon=False)


def calibration_group(label: str, tab: dict[str, Any]) -> CalibrationGroup | None:
    """A calibration series from one logged ``validation/calibration.json`` table (``None`` if it has no points)."""
    pred, obs = _col(tab, "mean_predicted", "predicted"), _col(tab, "observed", "observed_aj")
    if pred is None or obs is None:
        return None
    return label, pred, obs, _col(tab, "observed_lower", "lower"), _col(tab, "observed_upper", "upper")


def validation_figures(tables: dict[str, Any], horizon: float, model_name: str, synthetic: bool) -> dict[str, Any]:
    """One figure per model at the primary ``horizon`` (months): calibration (top) and decision curves (bottom),
    relapse left, TRM right. The tables of every horizon are logged as JSON next to it."""
    lab = f"{round(float(horizon), 1):g}m"
    calib = tables.get("calibration") or {}
    nb = tables.get("net_benefit") or {}
    if not calib and not nb:
        return {}
    with matplotlib.rc_context({"font.size": 7, "axes.titlesize": 9}):
        fig = Figure(figsize=(7.0, 6.4))
        axes = fig.subplots(2, 2, squeeze=False)
        for j, cause in enumerate(("relapse", "trm")):
            group = calibration_group(CAUSE_TITLES[cause], calib.get(f"{cause}_calibration_{lab}") or {})
            if group is not None:
                draw_calibration(axes[0, j], [group], f"{CAUSE_TITLES[cause]}: calibration by decile")
            tab = nb.get(f"{cause}_net_benefit_{lab}") or {}
            thr, model = _col(tab, "threshold"), _col(tab, "net_benefit")
            if thr is not None and model is not None:
                draw_decision_curve(
                    axes[1, j],
                    thr,
                    [("Model", model)],
                    _col(tab, "treat_all"),
                    f"{CAUSE_TITLES[cause]}: decision curve",
                )
        fig.suptitle(
            f"{model_name}, out-of-fold predictions at {float(horizon):g} months"
            + (f"\n{SYNTHETIC_LABEL}" if synthetic else ""),
            fontsize=10,
        )
        fig.tight_layout()
    return {f"calibration_decision_{lab}": fig}


def close(figures: dict[str, Any]) -> None:
    """Release the figures' drawing memory (they are not registered with pyplot)."""
    for fig in figures.values():
        fig.clear()
