"""Where the reports get a registered model and its training run from (the I/O edge of :mod:`nbrisk.reports`).

Loading the :class:`~nbrisk.models.risk_model.RiskModel` goes through :func:`nbrisk.models.pyfunc.load_risk_model`
and the registry/run metadata through :mod:`nbrisk.training.tracking`. Two small reads that tracking does
not offer yet — the validation tables a training run logged as JSON artifacts (calibration deciles, net benefit) and
the sibling model runs of the same training (the comparison on the same folds) — are done here with MLflow's client,
read-only; they belong in ``training/tracking.py`` and should move there.
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
    if uri.startswith("models:/"):
        body = uri[len("models:/") :]
        if "@" in body:
            name, alias = body.split("@", 1)
        elif "/" in body:
            name = body.split("/", 1)[0]
    resolved, version = resolve_model_version(uri)
    return ResolvedModel(uri=resolved, name=name, version=version, alias=alias)


def load_model(model: str | None) -> tuple[Any, dict[str, Any]]:
    """The RiskModel behind ``model`` and its ``model_info`` block (as ``/v1/risk`` reports it)."""
    from nbrisk.models.pyfunc import load_risk_model

    ref = resolve(model)
    rm = load_risk_model(ref.uri)
    s = getattr(rm, "training_summary", {}) or {}
    info = {
        "name": ref.name,
        "version": ref.version or "unregistered",
        "alias": ref.alias,
        "trained_at": s.get("trained_at"),
        "synthetic_training_data": bool(s.get("synthetic", False)),
    }
    return rm, info


def model_sources(model: str | None) -> ModelSources:
    """Gather the model report's inputs for a registered version (or alias / URI)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from nbrisk.training import tracking

    ref = resolve(model)
    if ref.version is None:
        raise NbriskError(
            f"the model report needs a registered model version; {model!r} is not one "
            "(use --model VERSION or models:/nbrisk@ALIAS)"
        )
    rm, _ = load_model(ref.uri)
    run = tracking.version_info(ref.name, ref.version)
    client = MlflowClient()
    tables: dict[str, Any] = {}
    for key in VALIDATION_TABLES:
        try:
            tables[key] = mlflow.artifacts.load_dict(f"runs:/{run['run_id']}/validation/{key}.json")
        except (MlflowException, OSError, ValueError):
            continue
    siblings: list[dict[str, Any]] = []
    parent_params: dict[str, str] = {}
    parent_tags: dict[str, str] = {}
    try:
        this = client.get_run(run["run_id"])
        parent = this.data.tags.get(tracking.PARENT_TAG)
        if parent:
            parent_run = client.get_run(parent)
            parent_params = dict(parent_run.data.params)
            parent_tags = {k: v for k, v in parent_run.data.tags.items() if k.startswith("code.")}
            for ch in client.search_runs(
                [this.info.experiment_id], filter_string=f"tags.`{tracking.PARENT_TAG}` = '{parent}'", max_results=200
            ):
                siblings.append(
                    {
                        "run_id": ch.info.run_id,
                        "name": ch.data.tags.get(tracking.MODEL_NAME_TAG, ch.info.run_name),
                        "family": ch.data.tags.get(tracking.FAMILY_TAG, ""),
                        "metrics": dict(ch.data.metrics),
                        "this": ch.info.run_id == run["run_id"],
                    }
                )
    except MlflowException:
        pass
    aliases: list[str] = []
    try:
        aliases = list(client.get_model_version(ref.name, ref.version).aliases)
    except (MlflowException, AttributeError):
        pass
    return ModelSources(ref, rm, run, tables, siblings, parent_params, parent_tags, aliases)
