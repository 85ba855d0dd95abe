"""Every kind of patient of the example set gets a two-page PDF (slow: five real WeasyPrint renders).

The five kinds a tumour board reading used: the example patient, a low-risk and a high-risk patient, one with many
missing fields (and an unknown MYCN status) and one in complete remission (its what-if rows); the missing-fields one
also carries a long pseudonymous id, the longest text a record holds.
"""

from __future__ import annotations

import io

import pytest

from nbrisk.features.record import example_record

BASE = example_record(with_outcomes=False)
KINDS = {
    "example": BASE,
    "low_risk": {
        **BASE,
        "disease_phase": "upfront_consolidation",
        "disease_status_at_hsct": "CR",
        "curie_score_at_hsct": 0,
        "bone_marrow_tumor_percent_at_hsct": 0,
        "mrd_at_hsct": "negative",
        "mycn_status": "not_amplified",
        "metastatic_sites_at_diagnosis": 1,
    },
    "high_risk": {
        **BASE,
        "disease_status_at_hsct": "PD",
        "curie_score_at_hsct": 18,
        "mycn_status": "amplified",
        "hct_ci": 4,
        "lansky_score": 60,
        "metastatic_sites_at_diagnosis": 5,
    },
    "many_missing": {
        **BASE,
        "curie_score_at_hsct": None,
        "ldh_at_diagnosis_u_l": None,
        "cd34_dose_1e6_per_kg": None,
        "donor_age_years": None,
        "hct_ci": None,
        "bone_marrow_tumor_percent_at_hsct": None,
        "mycn_status": "unknown",
        "patient_id": "EX-LONG-PSEUDONYMOUS-IDENTIFIER-0001",
    },
    "cr_whatif": {
        **BASE,
        "disease_status_at_hsct": "CR",
        "curie_score_at_hsct": 0,
        "bone_marrow_tumor_percent_at_hsct": 0,
        "mrd_at_hsct": "negative",
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_of_patient_gets_two_pages(clinical_model_with_intervals, kind):
    from pypdf import PdfReader

    from nbrisk.features.record import validate_record
    from nbrisk.reports.render import render_patient_report

    assert validate_record(KINDS[kind])[1] == []
    pdf = render_patient_report(clinical_model_with_intervals, KINDS[kind], "pdf", {"name": "nbrisk", "version": "1"})
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 2
