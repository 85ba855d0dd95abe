"""The MLflow wrapper of the whole fitted pipeline (:class:`nbrisk.models.risk_model.RiskModel`).

Each registered version of the MLflow model ``nbrisk`` is a custom ``mlflow.pyfunc`` model whose only artifact is the
pickled :class:`RiskModel` (feature pipeline + relapse/TRM model + post-relapse model + risk-group cut-offs). It is
pickled with cloudpickle rather than logged with ``mlflow.sklearn``/skops, because skops refuses scikit-survival
classes and the object is not a single scikit-learn estimator anyway.

Two ways to load it:

* ``mlflow.pyfunc.load_model(uri).predict(records_df, params={"horizons_months": [12, 24]})`` → a long DataFrame
  (one row per patient and horizon; the columns of ``nbrisk predict``), for MLflow tooling;
* :func:`load_risk_model` (the fast path used by the service and the reports) → the :class:`RiskModel` itself,
  cached per resolved model version.

Only this module and :mod:`nbrisk.training.tracking` import MLflow.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
from mlflow.types.schema import AnyType

from nbrisk.core import DEFAULT_HORIZONS_MONTHS, NbriskError, first_line

#: Name of the pickled RiskModel inside the MLflow model's artifacts.
ARTIFACT_KEY = "risk_model"
ARTIFACT_FILE = "risk_model.pkl"

#: Output columns of ``predict`` (and of ``nbrisk predict``), in order.
OUTPUT_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "horizon_months",
    *(f"{c}{s}" for c in ("relapse", "trm", "efs", "os") for s in ("", "_lower", "_upper")),
    "risk_group",
)


class NbriskPyfunc(PythonModel):
    """``mlflow.pyfunc`` model holding a :class:`RiskModel` (loaded from the ``risk_model`` artifact)."""

    def load_context(self, context) -> None:
        self.risk_model = _unpickle(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Score patient records.

        Parameters
        ----------
        model_input : DataFrame of patient records (the record contract; outcome columns are ignored).
        params : ``{"horizons_months": [...]}`` months after HSCT (default 12, 24, 36, 60).

        Returns
        -------
        Long DataFrame, one row per patient and horizon, columns :data:`OUTPUT_COLUMNS`; ``*_lower``/``*_upper``
        are NaN when the model gives no interval (never a fake one).
        """
        from nbrisk.models.risk_model import validate_for_prediction

        horizons = (params or {}).get("horizons_months") or list(DEFAULT_HORIZONS_MONTHS)
        records = validate_for_prediction(pd.DataFrame(model_input))
        return self.risk_model.predict_frame(records, horizons)


# ----------------------------------------------------------------------------------------------------------------
# logging


def model_signature(input_example: pd.DataFrame) -> ModelSignature:
    """Signature from the record contract: column names, required/optional, enums and ids as strings.

    Number and boolean fields are declared ``Any``: MLflow refuses to convert int64 to float64 and a CSV gives
    ints for whole numbers, NaN floats for missing values and sometimes ``"true"`` strings for booleans; the record
    contract (:func:`nbrisk.features.io.read_records`, run by :meth:`NbriskPyfunc.predict`) checks those values
    with clearer messages than a schema error would.
    """
    from nbrisk.features.record import FIELDS

    cols: list[ColSpec | TensorSpec] = []
    for name in input_example.columns:
        spec = FIELDS.get(name)
        kind = _field_kind(spec, input_example[name])
        required = not _field_optional(spec, name)
        cols.append(ColSpec(kind, name, required=required))
    outputs: list[ColSpec | TensorSpec] = [ColSpec("string", "patient_id"), ColSpec("double", "horizon_months")]
    outputs += [ColSpec("double", c) for c in OUTPUT_COLUMNS[2:-1]] + [ColSpec("string", "risk_group")]
    params = ParamSchema([ParamSpec("horizons_months", "double", list(map(float, DEFAULT_HORIZONS_MONTHS)), (-1,))])
    return ModelSignature(inputs=Schema(cols), outputs=Schema(outputs), params=params)


def _field_kind(spec: Any, column: pd.Series):
    kind = getattr(spec, "kind", None)
    if kind in ("enum", "string") and not _field_optional(spec, column.name):
        return "string"
    return AnyType()


def _field_optional(spec: Any, name: str) -> bool:
    """A column MLflow must not insist on: not required by the contract, or allowed to be missing."""
    if spec is None:
        return True
    return (not spec.required) or spec.nullable


def log_risk_model(
    risk_model,
    input_example: pd.DataFrame,
    name: str = "model",
    registered_model_name: str | None = None,
    workdir: Path | None = None,
) -> Any:
    """Log ``risk_model`` as an MLflow pyfunc model in the active run; optionally register it.

    ``input_example`` must be synthetic records (never real patients: MLflow stores it in clear text).
    Returns MLflow's ``ModelInfo`` (``registered_model_version`` is set when registered).
    """
    import tempfile

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / ARTIFACT_FILE
        with path.open("wb") as fh:
            cloudpickle.dump(risk_model, fh)
        example = input_example.reset_index(drop=True)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=NbriskPyfunc(),
            artifacts={ARTIFACT_KEY: str(path)},
            signature=model_signature(example),
            input_example=example,
            registered_model_name=registered_model_name,
            pip_requirements=_requirements(),
        )


def _requirements() -> list[str]:
    """Pinned runtime requirements (exact pins for everything whose pickles must load later)."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in ("scikit-learn", "scikit-survival", "xgboost", "numpy", "pandas", "scipy", "cloudpickle"):
        try:
            reqs.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:  # pragma: no cover
            continue
    return reqs


# ----------------------------------------------------------------------------------------------------------------
# loading (fast path)

_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()


def resolve_model_version(uri: str) -> tuple[str, str | None]:
    """Resolve ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` to ``(models:/NAME/VERSION, VERSION)``.

    Other URIs (``runs:/``, ``models:/m-<id>``, local paths) are immutable and returned as they are.
    """
    from nbrisk.training.tracking import parse_models_uri

    ref = parse_models_uri(uri)
    if ref is None:
        pin = read_pin(uri)
        return uri, (pin["version"] if pin else None)
    if ref.alias is None and ref.version is None:
        return uri, None
    client = mlflow.MlflowClient()
    try:
        if ref.alias is not None:
            mv = client.get_model_version_by_alias(ref.name, ref.alias)
        else:
            assert ref.version is not None  # one of alias / version is set (checked above)
            mv = client.get_model_version(ref.name, ref.version)
    except mlflow.exceptions.MlflowException as exc:
        raise NbriskError(f"model not found: {uri} ({first_line(exc)})") from None
    return f"models:/{ref.name}/{mv.version}", str(mv.version)


#: Written by ``nbrisk bento build`` into the model folder it copies into a Bento: which registered version it is.
PIN_FILE = "nbrisk-pin.json"


def read_pin(model_dir: str) -> dict[str, str] | None:
    """The pin of a model folder copied into a Bento (``{"name", "version", "source_uri", "run_id"}``), or None
    when ``model_dir`` is not such a folder."""
    path = Path(model_dir) / PIN_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def load_risk_model(uri: str | None = None):
    """Return the :class:`RiskModel` behind an MLflow model URI (default: settings' ``models:/nbrisk@champion``).

    Downloads only the pickled artifact and unpickles it; the result is cached per resolved version, so moving an
    alias is picked up on the next call while a fixed version is loaded once.
    """
    from nbrisk.settings import get_settings
    from nbrisk.training import tracking

    settings = get_settings()
    tracking.configure()
    uri = uri or settings.model_uri
    resolved, _ = resolve_model_version(uri)
    key = f"{settings.tracking_uri}|{resolved}"
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"{resolved.rstrip('/')}/artifacts/{ARTIFACT_FILE}")
    except mlflow.exceptions.MlflowException as exc:
        raise NbriskError(f"cannot load model {uri}: {first_line(exc)}") from None
    except OSError as exc:
        raise NbriskError(f"cannot load model {uri}: {exc}") from None
    model = _unpickle(Path(local))
    with _CACHE_LOCK:
        _CACHE[key] = model
    return model


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _unpickle(path: Path):
    with path.open("rb") as fh:
        return cloudpickle.load(fh)


__all__ = [
    "OUTPUT_COLUMNS",
    "NbriskPyfunc",
    "clear_cache",
    "load_risk_model",
    "log_risk_model",
    "model_signature",
    "read_pin",
    "resolve_model_version",
]
