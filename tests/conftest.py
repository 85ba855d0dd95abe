"""Shared, session-scoped fixtures (cheap; each built once per test session).

* ``synthetic_cohort`` — a small synthetic cohort (n = 400, seed 0, preset ``base``): ``.raw`` generator output,
  ``.records`` validated typed records, ``.outcomes`` derived targets (``event``/``time`` in days, …).
* ``risk_model`` — a real fitted :class:`nbrisk.models.risk_model.RiskModel` (cause-specific Cox, ridge alpha 1,
  10 bootstrap refits for intervals) on that cohort; fitted in a few seconds.
* ``mlflow_tracking`` — points MLflow (``MLFLOW_TRACKING_URI``: SQLite) and ``NBRISK_HOME`` at a temporary folder
  for the rest of the session (restored afterwards); never the repository's ``mlruns/``. Returns the tracking URI.
* ``registered_champion`` — trains ``configs/quick.toml`` on the embedded synthetic cohort into that temporary
  MLflow and returns ``"models:/nbrisk@champion"`` (a real registered pyfunc model; ~10–30 s, use from slow tests).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
QUICK_CONFIG = REPO / "configs" / "quick.toml"


@dataclass(frozen=True)
class SyntheticCohortFixture:
    raw: pd.DataFrame  # generator output: records incl. outcome dates (strings/numbers as written)
    records: pd.DataFrame  # validated, typed records (nbrisk.features.record.validate_records)
    outcomes: pd.DataFrame  # nbrisk.features.outcomes.derive_outcomes(records), same row order


@pytest.fixture(scope="session")
def synthetic_cohort() -> SyntheticCohortFixture:
    from nbrisk.features.outcomes import derive_outcomes
    from nbrisk.features.record import validate_records
    from nbrisk.features.synthetic import make_synthetic_cohort

    raw = make_synthetic_cohort(400, seed=0, preset="base")
    records, problems = validate_records(raw, require_outcomes=True, require_center=True)
    assert not problems, problems[:3]
    records = records.reset_index(drop=True)
    return SyntheticCohortFixture(raw=raw, records=records, outcomes=derive_outcomes(records).reset_index(drop=True))


@pytest.fixture(scope="session")
def risk_model(synthetic_cohort):
    from nbrisk.models.cox import CauseSpecificCox
    from nbrisk.models.risk_model import fit_risk_model

    # 10 bootstrap refits keep the fixture at a few seconds; enough for interval *shape* tests, not coverage.
    return fit_risk_model(
        synthetic_cohort.records,
        synthetic_cohort.outcomes,
        CauseSpecificCox(alpha=1.0),
        model_name="cox",
        family="CauseSpecificCox",
        synthetic=True,
        fingerprint="fixture",
        n_interval_bootstrap=10,
        seed=0,
    )


@pytest.fixture(scope="session")
def mlflow_tracking(tmp_path_factory):
    home = tmp_path_factory.mktemp("nbrisk_home")
    uri = f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "NBRISK_HOME", "NBRISK_ARTIFACT_ROOT")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["NBRISK_HOME"] = str(home)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    os.environ.pop("NBRISK_ARTIFACT_ROOT", None)
    (home / "mlruns").mkdir(parents=True, exist_ok=True)
    try:
        yield uri
    finally:
        try:
            import mlflow

            # set_tracking_uri(None) also unsets MLFLOW_TRACKING_URI: reset the globals first, then the environment
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)
        except Exception:  # pragma: no cover - only if mlflow is broken
            pass
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


MLFLOW_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "NBRISK_HOME", "NBRISK_ARTIFACT_ROOT")


@pytest.fixture(autouse=True)
def _mlflow_pointers_restored():
    """Every test leaves MLflow pointed where it found it.

    Training and model loading set MLflow's process-wide URIs and export them (``MLFLOW_TRACKING_URI``,
    ``MLFLOW_REGISTRY_URI``) to the environment; a test that trains against its own store would otherwise leave the
    session's registry pointing at it (or, after ``set_tracking_uri(None)``, at nothing)."""
    saved_env = {k: os.environ.get(k) for k in MLFLOW_KEYS}
    saved = [getattr(sys.modules.get(name), attr, None) for name, attr in zip(*_HOLDERS, strict=True)]
    yield
    for name, attr, value in zip(*_HOLDERS, saved, strict=True):
        module = sys.modules.get(name)
        if module is not None:
            setattr(module, attr, value)
    for k, v in saved_env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


# where MLflow keeps its process-wide URIs: (modules, attributes)
_HOLDERS = (
    ("mlflow.tracking._tracking_service.utils", "mlflow.tracking._model_registry.utils"),
    ("_tracking_uri", "_registry_uri"),
)


@pytest.fixture
def mlflow_scope():
    """Points MLflow at another store for one test; everything is put back after the test (see above)."""

    def point(uri: str, home: Path) -> None:
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.environ["NBRISK_HOME"] = str(home)
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
        os.environ.pop("NBRISK_ARTIFACT_ROOT", None)
        for name, attr in zip(*_HOLDERS, strict=True):
            if name in sys.modules:
                setattr(sys.modules[name], attr, None)

    return point


@pytest.fixture(scope="session")
def registered_champion(mlflow_tracking) -> str:
    from nbrisk.training.jobs import train

    result = train(data=None, config=QUICK_CONFIG, experiment="nbrisk-fixture")
    assert result.champion_version is not None
    return "models:/nbrisk@champion"
