"""Findings of a tumour-board reading of the report: each test fails on the report as it was before the fix.

The model is the clinical Cox specification the configs ship (pre-specified predictors, disease-status effect that
changes at 6 and 12 months), fitted on the session's synthetic cohort.
"""

from __future__ import annotations

import json
from pathlib import Path

from nbrisk.features.record import FIELDS, example_record
from nbrisk.reports.inputs import model_inputs
from nbrisk.reports.record import one_patient
from nbrisk.reports.summary import build_patient_summary, icon_counts
from nbrisk.reports.tripod import CHECKLIST

REPO = Path(__file__).resolve().parents[2]


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
    assert "the training share in status" in text  # not "the training median"
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


def test_tripod_table_matches_the_published_checklist_item_by_item():
    """Items, their order and the D / E column as printed in the checklist (BMJ 2024;385:e078378, Table 1,
    version of 11 January 2024), transcribed here independently of the table in ``reports/tripod.py``."""
    development_only = {"9a", "12a", "12b", "12c", "15", "22", "27a", "27b"}
    evaluation_only = {"12f", "12g", "20c", "24"}
    published = (
        "1 2 3a 3b 3c 4 5a 5b 6a 6b 6c 7 8a 8b 8c 9a 9b 9c 10 11 12a 12b 12c 12d 12e 12f 12g 13 14 15 16 17 "
        "18a 18b 18c 18d 18e 18f 19 20a 20b 20c 21 22 23a 23b 24 25 26 27a 27b 27c"
    ).split()
    assert [c.item for c in CHECKLIST] == published and len(published) == 52
    for c in CHECKLIST:
        expected = "D" if c.item in development_only else "E" if c.item in evaluation_only else "D;E"
        assert c.applies == expected, c.item


def test_cr_whatif_lists_only_changes_to_inputs_the_model_uses(clinical_model):
    rec = {**example_record(), "mrd_at_hsct": "positive", "bone_marrow_tumor_percent_at_hsct": 5}
    s = build_patient_summary(clinical_model, rec)
    cr = next(w for w in s.whatifs if w.option.startswith("CR"))
    text = " ".join(cr.changes)
    assert FIELDS["mrd_at_hsct"].label not in text and FIELDS["bone_marrow_tumor_percent_at_hsct"].label not in text
    assert FIELDS["disease_status_at_hsct"].label in text


def test_missing_curie_is_described_with_the_share_the_model_used(clinical_model):
    rec = {**example_record(), "curie_score_at_hsct": None}
    s = build_patient_summary(clinical_model, rec)
    fp = clinical_model.feature_pipeline
    share = fp.curie_over_2_share_[rec["disease_status_at_hsct"]]
    row = next(r for g in s.inputs_used for r in g.rows if r.field == "curie_score_at_hsct")
    assert row.status == "imputed" and f"{100 * share:.0f}% chance of a score > 2" in row.used
    assert "median" not in row.used


def test_derived_age_predictor_is_named_as_the_model_uses_it():
    from nbrisk.reports.drivers import _group_label

    key = "age_at_diagnosis_months+months_diagnosis_to_hsct"
    assert _group_label(key, ["age_at_hsct_over_10y"], FIELDS) == "Age at HSCT over 10 years"


def test_a_large_whatif_puts_its_input_in_the_drivers(clinical_model):
    s = build_patient_summary(clinical_model, example_record())
    cur = next(w for w in s.whatifs if w.current and w.choice == "Disease status at HSCT")
    moved = {
        o
        for w in s.whatifs
        if w.choice == "Disease status at HSCT" and not w.current
        for o in ("relapse", "trm")
        if abs(getattr(w, o).estimate - getattr(cur, o).estimate) >= 0.10
    }
    for outcome in moved:
        assert any(d.outcome == outcome and d.key == "disease_status_at_hsct" for d in s.drivers)


def test_competing_risks_sentence_only_when_the_rising_cause_hazard_did_not_rise():
    import numpy as np

    from nbrisk.reports.whatif import Interval, WhatIf, competing_sentence

    cur = WhatIf("Disease status at HSCT", "PR", True, (), Interval(0.6), Interval(0.18), Interval(0.22))
    cr = WhatIf("Disease status at HSCT", "CR", False, (), Interval(0.3), Interval(0.4), Interval(0.3))
    text = competing_sentence(cur, cr, np.array([-1.0, 0.0]))
    assert "TRM by 2 years rises from 18.0% to 40.0%" in text and "competing risks" in text
    assert competing_sentence(cur, cr, np.array([-1.0, 0.4])) == ""  # its own hazard rises: not a CR effect
    same = WhatIf("Disease status at HSCT", "CR", False, (), Interval(0.55), Interval(0.17), Interval(0.28))
    assert competing_sentence(cur, same, np.array([-0.1, 0.0])) == ""  # nothing moves in opposite directions


def test_figures_share_one_axis_label_carry_the_label_and_draw_no_veil():
    import numpy as np

    from nbrisk.core import SYNTHETIC_LABEL
    from nbrisk.reports import plots

    m = np.arange(0.0, 61.0)
    r = 0.6 * (1 - np.exp(-m / 12))
    t = 0.1 * (1 - np.exp(-m / 4))
    band = lambda x: (x, x * 0.8, np.minimum(x * 1.2, 1))  # noqa: E731
    figs = [
        plots.stacked_incidence_svg(m, band(r), band(t), label=SYNTHETIC_LABEL),
        plots.survival_svg(m, {"os": band(1 - r / 2), "efs": band(1 - r - t)}, label=SYNTHETIC_LABEL),
        plots.incidence_svg(
            m, {"relapse": band(r), "trm": band(t)}, (m, {"relapse": r, "trm": t}), label=SYNTHETIC_LABEL
        ),
    ]
    for svg in figs:
        assert plots.AXIS_LABEL_SHARE in svg and "Probability" not in svg
        assert SYNTHETIC_LABEL in svg  # a cropped figure keeps the label
    assert "opacity: 0.45" not in figs[0]  # no white veil over the interval band
    assert "Training cohort (observed)" in figs[2]


def test_headline_has_os_and_a_risk_group_in_absolute_terms(clinical_model):
    from nbrisk.reports.render import fmt_pct, patient_html

    s = build_patient_summary(clinical_model, example_record())
    html = patient_html(s)
    assert "Alive at 2 years" in html and f'<div class="big">{fmt_pct(s.key.os.estimate)}</div>' in html
    lo, hi = clinical_model.risk_cutoffs
    expected = {"high": f"below {100 * lo:.0f}%", "low": f"{100 * hi:.0f}% or more"}.get(s.risk_group, "–")
    assert "predicted 2-year EFS" in s.risk_group_text and expected in s.risk_group_text


def test_board_blocks_provenance_intervals_similar_patients(clinical_model):
    import dataclasses

    from nbrisk.reports.render import patient_html

    info = {"name": "nbrisk", "version": "4", "alias": "champion", "run_id": "r123"}
    s = build_patient_summary(clinical_model, example_record(), info)
    html = patient_html(s)
    for text in ("Discussed on", "Decision", "Signature", "r123", s.provenance.report_id, s.provenance.code_version):
        assert text in html
    assert "Recorded but not used by this model" in html
    assert len(s.cohort_months) == 61 and s.cohort_curves["relapse"][0] == 0.0
    assert s.similar is not None and s.similar.n >= 10 and f"n = {s.similar.n}" in html
    summary = clinical_model.training_summary
    small = dataclasses.replace(summary, similar_groups=())
    model = type(clinical_model).__new__(type(clinical_model))
    model.__dict__.update(clinical_model.__dict__, training_summary=small)
    s2 = build_patient_summary(model, example_record(), info)
    assert s2.similar is None and "none are shown" in s2.similar_note


def test_interval_note_names_the_method_and_the_refits(synthetic_cohort):
    from nbrisk.models.cox import CauseSpecificCox
    from nbrisk.models.risk_model import fit_risk_model

    rm = fit_risk_model(
        synthetic_cohort.records,
        synthetic_cohort.outcomes,
        CauseSpecificCox(alpha=1.0),
        synthetic=True,
        n_interval_bootstrap=4,
        seed=0,
    )
    s = build_patient_summary(rm, example_record())
    assert "4 refits" in s.interval_note and "bootstrap" in s.interval_note


def test_model_report_items_as_numbered_in_the_checklist(clinical_model):
    from nbrisk.reports.model_summary import build_model_summary
    from nbrisk.reports.render import model_html
    from nbrisk.reports.sources import ModelSources, ResolvedModel

    src = ModelSources(ResolvedModel("models:/nbrisk/1", "nbrisk", "1", None), clinical_model)
    m = build_model_summary(src)
    items = {f.item: f for f in m.filled}
    assert [f.item for f in m.filled] == [c.item for c in CHECKLIST]
    n_used = len(model_inputs(clinical_model).fields)
    assert f"{n_used} of the 34" in items["9a"].text and "34 baseline fields" in items["9b"].text
    assert items["8b"].status == "authors" and items["8c"].status == "authors"
    assert items["20a"].status == "authors" and "n = " in items["20b"].text
    assert "Conditioning" in items["6c"].text and items["13"].status == "filled"
    for item in ("12f", "12g", "20c", "24"):
        assert items[item].status == "na"
    assert len(m.predictors) == n_used  # the predictor table lists what the model uses, not all 34 fields
    assert m.coefficients and all(c.lower <= c.coef <= c.upper for c in m.coefficients)
    html = model_html(m)
    assert "Model specification: coefficients (item 22)" in html


def test_model_report_flags_a_low_calibration_slope(clinical_model):
    import dataclasses

    from nbrisk.core import ValidationMetric
    from nbrisk.reports.model_summary import build_model_summary
    from nbrisk.reports.sources import ModelSources, ResolvedModel

    s = dataclasses.replace(
        clinical_model.training_summary,
        validation_metrics=(
            ValidationMetric("trm", "calibration_slope", 24.0, 0.67, 0.5, 0.85),
            ValidationMetric("trm", "c_index", 24.0, 0.6, 0.55, 0.65),
        ),
    )
    model = type(clinical_model).__new__(type(clinical_model))
    model.__dict__.update(clinical_model.__dict__, training_summary=s)
    m = build_model_summary(ModelSources(ResolvedModel("models:/nbrisk/1", "nbrisk", "1", None), model))
    assert any("TRM calibration slope at 24 months is 0.67" in f for f in m.flags)


def test_a_field_read_through_a_derived_column_is_not_called_a_reference_level(clinical_model):
    rec = {**example_record(), "donor_type": "haploidentical", "kir_ligand_mismatch": "yes"}
    s = build_patient_summary(clinical_model, rec)
    row = next(r for g in s.inputs_used for r in g.rows if r.field == "kir_ligand_mismatch")
    assert row.status == "" and row.used == ""
