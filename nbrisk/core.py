"""Shared vocabulary of nbrisk: causes, time units and the prediction container.

Everything that crosses a package boundary (features → models → training → serving → reports) uses these names,
so that a bare ``1`` or an unlabelled array never carries implied meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

#: Days per month used everywhere a horizon in months meets a time in days (365.25 / 12).
DAYS_PER_MONTH = 365.25 / 12.0
#: Horizons (months after HSCT) reported by default.
DEFAULT_HORIZONS_MONTHS: tuple[int, ...] = (12, 24, 36, 60)
#: Label required on everything built on the synthetic cohort.
SYNTHETIC_LABEL = "SYNTHETIC — not for clinical use"


class Cause(IntEnum):
    """Competing-risks event codes used in every target ``y['event']``.

    scikit-survival's ``load_bmt`` uses the opposite codes (1 = TRM, 2 = relapse); loaders map them to this enum.
    """

    CENSORED = 0
    RELAPSE = 1
    TRM = 2


#: Index of each state in the second axis of ``predict_cumulative_incidence`` output ``(n, 3, n_times)``.
STATE_EVENT_FREE = 0
STATE_RELAPSE = 1
STATE_TRM = 2


def months_to_days(months: npt.ArrayLike) -> np.ndarray:
    """Convert months after HSCT to days (the unit of ``y['time']``)."""
    return np.asarray(months, dtype=float) * DAYS_PER_MONTH


def days_to_months(days: np.ndarray | list[float] | float) -> np.ndarray:
    """Convert days after HSCT to months."""
    return np.asarray(days, dtype=float) / DAYS_PER_MONTH


@dataclass(frozen=True)
class Band:
    """A curve with its pointwise 95% interval, each of shape ``(n_patients, n_times)``.

    ``lower``/``upper`` are ``None`` when the model cannot give an interval (never a fake one).
    """

    estimate: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


@dataclass(frozen=True)
class RiskCurves:
    """Predicted relapse / TRM cumulative incidence, EFS and OS for several patients at several horizons.

    Every array has shape ``(n_patients, n_horizons)``; ``horizons_months`` has shape ``(n_horizons,)``.
    Invariants (checked by :meth:`check`): values in [0, 1]; relapse and TRM non-decreasing; EFS and OS
    non-increasing; ``efs = 1 - relapse - trm``; ``os >= efs``; ``1 - os >= trm``; ``lower <= estimate <= upper``.
    """

    horizons_months: np.ndarray
    relapse: Band
    trm: Band
    efs: Band
    os: Band

    @property
    def n_patients(self) -> int:
        return int(self.relapse.estimate.shape[0])

    def bands(self) -> dict[str, Band]:
        return {"relapse": self.relapse, "trm": self.trm, "efs": self.efs, "os": self.os}

    def check(self, atol: float = 1e-9) -> None:
        """Raise ``ValueError`` if any invariant of the contract is violated."""
        for name, band in self.bands().items():
            est = band.estimate
            if np.any(est < -atol) or np.any(est > 1 + atol):
                raise ValueError(f"{name} outside [0, 1]")
            if band.lower is not None and band.upper is not None:
                if np.any(band.lower > est + atol) or np.any(band.upper < est - atol):
                    raise ValueError(f"{name}: interval does not contain the estimate")
            d = np.diff(est, axis=1)
            if name in ("relapse", "trm") and np.any(d < -atol):
                raise ValueError(f"{name} decreases in time")
            if name in ("efs", "os") and np.any(d > atol):
                raise ValueError(f"{name} increases in time")
        r, t, e, o = (self.relapse.estimate, self.trm.estimate, self.efs.estimate, self.os.estimate)
        if not np.allclose(e, 1.0 - r - t, atol=1e-6):
            raise ValueError("efs != 1 - relapse - trm")
        if np.any(o < e - 1e-6):
            raise ValueError("os < efs")
        if np.any(1.0 - o < t - 1e-6):
            raise ValueError("1 - os < trm")


class NbriskError(Exception):
    """A user-facing error: the CLI prints its message as one line and exits with ``exit_code`` (no traceback)."""

    exit_code: int = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
