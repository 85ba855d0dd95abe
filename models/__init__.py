"""Competing-risks estimators (relapse vs TRM), illness–death overall survival, intervals, MLflow wrapper.

All estimators follow the scikit-learn contract and return ``predict_cumulative_incidence(X, times)`` of shape
``(n_samples, 3, n_times)`` (event-free, relapse, TRM: the first three of :class:`nbrisk.core.State`). The model
families are those of the registry :data:`nbrisk.models.families.FAMILIES`. Names are imported lazily.
"""

from importlib import import_module

from nbrisk.models.families import FAMILIES

_LAZY = {
    **FAMILIES,
    "PostRelapseModel": "nbrisk.models.illness_death",
    "IllnessDeathModel": "nbrisk.models.illness_death",
    "BootstrapIntervals": "nbrisk.models.intervals",
    "RiskModel": "nbrisk.models.risk_model",
    "CompetingRisksEstimator": "nbrisk.models._base",
    "CIFCoherenceWarning": "nbrisk.models._base",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nbrisk.models' has no attribute {name!r}")
