"""Shared vocabulary of nbrisk: causes, time units and the prediction container.

Everything that crosses a package boundary (features → models → training → serving → reports) uses these names,
so that a bare ``1`` or an unlabelled array never carries implied meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

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

    @property
    def key(self) -> str:
        """The lower-case name used in metric names, frames and JSON (``"relapse"``, ``"trm"``)."""
        return self.name.lower()


#: The two competing causes (censoring is not a cause), in code order; ``cause.key`` names each.
CAUSES: tuple[Cause, ...] = (Cause.RELAPSE, Cause.TRM)


class State(IntEnum):
    """Index of each state along axis 1 of every prediction array of nbrisk.

    One order for all of them: the ``(n, 3, k)`` output of every estimator's ``predict_cumulative_incidence``
    (event-free, relapse, TRM) is the first three states of the ``(n, 4, k)`` output of
    :meth:`nbrisk.models.illness_death.IllnessDeathModel.predict_states`, which adds overall survival. The cause
    states share their number with :class:`Cause`, so ``pred[:, cause]`` is the CIF of ``cause``. A prediction is
    read with these names (``pred[:, State.OS]``), never with bare indices or index lists.
    """

    #: event-free survival: alive without relapse (1 − relapse CIF − TRM CIF)
    EFS = 0
    #: cumulative incidence of relapse (or progression), cause 1
    RELAPSE = 1
    #: cumulative incidence of transplant-related mortality (death without relapse), cause 2
    TRM = 2
    #: overall survival (alive, with or without a relapse): illness–death models only
    OS = 3

    @property
    def field(self) -> str:
        """The name of this state's :class:`Band` in :class:`RiskCurves` (``"efs"``, ``"relapse"``, …)."""
        return self.name.lower()


def months_to_days(months: np.ndarray | list[float] | float) -> np.ndarray:
    """Convert months after HSCT to days (the unit of ``y['time']``)."""
    return np.asarray(months, dtype=float) * DAYS_PER_MONTH


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

    The one object that crosses from the models to training, serving and the reports: a fitted model gives it
    (``IllnessDeathModel.predict_curves(X, horizons_months)``, ``RiskModel.predict(records, horizons_months)``);
    :meth:`from_states` builds it from ``(n, 4, k)`` arrays in :class:`State` order and :meth:`states` gives them
    back, so no consumer ever indexes a prediction by position.

    Every array has shape ``(n_patients, n_horizons)``; ``horizons_months`` has shape ``(n_horizons,)``.
    Invariants (checked by :meth:`check`): values in [0, 1]; relapse and TRM non-decreasing; EFS and OS
    non-increasing; ``efs = 1 - relapse - trm``; ``os >= efs``; ``1 - os >= trm``; ``lower <= estimate <= upper``.
    """

    horizons_months: np.ndarray
    relapse: Band
    trm: Band
    efs: Band
    os: Band

    def __post_init__(self) -> None:
        k = np.shape(self.horizons_months)
        if len(k) != 1:
            raise ValueError("horizons_months must be 1-dimensional")
        shape = np.shape(self.relapse.estimate)
        for name, band in self.bands().items():
            for part in (band.estimate, band.lower, band.upper):
                if part is not None and (np.shape(part) != shape or len(shape) != 2 or shape[1] != k[0]):
                    raise ValueError(f"{name}: every array must have shape (n_patients, {k[0]}); got {np.shape(part)}")
            if (band.lower is None) != (band.upper is None):
                raise ValueError(f"{name}: lower and upper must both be given or both be None")

    @classmethod
    def from_states(
        cls,
        horizons_months,
        estimate: np.ndarray,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> RiskCurves:
        """Curves from ``(n, 4, k)`` arrays whose axis 1 is in :class:`State` order (intervals optional)."""
        h = np.atleast_1d(np.asarray(horizons_months, dtype=float))

        def band(s: State) -> Band:
            if lower is None or upper is None:
                return Band(estimate[:, s])
            return Band(estimate[:, s], lower[:, s], upper[:, s])

        return cls(h, **{s.field: band(s) for s in State})

    @property
    def n_patients(self) -> int:
        return int(self.relapse.estimate.shape[0])

    @property
    def has_intervals(self) -> bool:
        return self.relapse.lower is not None

    def band(self, state: State) -> Band:
        """The band of one :class:`State`."""
        return getattr(self, State(state).field)

    def bands(self) -> dict[str, Band]:
        """Name → band, in the order of the output columns (relapse, TRM, EFS, OS)."""
        return {"relapse": self.relapse, "trm": self.trm, "efs": self.efs, "os": self.os}

    def states(self, part: str = "estimate") -> np.ndarray:
        """``(n, 4, k)`` array of ``part`` (``"estimate"``, ``"lower"`` or ``"upper"``) in :class:`State` order."""
        arrays = [getattr(self.band(s), part) for s in State]
        if any(a is None for a in arrays):
            raise ValueError(f"these curves have no {part} bounds (the model gives no intervals)")
        return np.stack(arrays, axis=1)

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
