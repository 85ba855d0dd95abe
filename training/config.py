"""Typed, frozen training configuration (TOML → pydantic, ``extra="forbid"`` so a typo is an error).

A config says which model families to fit (with their fixed parameters and a small hyper-parameter grid), how to
validate them (repeated stratified K-fold with an inner tuning loop, Harrell's bootstrap optimism correction,
leave-one-center-out), at which horizons (months after HSCT), how many bootstrap resamples to use for CIs, and the
promotion gates. ``configs/default.toml`` is the full configuration, ``configs/quick.toml`` a tiny one for tests.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nbrisk.core import DEFAULT_HORIZONS_MONTHS, NbriskError

#: Where the shipped configs live: the package ``nbrisk.configs`` (the repository's top-level ``configs/`` folder,
#: installed with the wheel), found through importlib.resources so a clone and an installed wheel behave alike.
CONFIG_DIR = Path(str(files("nbrisk.configs")))

Scalar = int | float | str | bool | None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Frozen):
    """The embedded synthetic cohort used when ``train`` gets no data file."""

    synthetic_n: int = Field(1500, ge=50, le=200_000)
    synthetic_seed: int = 2026
    #: a preset of the generator, or one of its worlds (features/synthetic.py WORLDS: truth not the literature table)
    synthetic_preset: Literal[
        "base", "historical", "optimistic", "offtable", "nonlinear", "interactions", "weak", "strong", "centers"
    ] = "base"


class ValidationConfig(_Frozen):
    """How models are validated and compared (see :mod:`nbrisk.training.validation`)."""

    n_splits: int = Field(5, ge=2, le=20)
    n_repeats: int = Field(2, ge=1, le=20)
    inner_splits: int = Field(3, ge=2, le=10)
    n_bootstrap: int = Field(200, ge=0, le=5000)
    n_optimism: int = Field(20, ge=0, le=1000)
    leave_center_out: bool = True
    min_center_size: int = Field(30, ge=1)
    primary_horizon_months: float = Field(24, gt=0, le=120)


#: Fewest bootstrap refits behind a served interval: with fewer, the 2.5% / 97.5% percentiles are mostly Monte-Carlo
#: noise (with 5, an estimate can sit on its own bound).
MIN_INTERVAL_REFITS = 100


class FinalConfig(_Frozen):
    """The final (registered) model: intervals by a bootstrap of the pipeline when the model has no delta method.

    ``n_interval_bootstrap`` is 0 (no interval; the default) or at least :data:`MIN_INTERVAL_REFITS`.
    """

    n_interval_bootstrap: int = Field(0, ge=0, le=1000)


class PromotionConfig(_Frozen):
    """Gates a candidate must pass to become champion (calibration at the primary horizon, both causes)."""

    max_ici: float = Field(0.08, gt=0, le=1)
    calibration_slope_range: tuple[float, float] = (0.6, 1.6)
    #: Calibration in the large: |mean out-of-fold predicted CIF − Aalen–Johansen| of relapse and TRM at each of
    #: ``calibration_horizons_months`` (those among the training horizons) must not exceed this (2 points).
    max_calibration_in_the_large: float = Field(0.02, gt=0, le=1)
    calibration_horizons_months: tuple[float, ...] = (12, 24, 60)

    @field_validator("calibration_slope_range")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < v[1]:
            raise ValueError("calibration_slope_range must be (low, high) with low < high")
        return v


class ModelSpec(_Frozen):
    """One model family: fixed ``params`` plus a ``grid`` of candidate values tuned in the inner loop.

    A list parameter (e.g. ``time_varying_knots = [182.625, 365.25]``) reaches the estimator as a tuple;
    ``features = "clinical"`` stands for :data:`nbrisk.features.pipeline.CLINICAL_PREDICTORS`, the pre-specified
    predictor set of the Cox family (one definition, not a copy in every config).

    Slow families can opt out of the refit-heavy extras: ``optimism`` (Harrell's bootstrap correction),
    ``leave_center_out`` and ``n_interval_bootstrap`` (overrides ``final.n_interval_bootstrap``; 0 registers the
    model without prediction intervals, which it then says rather than inventing one).
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    family: str  # a key of nbrisk.models.families.FAMILIES
    params: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    grid: dict[str, list[Scalar]] = Field(default_factory=dict)
    optimism: bool = True
    leave_center_out: bool = True
    n_interval_bootstrap: int | None = Field(None, ge=0, le=1000)
    #: The measured coverage of this family's served intervals (required when it serves any): one line, with the
    #: benchmark it comes from; it travels in the model's metadata to every answer and report.
    interval_coverage: str = ""
    #: Linear splines of the continuous inputs in this model's feature pipeline (``RecordFeatures(splines=True)``).
    splines: bool = False

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str) -> str:
        from nbrisk.models.families import FAMILIES

        if v not in FAMILIES:
            raise ValueError(f"unknown model family {v!r}; known families: {', '.join(FAMILIES)}")
        return v

    @field_validator("grid")
    @classmethod
    def _non_empty(cls, v: dict[str, list[Scalar]]) -> dict[str, list[Scalar]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"grid[{key!r}] is empty")
        return v

    @property
    def is_null(self) -> bool:
        """The covariate-free Aalen–Johansen model (the reference of IPA, never a serving candidate)."""
        return self.family == "AalenJohansen"

    def candidates(self) -> list[dict[str, Any]]:
        """Every parameter combination of the grid merged over the fixed params (one dict if no grid)."""
        keys = sorted(self.grid)
        combos = itertools.product(*(self.grid[k] for k in keys)) if keys else [()]
        return [{**self.params, **dict(zip(keys, combo, strict=True))} for combo in combos]

    def make_estimator(self, random_state: int | None = None, **overrides: Any):
        """Instantiate the estimator class with fixed params, ``overrides`` and ``random_state`` if it takes one
        (:func:`nbrisk.models.families.make_estimator`)."""
        from nbrisk.models.families import make_estimator

        params = {k: tuple(v) if isinstance(v, list) else v for k, v in {**self.params, **overrides}.items()}
        if params.get("features") == "clinical":
            from nbrisk.features.pipeline import CLINICAL_PREDICTORS

            params["features"] = CLINICAL_PREDICTORS
        return make_estimator(self.family, params, random_state=random_state)


class TrainConfig(_Frozen):
    """The whole training configuration (one TOML file)."""

    seed: int = 2026
    n_jobs: int = Field(1, ge=-1, le=64)
    #: Dask scheduler address (``tcp://host:8786``) or ``local`` to run every fit as a task there; None: the local
    #: process pool of ``n_jobs`` (nbrisk.training.cluster)
    cluster: str | None = None
    horizons_months: tuple[float, ...] = DEFAULT_HORIZONS_MONTHS
    data: DataConfig = Field(default_factory=DataConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    final: FinalConfig = Field(default_factory=FinalConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    models: tuple[ModelSpec, ...]

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, v: str | None) -> str | None:
        from nbrisk.training.cluster import check_address

        return None if v is None else check_address(v)

    @field_validator("horizons_months")
    @classmethod
    def _horizons(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(h <= 0 or h > 120 for h in v) or list(v) != sorted(set(v)):
            raise ValueError("horizons_months must be increasing, distinct, each in (0, 120]")
        return v

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique; got {names}")
        if not any(not m.is_null for m in self.models):
            raise ValueError("at least one model with covariates is required (AalenJohansen alone cannot be served)")
        if self.validation.primary_horizon_months not in self.horizons_months:
            raise ValueError("validation.primary_horizon_months must be one of horizons_months")
        for m in self.models:
            refits = self.interval_refits(m)
            if m.is_null:
                continue
            if 0 < refits < MIN_INTERVAL_REFITS:
                raise ValueError(
                    f"model {m.name}: n_interval_bootstrap = {refits}; a served interval needs at least "
                    f"{MIN_INTERVAL_REFITS} refits (or 0: no interval)"
                )
            if refits and not m.interval_coverage.strip():
                raise ValueError(
                    f"model {m.name}: serves intervals ({refits} refits) but states no measured coverage "
                    "(interval_coverage); measure it (benchmarks/worlds.py) or set n_interval_bootstrap = 0"
                )
        return self

    def interval_refits(self, spec: ModelSpec) -> int:
        """Bootstrap refits behind ``spec``'s served intervals (its own setting, else ``final``'s)."""
        return self.final.n_interval_bootstrap if spec.n_interval_bootstrap is None else spec.n_interval_bootstrap

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of this config (logged with every run)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)


def packaged_config(name: str) -> Path:
    """Path of a config shipped with the package (``"default.toml"``, ``"quick.toml"``)."""
    return CONFIG_DIR / name


def default_config_path() -> Path:
    """The full training configuration used when ``--config`` is not given (``configs/default.toml``)."""
    return packaged_config("default.toml")


def resolve_config_path(path: str | Path | None = None) -> Path:
    """The config file meant by ``path``: ``None`` → the packaged ``default.toml``; an existing file → itself; else
    the name of a packaged config (``quick`` or ``quick.toml``, so ``nbrisk train --config quick`` works from an
    installed wheel). Raises :class:`NbriskError` when it is none of these."""
    if path is None:
        return default_config_path()
    path = Path(path)
    if path.is_file():
        return path
    if path.parent == Path("."):
        packaged = packaged_config(path.name if path.suffix == ".toml" else f"{path.name}.toml")
        if packaged.is_file():
            return packaged
    shipped = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.toml")))
    raise NbriskError(f"config file not found: {path} (packaged configs: {shipped})")


def load_config(path: str | Path | None = None) -> TrainConfig:
    """Read and validate a training config (see :func:`resolve_config_path`; ``None`` → ``configs/default.toml``).

    Raises :class:`NbriskError` with a one-line message on a missing file, bad TOML or a schema violation.
    """
    path = resolve_config_path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise NbriskError(f"config {path.name} is not valid TOML: {exc}") from None
    return parse_config(raw, source=path.name)


def parse_config(raw: dict[str, Any], source: str = "config") -> TrainConfig:
    """Validate a config dict (as read from TOML) into a frozen :class:`TrainConfig`."""
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise NbriskError(f"invalid {source}: {problems}") from None
