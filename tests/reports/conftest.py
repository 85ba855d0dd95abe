"""Fixtures of the report tests: the pre-specified clinical Cox fitted on the embedded synthetic cohort.

``clinical_model`` serves point estimates only (fast); ``clinical_model_with_intervals`` carries 5 bootstrap refits
so that the report's interval columns, bands and notes are drawn (5 refits are far too few to serve — the configs
refuse that — but enough to lay out the pages)."""

from __future__ import annotations

import pytest


def _fit_clinical(cohort, n_interval_bootstrap: int):
    from nbrisk.features.pipeline import clinical_cox_params
    from nbrisk.models.cox import CauseSpecificCox
    from nbrisk.models.risk_model import fit_risk_model

    return fit_risk_model(
        cohort.records,
        cohort.outcomes,
        CauseSpecificCox(alpha=10.0, **clinical_cox_params()),
        model_name="cox",
        family="CauseSpecificCox",
        synthetic=True,
        fingerprint="fixture",
        n_interval_bootstrap=n_interval_bootstrap,
        seed=0,
    )


@pytest.fixture(scope="session")
def clinical_model(synthetic_cohort):
    return _fit_clinical(synthetic_cohort, 0)


@pytest.fixture(scope="session")
def clinical_model_with_intervals(synthetic_cohort):
    return _fit_clinical(synthetic_cohort, 5)
