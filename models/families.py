"""The registry of model families: the competing-risks estimators a training configuration may name.

One entry per family, class name → module. Everything that needs "every family" reads this table: the training
configuration's schema (:class:`nbrisk.training.config.ModelSpec`), the lazy exports of :mod:`nbrisk.models`, and the
common estimator checks (``tests/models/test_common.py``), so a family added here is validated, exported and tested
without another list to keep in step. To add a family: write its estimator (a
:class:`~nbrisk.models._base.CompetingRisksEstimator` in ``models/<family>.py``), add it here, and give it the fast
bootstrap-replicate hook (:meth:`~nbrisk.models._base.CompetingRisksEstimator.replicate_stack`) if its predictions
have a closed form.

Modules are imported only when a family is used (some pull in scikit-survival or xgboost).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Model family (the estimator's class name, as configs spell it) → module defining it.
FAMILIES: dict[str, str] = {
    "AalenJohansen": "nbrisk.models.nonparametric",
    "CauseSpecificCox": "nbrisk.models.cox",
    "FineGray": "nbrisk.models.fine_gray",
    "CauseSpecificForest": "nbrisk.models.forest",
    "CauseSpecificBoosting": "nbrisk.models.boosting",
}


def family_class(family: str) -> type:
    """The estimator class of ``family`` (``ValueError`` naming the known families for an unknown one)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known families: {', '.join(FAMILIES)}")
    return getattr(import_module(FAMILIES[family]), family)


def make_estimator(family: str, params: dict[str, Any] | None = None, random_state: int | None = None):
    """An unfitted estimator of ``family`` with ``params``; ``random_state`` is set when the class takes one and
    ``params`` does not set it."""
    cls = family_class(family)
    params = dict(params or {})
    if random_state is not None and "random_state" in cls().get_params():
        params.setdefault("random_state", random_state)
    return cls(**params)
