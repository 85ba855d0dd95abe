"""Findings of a tumour-board reading of the report: each test fails on the report as it was before the fix.

The model is the clinical Cox specification the configs ship (pre-specified predictors, disease-status effect that
changes at 6 and 12 months), fitted on the session's synthetic cohort.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbrisk.features.record import FIELDS, example_record
from nbrisk.reports.inputs import model_inputs
from nbrisk.reports.record import one_patient
from nbrisk.reports.summary import build_patient_summary, icon_counts
from nbrisk.reports.tripod import CHECKLIST

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clinical_model(synthetic_cohort):
    from nbrisk.features.pipeline import clinical_cox_params
    from nbrisk.models.cox import CauseSpecificCox
    from nbrisk.models.risk_model import fit_risk_model

    return fit_risk_model(
        synthetic_cohort.records,
        synthetic_cohort.outcomes,
        CauseSpecificCox(alpha=10.0, **clinical_cox_params()),
        model_name="cox",
        family="CauseSpecificCox",
        synthetic=True,
        fingerprint="fixture",
        n_interval_bootstrap=0,
        seed=0,
    )


def test_inputs_used_are_derived_from_the_fitted_model(clinical_model):
    used = model_inputs(clinical_model).fields
    assert {"mrd_at_hsct", "ldh_at_diagnosis_u_l", "chr11q_aberration", "alk_status"}.isdisjoint(used)
    assert {"disease_status_at_hsct", "curie_score_at_hsct", "mycn_status", "donor_type"} <= used
    s = build_patient_summary(clinical_model, example_record())
    shown_used = {r.field for g in s.inputs_used for r in g.rows}
    shown_unused = {r.field for g in s.inputs_unused for r in g.rows}
    assert shown_used == set(used) & {f for f, spec in FIELDS.items() if spec.is_predictor}
    assert "mrd_at_hsct" in shown_unused and not shown_used & shown_unused


def test_warnings_concern_only_used_inputs_and_the_real_imputation(clinical_model):
    rec = {**example_record(), "ldh_at_diagnosis_u_l": None, "cd34_dose_1e6_per_kg": None, "donor_age_years": None}
    rec |= {"curie_score_at_hsct": None, "mycn_status": "unknown"}
    s = build_patient_summary(clinical_model, rec)
    text = " ".join(s.warnings)
    assert "LDH" not in text and "CD34" not in text and FIELDS["donor_age_years"].label not in text
    assert "share among training patients with disease status" in text  # not "the training median"
    assert "MYCN" in text and "unknown" in text


def test_icon_array_sums_to_100_and_matches_the_table(clinical_model):
    s = build_patient_summary(clinical_model, example_record())
    assert s.icons.event_free + s.icons.relapse + s.icons.trm == 100
    assert (s.icons.event_free, s.icons.relapse, s.icons.trm) == icon_counts(
        s.key.efs.estimate, s.key.relapse.estimate, s.key.trm.estimate
    )
    assert f"about {s.icons.event_free} would be alive without relapse" in s.plain_language


def test_time_varying_disease_status_is_shown_per_period(clinical_model):
    s = build_patient_summary(clinical_model, example_record())
    status = [d for d in s.drivers if d.key == "disease_status_at_hsct"]
    assert status and all(len(d.periods) == 3 for d in status)
    assert not any("×" in d.label for d in s.drivers)  # no product of fields for a derived predictor


def test_report_command_accepts_the_risk_request_body():
    body = json.loads((REPO / "docs" / "example_request.json").read_text())
    assert (
        one_patient(body)["patient_id"]
        == json.loads((REPO / "docs" / "example_patient.json").read_text())["patient_id"]
    )


def test_tripod_table_has_27_items_with_sub_items_in_order():
    numbers = [int("".join(ch for ch in c.item if ch.isdigit())) for c in CHECKLIST]
    assert sorted(set(numbers)) == list(range(1, 28)) and numbers == sorted(numbers)
    items = {c.item: c for c in CHECKLIST}
    assert "blinding" in items["8c"].topic and "qualifications" in items["8b"].topic
    assert "pre-selection" in items["9a"].topic and {"12f", "12g", "20c", "24"} <= {
        c.item for c in CHECKLIST if c.applies == "E"
    }
