"""Everything nbrisk says to MLflow (tracking and registry). No other module in ``training/`` imports mlflow.

Layout of one ``nbrisk train``:

* a **parent run** (tag ``nbrisk.run_type = train``) with the data fingerprint (sha256, n, events by cause,
  synthetic flag), the config (params + the TOML as an artifact), the code version (git SHA when available and the
  package version) and the leaderboard;
* one **child run per model** (tag ``nbrisk.run_type = model``) with its tuned hyper-parameters, per-fold metrics
  (as metric histories, ``step`` = fold), pooled cross-validated metrics with 95% bootstrap CIs, optimism-corrected
  and leave-one-center-out metrics, calibration plots and decision curves (PNG + SVG), the bootstrap replicates
  (JSON, for paired comparisons at promotion), and the whole fitted pipeline logged through
  :mod:`nbrisk.models.pyfunc` and registered as a version of the model ``nbrisk``.

Store: ``MLFLOW_TRACKING_URI`` if set, else SQLite at ``<NBRISK_HOME>/mlruns/mlflow.db`` (see
:mod:`nbrisk.settings`). Artifacts of a SQLite store live next to the database (``…/mlruns/artifacts``), never in
the current directory.
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from nbrisk.core import NbriskError
from nbrisk.settings import get_settings

RUN_TYPE = "nbrisk.run_type"
MODEL_NAME_TAG = "nbrisk.model_name"
FAMILY_TAG = "nbrisk.family"
PARENT_TAG = "mlflow.parentRunId"
BOOTSTRAP_ARTIFACT = "validation/bootstrap_replicates.json"


# ----------------------------------------------------------------------------------------------------------------
# connection

#: Scheme of MLflow's model-registry URIs.
MODELS_SCHEME = "models:/"


@dataclass(frozen=True)
class ModelsUri:
    """The parts of a registry URI: ``models:/NAME@ALIAS`` (``alias``), ``models:/NAME/VERSION`` (``version``), or
    ``models:/<id>`` of a logged model (neither)."""

    name: str
    alias: str | None = None
    version: str | None = None


def parse_models_uri(uri: str) -> ModelsUri | None:
    """Split a ``models:/`` URI into its parts (no registry call); ``None`` for any other URI (``runs:/``, a folder)."""
    if not uri.startswith(MODELS_SCHEME):
        return None
    body = uri[len(MODELS_SCHEME) :]
    if "@" in body:
        name, alias = body.split("@", 1)
        return ModelsUri(name, alias=alias)
    if "/" in body:
        name, version = body.split("/", 1)
        return ModelsUri(name, version=version)
    return ModelsUri(body)


def configure() -> str:
    """Point MLflow at the configured tracking/registry store (creating the SQLite folder) and return its URI."""
    settings = get_settings()
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(settings.registry_uri)
    return uri


def _artifact_location() -> str | None:
    """Artifact root for new experiments: next to a SQLite database (or NBRISK_ARTIFACT_ROOT); server default else."""
    import os

    settings = get_settings()
    if os.environ.get("NBRISK_ARTIFACT_ROOT"):
        root = Path(os.environ["NBRISK_ARTIFACT_ROOT"])
    elif settings.tracking_uri.startswith("sqlite:///"):
        root = Path(settings.tracking_uri[len("sqlite:///") :]).parent / "artifacts"
    else:
        return None
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve().as_uri()


def experiment_id(name: str, create: bool = True) -> str | None:
    """Id of experiment ``name`` (created with the nbrisk artifact location when missing and ``create``)."""
    configure()
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    if not create:
        return None
    loc = _artifact_location()
    return mlflow.create_experiment(name, artifact_location=f"{loc}/{name}" if loc else None)


def code_version() -> dict[str, str]:
    """Package version and, when the code is a git checkout, the commit SHA (and whether the tree was dirty)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        out = {"nbrisk_version": version("nbrisk")}
    except PackageNotFoundError:  # pragma: no cover
        out = {"nbrisk_version": "unknown"}
    repo = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        out["git_sha"] = sha
        out["git_dirty"] = str(bool(dirty)).lower()
    except (OSError, subprocess.SubprocessError):
        out["git_sha"] = "unavailable"
    return out


# ----------------------------------------------------------------------------------------------------------------
# logging a training run


def _clean_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """MLflow rejects NaN in some stores; drop non-finite values (absence means 'not computable')."""
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


@contextmanager
def parent_run(experiment: str, run_name: str, tags: dict[str, str]) -> Iterator[str]:
    """Open the parent run of one ``nbrisk train``; yields its run id (closed as FAILED on an exception)."""
    exp_id = experiment_id(experiment)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags={RUN_TYPE: "train", **tags}) as run:
        yield run.info.run_id


def log_data_and_config(fingerprint: dict[str, Any], config_dump: dict[str, Any], config_text: str | None) -> None:
    """Log the data fingerprint, the flattened config and code version in the active (parent) run."""
    mlflow.log_params({f"data.{k}": v for k, v in fingerprint.items()})
    flat = _flatten(config_dump)
    # Params are limited in length; the full config goes in as an artifact too.
    mlflow.log_params({f"config.{k}": str(v)[:500] for k, v in flat.items() if not k.startswith("models")})
    mlflow.set_tags({f"code.{k}": v for k, v in code_version().items()})
    mlflow.log_dict(config_dump, "config/config.json")
    if config_text:
        mlflow.log_text(config_text, "config/config.toml")
    mlflow.log_dict(fingerprint, "data/fingerprint.json")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


@dataclass
class ModelLog:
    """Everything one child run records (built by :mod:`nbrisk.training.jobs`)."""

    name: str
    family: str
    params: dict[str, Any]
    pooled: dict[str, float]  # metric name → value, incl. ``_lower``/``_upper``
    per_fold: list[dict[str, float]]  # one dict per outer fold
    extra: dict[str, float]  # optimism-corrected, LOCO summaries, timings
    replicates: dict[str, Any]  # metric → bootstrap replicates; "_meta": resample hash
    tables: dict[str, Any]  # JSON-able tables (calibration deciles, net benefit, LOCO per center)
    figures: dict[str, Any]  # artifact stem → matplotlib Figure
    risk_model: Any | None  # fitted RiskModel (None for the null model: not registered)
    input_example: Any | None = None


def log_model_run(parent_id: str, experiment: str, log: ModelLog, register_as: str | None) -> dict[str, Any]:
    """Create the child run of one model; log and (optionally) register its fitted pipeline.

    Returns ``{"run_id", "version"}`` (version ``None`` when not registered).
    """
    exp_id = experiment_id(experiment)
    tags = {RUN_TYPE: "model", MODEL_NAME_TAG: log.name, FAMILY_TAG: log.family, PARENT_TAG: parent_id}
    version = None
    with mlflow.start_run(experiment_id=exp_id, run_name=log.name, nested=True, tags=tags) as run:
        mlflow.log_params({f"model.{k}": v for k, v in log.params.items()} or {"model.params": "none"})
        mlflow.log_metrics(_clean_metrics({**log.pooled, **log.extra}))
        for step, fold in enumerate(log.per_fold):
            mlflow.log_metrics(_clean_metrics({f"fold_{k}": v for k, v in fold.items()}), step=step)
        mlflow.log_dict(log.replicates, BOOTSTRAP_ARTIFACT)
        for key, table in log.tables.items():
            mlflow.log_dict(table, f"validation/{key}.json")
        with tempfile.TemporaryDirectory() as tmp:
            for stem, fig in log.figures.items():
                for ext in ("png", "svg"):
                    path = Path(tmp) / f"{stem}.{ext}"
                    fig.savefig(path, dpi=90 if ext == "png" else None)
                    mlflow.log_artifact(str(path), artifact_path="plots")
        if log.risk_model is not None:
            from nbrisk.models.pyfunc import log_risk_model

            info = log_risk_model(log.risk_model, log.input_example, name="model", registered_model_name=register_as)
            version = getattr(info, "registered_model_version", None)
            if version is not None and register_as is not None:
                client = MlflowClient()
                for k, v in {
                    MODEL_NAME_TAG: log.name,
                    FAMILY_TAG: log.family,
                    "run_id": run.info.run_id,
                    "synthetic": str(log.risk_model.training_summary.get("synthetic", False)).lower(),
                }.items():
                    client.set_model_version_tag(register_as, str(version), k, v)
        return {"run_id": run.info.run_id, "version": None if version is None else str(version)}


def log_leaderboard(board: list[dict[str, Any]]) -> None:
    """Log the leaderboard table in the active (parent) run."""
    mlflow.log_dict({"leaderboard": board}, "leaderboard.json")


# ----------------------------------------------------------------------------------------------------------------
# registry


def get_alias_version(name: str, alias: str) -> str | None:
    configure()
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def set_alias(name: str, alias: str, version: str) -> None:
    configure()
    MlflowClient().set_registered_model_alias(name, alias, str(version))


def version_info(name: str, version: str) -> dict[str, Any]:
    """Metrics, tags, data fingerprint and bootstrap replicates of a registered version's training run."""
    configure()
    client = MlflowClient()
    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException:
        raise NbriskError(f"no version {version} of registered model {name!r}") from None
    run_id = mv.tags.get("run_id") or mv.run_id
    if not run_id:
        raise NbriskError(f"version {version} of {name!r} has no training run to compare")
    run = client.get_run(run_id)
    parent = run.data.tags.get(PARENT_TAG)
    fingerprint: dict[str, Any] = {}
    if parent:
        fingerprint = {
            k[len("data.") :]: v for k, v in client.get_run(parent).data.params.items() if k.startswith("data.")
        }
    try:
        replicates = mlflow.artifacts.load_dict(f"runs:/{run_id}/{BOOTSTRAP_ARTIFACT}")
    except (MlflowException, OSError):
        replicates = {}
    return {
        "version": str(mv.version),
        "run_id": run_id,
        "metrics": dict(run.data.metrics),
        "tags": dict(mv.tags),
        "fingerprint": fingerprint,
        "replicates": replicates,
        "model_name": mv.tags.get(MODEL_NAME_TAG, run.data.tags.get(MODEL_NAME_TAG, "?")),
    }


# ----------------------------------------------------------------------------------------------------------------
# reading runs back (compare)


def latest_training(experiment: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The most recent finished ``train`` parent run of ``experiment`` and its model child runs.

    Returns ``(parent, children)``; each child ``{"run_id", "name", "family", "metrics", "params", "version"}``.
    """
    exp_id = experiment_id(experiment, create=False)
    if exp_id is None:
        raise NbriskError(f"no MLflow experiment named {experiment!r}; run `nbrisk train` first")
    client = MlflowClient()
    parents = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{RUN_TYPE}` = 'train' and status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not parents:
        raise NbriskError(f"experiment {experiment!r} has no finished training run")
    parent = parents[0]
    children = client.search_runs(
        [exp_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'", max_results=1000
    )
    out = []
    for ch in children:
        out.append(
            {
                "run_id": ch.info.run_id,
                "name": ch.data.tags.get(MODEL_NAME_TAG, ch.info.run_name),
                "family": ch.data.tags.get(FAMILY_TAG, ""),
                "metrics": dict(ch.data.metrics),
                "params": dict(ch.data.params),
                "version": ch.data.tags.get("nbrisk.version"),
            }
        )
    parent_info = {
        "run_id": parent.info.run_id,
        "params": dict(parent.data.params),
        "start_time": parent.info.start_time,
    }
    return parent_info, out


def tag_run(run_id: str, key: str, value: str) -> None:
    MlflowClient().set_tag(run_id, key, value)


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)


def log_benchmark_run(experiment: str, run_name: str, params: dict[str, Any], metrics: dict[str, float]) -> str:
    """One benchmark result (e.g. ``benchmarks/ebmt.py``) as a run of ``experiment``; returns the run id."""
    exp_id = experiment_id(experiment)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags={RUN_TYPE: "benchmark"}) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics(_clean_metrics(metrics))
        return run.info.run_id


# ----------------------------------------------------------------------------------------------------------------
# reading a registered version's training run back (the model report)


def validation_tables(run_id: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The ``validation/<name>.json`` tables a model run logged (calibration deciles, net benefit, ...).

    A table the run did not log is absent from the answer (listed first, so no error is swallowed); a store that
    cannot be read raises :class:`NbriskError`.
    """
    configure()
    client = MlflowClient()
    try:
        logged = {f.path for f in client.list_artifacts(run_id, "validation")}
        return {
            name: mlflow.artifacts.load_dict(f"runs:/{run_id}/validation/{name}.json")
            for name in names
            if f"validation/{name}.json" in logged
        }
    except MlflowException as exc:
        raise NbriskError(f"cannot read the validation tables of run {run_id}: {exc.message}") from None


def training_context(run_id: str) -> dict[str, Any]:
    """The training run around a model run: its parent's params and ``code.*`` tags, and the sibling model runs
    (validated on the same folds) as ``{"run_id", "name", "family", "metrics", "this"}``."""
    configure()
    client = MlflowClient()
    try:
        this = client.get_run(run_id)
        parent = this.data.tags.get(PARENT_TAG)
        if not parent:
            return {"params": {}, "tags": {}, "siblings": []}
        parent_run = client.get_run(parent)
        children = client.search_runs(
            [this.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent}'", max_results=200
        )
    except MlflowException as exc:
        raise NbriskError(f"cannot read the training run of {run_id}: {exc.message}") from None
    return {
        "params": dict(parent_run.data.params),
        "tags": {k: v for k, v in parent_run.data.tags.items() if k.startswith("code.")},
        "siblings": [
            {
                "run_id": ch.info.run_id,
                "name": ch.data.tags.get(MODEL_NAME_TAG, ch.info.run_name),
                "family": ch.data.tags.get(FAMILY_TAG, ""),
                "metrics": dict(ch.data.metrics),
                "this": ch.info.run_id == run_id,
            }
            for ch in children
        ],
    }


def model_aliases(name: str, version: str) -> list[str]:
    """The aliases currently pointing at version ``version`` of registered model ``name``."""
    configure()
    try:
        return list(MlflowClient().get_model_version(name, str(version)).aliases)
    except MlflowException as exc:
        raise NbriskError(f"cannot read version {version} of {name!r}: {exc.message}") from None


def download_model_version(name: str, version: str, dest: Path) -> str:
    """Copy the MLflow model folder of registered ``name``/``version`` to ``dest`` (replaced if present); returns the
    run id that logged it (empty when unknown)."""
    import shutil
    import tempfile

    configure()
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    with tempfile.TemporaryDirectory(prefix="nbrisk-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        shutil.copytree(local, dest)
    return mlflow.MlflowClient().get_model_version(name, version).run_id or ""


def version_run_id(name: str, version: str) -> str | None:
    """The run id that logged version ``version`` of registered model ``name`` (registry metadata only, no
    artifact is downloaded); ``None`` when the version records none."""
    configure()
    try:
        mv = MlflowClient().get_model_version(name, str(version))
    except MlflowException as exc:
        raise NbriskError(f"cannot read version {version} of {name!r}: {exc.message}") from None
    return mv.tags.get("run_id") or mv.run_id or None
