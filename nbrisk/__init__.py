"""nbrisk: competing-risks prognostic models (relapse vs transplant-related mortality) for children and young
adults with stage 4/M neuroblastoma who receive an allogeneic stem cell transplant.

The import root of the project. Subpackages: :mod:`nbrisk.features` (record contract, outcomes, feature pipeline,
synthetic cohort), :mod:`nbrisk.models` (estimators), :mod:`nbrisk.training` (metrics, validation, MLflow jobs),
:mod:`nbrisk.serving` (HTTP service), :mod:`nbrisk.reports` (HTML/PDF reports), :mod:`nbrisk.configs` (shipped
training configs). The names below are the shared vocabulary every subpackage speaks (:mod:`nbrisk.core`).
"""

from importlib.metadata import PackageNotFoundError, version

from nbrisk.core import (
    DAYS_PER_MONTH,
    DEFAULT_HORIZONS_MONTHS,
    SYNTHETIC_LABEL,
    Band,
    Cause,
    NbriskError,
    RiskCurves,
    months_to_days,
)

try:
    __version__: str = version("nbrisk")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "DAYS_PER_MONTH",
    "DEFAULT_HORIZONS_MONTHS",
    "SYNTHETIC_LABEL",
    "Band",
    "Cause",
    "NbriskError",
    "RiskCurves",
    "__version__",
    "months_to_days",
]
