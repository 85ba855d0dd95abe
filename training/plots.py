"""Validation figure logged with every model run: calibration plots and decision curves (matplotlib, Agg).

Both are drawn from the JSON tables that :mod:`nbrisk.training.jobs` also logs, so a figure never shows anything
the run does not record as numbers. Figures of runs on synthetic data carry ``SYNTHETIC — not for clinical use``.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from nbrisk.core import SYNTHETIC_LABEL

CAUSE_TITLES = {"relapse": "Relapse", "trm": "TRM"}


def _col(table: dict[str, Any], *names: str) -> np.ndarray | None:
    for n in names:
        if n in table and table[n] is not None:
            return np.array([np.nan if v is None else v for v in table[n]], dtype=float)
    return None


def validation_figures(tables: dict[str, Any], horizon: float, model_name: str, synthetic: bool) -> dict[str, Any]:
    """One figure per model at the primary ``horizon`` (months): calibration (top) and decision curves (bottom),
    relapse left, TRM right. The tables of every horizon are logged as JSON next to it."""
    lab = f"{round(float(horizon), 1):g}m"
    calib = tables.get("calibration") or {}
    nb = tables.get("net_benefit") or {}
    if not calib and not nb:
        return {}
    fig, axes = plt.subplots(2, 2, figsize=(7.0, 6.4), squeeze=False)
    for j, cause in enumerate(("relapse", "trm")):
        tab = calib.get(f"{cause}_calibration_{lab}")
        if tab:
            _draw_calibration(axes[0, j], tab)
        axes[0, j].set_title(f"{CAUSE_TITLES[cause]}: calibration by decile", fontsize=9)
        tab = nb.get(f"{cause}_net_benefit_{lab}")
        if tab:
            _draw_net_benefit(axes[1, j], tab)
        axes[1, j].set_title(f"{CAUSE_TITLES[cause]}: decision curve", fontsize=9)
        for ax in axes[:, j]:
            ax.tick_params(labelsize=7)
    fig.suptitle(
        f"{model_name}, out-of-fold predictions at {float(horizon):g} months"
        + (f"\n{SYNTHETIC_LABEL}" if synthetic else ""),
        fontsize=10,
    )
    fig.tight_layout()
    return {f"calibration_decision_{lab}": fig}


def _draw_calibration(ax, tab: dict[str, Any]) -> None:
    pred = _col(tab, "predicted", "mean_predicted")
    obs = _col(tab, "observed", "observed_aj")
    if pred is None or obs is None:
        return
    hi = float(np.nanmax(np.concatenate([pred, obs, [0.05]])))
    lim = min(1.0, hi * 1.1)
    ax.plot([0, lim], [0, lim], color="0.6", lw=0.8, ls="--")
    lo_ci, up_ci = _col(tab, "observed_lower", "lower"), _col(tab, "observed_upper", "upper")
    if lo_ci is not None and up_ci is not None:
        ax.errorbar(
            pred,
            obs,
            yerr=[np.clip(obs - lo_ci, 0, None), np.clip(up_ci - obs, 0, None)],
            fmt="o",
            ms=3,
            lw=0.8,
            capsize=2,
        )
    else:
        ax.plot(pred, obs, "o", ms=3)
    ax.set_xlim(0, lim)
    ax.set_ylim(0, lim)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("observed", fontsize=8)


def _draw_net_benefit(ax, tab: dict[str, Any]) -> None:
    thr = _col(tab, "threshold")
    if thr is None:
        return
    for key, label, style in (
        ("net_benefit", "model", "-"),
        ("treat_all", "treat all", "--"),
        ("treat_none", "treat none", ":"),
    ):
        vals = _col(tab, key)
        if vals is None and key == "treat_none":
            vals = np.zeros_like(thr)
        if vals is not None:
            ax.plot(thr, vals, style, lw=1, label=label)
    nb = _col(tab, "net_benefit")
    top = float(np.nanmax(nb)) if nb is not None and np.isfinite(nb).any() else 0.1
    ax.set_ylim(-0.05, max(0.05, top * 1.2))
    ax.set_xlabel("threshold probability", fontsize=8)
    ax.set_ylabel("net benefit", fontsize=8)
    ax.legend(fontsize=6)


def close(figures: dict[str, Any]) -> None:
    for fig in figures.values():
        plt.close(fig)
