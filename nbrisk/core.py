"""Shared vocabulary of nbrisk: causes, time units and the prediction container.

Everything that crosses a package boundary (features → models → training → serving → reports) uses these names,
so that a bare ``1`` or an unlabelled array never carries implied meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

#: Days per month used everywhere a horizon in months meets a time in days (365.25 / 12).
DAYS_PER_MONTH = 365.25 / 12.0
#: Horizons (months after HSCT) reported by default.
DEFAULT_HORIZONS_MONTHS: tuple[int, ...] = (12, 24, 36, 60)
#: Label required on everything built on the synthetic cohort.
SYNTHETIC_LABEL = "SYNTHETIC — not for clinical use"
#: What the models are for: shown on the model card, the patient report and the model report.
INTENDED_USE = (
    "Decision support for multidisciplinary tumour boards discussing allogeneic HSCT for children and young adults "
    "(age 0.5–25 years at HSCT) with stage M (INRG) / stage 4 (INSS) neuroblastoma, refractory, relapsed or "
    "very-high-risk: prognostic estimates of relapse/progression, transplant-related mortality, event-free and "
    "overall survival from information known before day 0. Estimates are associations in the training cohort for "
    "groups of patients similar to this one, not effects of treatment choices; they support, never replace, "
    "clinical judgement."
)


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


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (at most ``limit`` characters), or its type name when it has none:
    what a one-line user-facing error quotes from a library's exception (never its traceback)."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


def months_to_days(months: npt.ArrayLike) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------------------------------
# the training result: what training writes once and reports and the model card read (never parsed by guesswork)

#: Version of the :class:`TrainingSummary` layout. A model registered with another layout (or with the untyped
#: dictionary of earlier releases) is refused by :func:`training_summary_of` with a "retrain" message.
TRAINING_SUMMARY_VERSION = 2


@dataclass(frozen=True)
class ValidationMetric:
    """One validation metric of a fitted model: ``name`` of ``outcome`` at ``horizon_months`` with its 95% CI.

    ``outcome`` is ``relapse``, ``trm``, ``efs`` or ``os``; ``name`` the metric's name as the training jobs compute it
    (``c_index``, ``auc``, ``brier``, ``ipa``, ``ici``, ``e50``, ``e90``, ``calibration_slope``, ...);
    ``horizon_months`` is ``None`` for a metric over all horizons (e.g. the integrated Brier score). ``lower`` and
    ``upper`` are the percentile bootstrap interval, ``None`` when the metric was not resampled.
    """

    outcome: str
    name: str
    horizon_months: float | None
    estimate: float
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True)
class ObservedGroup:
    """Observed outcomes (Aalen–Johansen) of a group of training patients, at ``horizons_months``.

    ``rule`` says in words who is in the group; ``lo``/``hi`` bound the group's predicted 2-year event-free survival
    (the similarity rule of the patient report); ``relapse``/``trm`` are ``(estimate, lower, upper)`` per horizon.
    Only aggregates: no group smaller than ``MIN_GROUP_SIZE`` patients is stored.
    """

    rule: str
    lo: float
    hi: float
    n: int
    n_relapse: int
    n_trm: int
    horizons_months: tuple[float, ...]
    relapse: tuple[tuple[float, float, float], ...]
    trm: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True)
class TrainingSummary:
    """Aggregate, non-identifying description of one fitted model and its training cohort (frozen).

    Written once by training (:func:`nbrisk.models.risk_model.training_summary`, completed by the training jobs with
    the validation results) and read by the reports and the service's model card. It also reads as a read-only
    mapping of its field names (``summary["n"]``), so code that only needs one value need not import it.
    """

    version: int
    model_name: str
    family: str
    trained_at: str
    n: int
    events: dict[str, int]  # "censored" / "relapse" / "trm" → count
    synthetic: bool
    data_fingerprint: str | None
    numeric_ranges: dict[str, tuple[float, float]]
    category_counts: dict[str, dict[str, int]]
    missing_counts: dict[str, int]
    predicted_2y_distribution: dict[str, dict[str, float]]  # outcome → {"p5": ..., "p95": ...}
    feature_names: tuple[str, ...]
    feature_means: tuple[float, ...]
    median_followup_days: float | None
    params: dict[str, Any] = field(default_factory=dict)
    interval_method: str = "none"  # "none" | "model" | "bootstrap"
    n_interval_bootstrap: int = 0
    #: what every answer and report says about intervals: "method, refits; measured coverage ..." or "no interval: ..."
    interval_statement: str = ""
    interval_coverage: str = ""  # the measured coverage behind a served interval ("" when none is served)
    inputs: str = ""  # which inputs the model uses, in words (the leaderboard and the model card)
    #: "" or how training recalibrated the model in the large (a logistic shift of the CIFs) and why
    recalibration: str = ""
    cif_rescaled: int = 0
    incoherent_fraction: float | None = None
    validation_metrics: tuple[ValidationMetric, ...] = ()
    validation_scheme: str = ""
    optimism_corrected: dict[str, float] = field(default_factory=dict)
    leave_center_out: dict[str, float] = field(default_factory=dict)
    #: observed cumulative incidence of the whole training cohort (Aalen–Johansen) on a monthly grid
    cohort_months: tuple[float, ...] = ()
    cohort_relapse: tuple[float, ...] = ()
    cohort_trm: tuple[float, ...] = ()
    #: observed outcomes of training patients grouped by predicted 2-year EFS (the report's "similar patients")
    similar_groups: tuple[ObservedGroup, ...] = ()

    @property
    def label(self) -> str | None:
        return SYNTHETIC_LABEL if self.synthetic else None

    def metric(self, outcome: str, name: str, horizon_months: float | None) -> ValidationMetric | None:
        """The stored metric ``name`` of ``outcome`` at ``horizon_months`` (``None`` if it was not computed)."""
        for m in self.validation_metrics:
            if m.outcome == outcome and m.name == name and _same_horizon(m.horizon_months, horizon_months):
                return m
        return None

    # read-only mapping view (field name → value)
    def __getitem__(self, key: str) -> Any:
        if key not in _SUMMARY_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in _SUMMARY_FIELDS else default

    def keys(self) -> tuple[str, ...]:
        return _SUMMARY_FIELDS

    def __iter__(self):
        return iter(_SUMMARY_FIELDS)

    def __contains__(self, key: object) -> bool:
        return key in _SUMMARY_FIELDS


def _same_horizon(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) < 1e-9


#: The keys of the mapping view: every field and the derived ``label``.
_SUMMARY_FIELDS: tuple[str, ...] = (*(f.name for f in fields(TrainingSummary)), "label")


def training_summary_of(model: Any) -> TrainingSummary:
    """The :class:`TrainingSummary` of a fitted model, or a :class:`NbriskError` asking to retrain.

    Models registered before the summary was typed carry a plain dictionary; rather than guess what its keys mean,
    they are refused with a clear message (train again with this version of nbrisk, then promote).
    """
    s = getattr(model, "training_summary", None)
    if isinstance(s, TrainingSummary) and s.version == TRAINING_SUMMARY_VERSION:
        return s
    found = f"layout {s.version}" if isinstance(s, TrainingSummary) else "an untyped summary"
    raise NbriskError(
        f"this model was registered by an older nbrisk ({found}; this version reads layout "
        f"{TRAINING_SUMMARY_VERSION}): retrain it with `nbrisk train` and promote the new version"
    )


#: Risk groups by predicted 2-year event-free survival (tertile cut-offs of the training cohort, fixed at training):
#: the one definition of their names, used by the API, the reports and the calculator page.
RISK_GROUP_TITLES: dict[str, str] = {
    "low": "Low risk",
    "intermediate": "Intermediate risk",
    "high": "High risk",
}
