"""Where the reports get a registered model and its training run from (the I/O edge of :mod:`nbrisk.reports`).

Loading the :class:`~nbrisk.models.risk_model.RiskModel` goes through :func:`nbrisk.models.pyfunc.load_risk_model`
and every registry/run read (metadata, the validation tables a run logged, the sibling model runs of the same training)
through :mod:`nbrisk.training.tracking`, the one module that talks to MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nbrisk.core import NbriskError

#: JSON artifacts a model run logs under ``validation/`` (see :func:`nbrisk.training.tracking.log_model_run`).
VALIDATION_TABLES = ("calibration", "net_benefit", "leave_center_out")


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference resolved against the registry: ``uri`` (immutable) and its identity."""

    uri: str
    name: str
    version: str | None
    alias: str | None


@dataclass
class ModelSources:
    """Everything the model report reads, gathered once (no MLflow access after this)."""

    resolved: ResolvedModel
    risk_model: Any
    run: dict[str, Any] = field(default_factory=dict)  # tracking.version_info: metrics, tags, fingerprint, run_id
    tables: dict[str, Any] = field(default_factory=dict)  # validation/<name>.json artifacts
    siblings: list[dict[str, Any]] = field(default_factory=list)  # other models of the same training run
    parent_params: dict[str, str] = field(default_factory=dict)  # the training run's params (config, data)
    parent_tags: dict[str, str] = field(default_factory=dict)  # the training run's tags (code version, ...)
    aliases: list[str] = field(default_factory=list)


def resolve(model: str | None) -> ResolvedModel:
    """``None`` → the configured default (``models:/nbrisk@champion``); ``"3"`` → version 3 of ``nbrisk``;
    any other string is an MLflow model URI (``models:/nbrisk@candidate``, ``models:/nbrisk/3``, ``runs:/…``)."""
    from nbrisk.models.pyfunc import resolve_model_version
    from nbrisk.settings import get_settings
    from nbrisk.training import tracking

    settings = get_settings()
    tracking.configure()
    uri = model or settings.model_uri
    if uri.strip().isdigit():
        uri = f"models:/{settings.registered_model_name}/{uri.strip()}"
    name, alias = settings.registered_model_name, None
    parts = tracking.parse_models_uri(uri)
    if parts is not None and (parts.alias is not None or parts.version is not None):
        name, alias = parts.name, parts.alias
    resolved, version = resolve_model_version(uri)
    return ResolvedModel(uri=resolved, name=name, version=version, alias=alias)


def load_model(model: str | None) -> tuple[Any, dict[str, Any]]:
    """The RiskModel behind ``model`` and its ``model_info`` block (as ``/v1/risk`` reports it, plus the run id)."""
    from nbrisk.core import training_summary_of
    from nbrisk.models.pyfunc import load_risk_model
    from nbrisk.training import tracking

    ref = resolve(model)
    rm = load_risk_model(ref.uri)
    s = training_summary_of(rm)  # an untyped summary of an older model: a clear "retrain" error
    run_id = tracking.version_run_id(ref.name, ref.version) if ref.version else None
    info = {
        "name": ref.name,
        "version": ref.version or "unregistered",
        "alias": ref.alias,
        "trained_at": s.trained_at,
        "synthetic_training_data": s.synthetic,
        "run_id": run_id,
    }
    return rm, info


def model_sources(model: str | None) -> ModelSources:
    """Gather the model report's inputs for a registered version (or alias / URI), through the tracking module."""
    from nbrisk.training import tracking

    ref = resolve(model)
    if ref.version is None:
        raise NbriskError(
            f"the model report needs a registered model version; {model!r} is not one "
            "(use --model VERSION or models:/nbrisk@ALIAS)"
        )
    rm, _ = load_model(ref.uri)
    run = tracking.version_info(ref.name, ref.version)
    context = tracking.training_context(run["run_id"])
    return ModelSources(
        ref,
        rm,
        run,
        tracking.validation_tables(run["run_id"], VALIDATION_TABLES),
        context["siblings"],
        context["params"],
        context["tags"],
        tracking.model_aliases(ref.name, ref.version),
    )
