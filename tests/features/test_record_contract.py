"""The record contract: every field rule and every consistency rule of docs/patient-record.md has a failing case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbrisk.core import NbriskError
from nbrisk.features.record import (
    FIELDS,
    ID_FIELDS,
    OUTCOME_FIELDS,
    OUTSIDE_INTENDED_USE,
    PREDICTOR_FIELDS,
    CohortValidationError,
    Problem,
    example_record,
    records_frame,
    validate_record,
    validate_records,
)


def as_csv_row(rec: dict) -> dict:
    """What a CSV reader with dtype=str gives: every value as text, missing as empty string."""
    return {k: "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in rec.items()}


def problems_for(**overrides) -> list[Problem]:
    rec = example_record()
    rec.update(overrides)
    return validate_record(rec, require_outcomes=True, require_center=True)[1]


def test_contract_lists_are_in_spec_order_and_partition_fields():
    assert ID_FIELDS == ["patient_id", "center_id"]
    assert PREDICTOR_FIELDS[0] == "sex" and PREDICTOR_FIELDS[-1] == "hsct_year"
    assert len(PREDICTOR_FIELDS) == 34  # docs/patient-record.md lists 34 baseline predictors
    assert OUTCOME_FIELDS == ["date_hsct", "date_relapse", "date_death", "cause_of_death", "date_last_followup"]
    assert list(FIELDS) == ID_FIELDS + PREDICTOR_FIELDS + OUTCOME_FIELDS
    for spec in FIELDS.values():
        assert spec.group in {
            "identification",
            "disease",
            "pre_transplant_status",
            "donor_graft",
            "conditioning",
            "outcome",
        }
        assert spec.label


def test_example_record_is_valid_as_json_and_as_csv_text():
    rec = example_record()
    typed, problems = validate_record(rec, require_outcomes=True, require_center=True)
    assert problems == []
    typed2, problems2 = validate_records(pd.DataFrame([as_csv_row(rec)]), require_outcomes=True, require_center=True)
    assert problems2 == []
    pd.testing.assert_frame_equal(typed, typed2)


def test_canonical_types():
    rec = as_csv_row(example_record())
    rec.update(
        disease_status_at_hsct=" pr ",
        sex="FEMALE",
        bone_marrow_metastasis_at_diagnosis="TRUE",
        ldh_at_diagnosis_u_l="",
        lansky_score="90",
        hct_ci="NA",
    )
    typed, problems = validate_records(pd.DataFrame([rec]), require_outcomes=True, require_center=True)
    assert problems == []
    row = typed.iloc[0]
    assert row["disease_status_at_hsct"] == "PR" and row["sex"] == "female"
    assert row["bone_marrow_metastasis_at_diagnosis"] == 1.0
    assert np.isnan(row["ldh_at_diagnosis_u_l"]) and np.isnan(row["hct_ci"])
    assert row["lansky_score"] == 90.0
    assert typed["lansky_score"].dtype == float and typed["sex"].dtype == object
    assert typed["date_hsct"].dtype == "datetime64[ns]"
    assert list(typed.columns) == list(FIELDS)


@pytest.mark.parametrize(
    "value, expected", [(True, 1.0), (False, 0.0), ("false", 0.0), ("1", 1.0), ("0", 0.0), (1, 1.0)]
)
def test_boolean_inputs(value, expected):
    typed, problems = validate_record(dict(example_record(), bone_marrow_metastasis_at_diagnosis=value))
    assert problems == []
    assert typed["bone_marrow_metastasis_at_diagnosis"].iat[0] == expected


# One bad value per field rule: (field, bad value, a fragment of the rule that must be reported).
FIELD_CASES = [
    ("patient_id", "Jane Doe", "A-Z a-z 0-9"),
    ("patient_id", "x" * 65, "1–64"),
    ("patient_id", "", "required value missing"),
    ("center_id", "", "required value missing"),
    ("sex", "m", "not one of male, female"),
    ("sex", None, "required value missing"),
    ("age_at_diagnosis_months", "abc", "not a number"),
    ("age_at_diagnosis_months", 217, "out of range 0–216"),
    ("age_at_diagnosis_months", -1, "out of range"),
    ("months_diagnosis_to_hsct", 0.5, "out of range 1–180"),
    ("inrg_stage", "L2", OUTSIDE_INTENDED_USE),
    ("inrg_stage", "MS", OUTSIDE_INTENDED_USE),
    ("mycn_status", "", "use 'unknown'"),
    ("mycn_status", "yes", "not one of"),
    ("chr11q_aberration", "lost", "not one of"),
    ("alk_status", "mut", "not one of"),
    ("inpc_histology", "fav", "not one of"),
    ("ldh_at_diagnosis_u_l", 20001, "out of range 50–20000 U/L"),
    ("ldh_at_diagnosis_u_l", "12,5", "not a number"),
    ("metastatic_sites_at_diagnosis", 2.5, "not a whole number"),
    ("metastatic_sites_at_diagnosis", 7, "out of range 1–6"),
    ("metastatic_sites_at_diagnosis", 0, "out of range"),
    ("bone_marrow_metastasis_at_diagnosis", "maybe", "not a boolean"),
    ("bone_marrow_metastasis_at_diagnosis", "", "required value missing"),
    ("disease_phase", "relapse", "not one of"),
    ("prior_auto_hsct", 3, "out of range 0–2"),
    ("prior_auto_hsct", True, "not a number"),
    ("disease_status_at_hsct", "NR", "not one of"),
    ("curie_score_at_hsct", 31, "out of range 0–30"),
    ("curie_score_at_hsct", 1.5, "not a whole number"),
    ("bone_marrow_tumor_percent_at_hsct", 101, "out of range 0–100 %"),
    ("mrd_at_hsct", "pos", "not one of"),
    ("lansky_score", 95, "multiple of 10"),
    ("lansky_score", 0, "out of range 10–100"),
    ("lansky_score", 110, "out of range"),
    ("hct_ci", 30, "out of range 0–29"),
    ("donor_type", "sibling", "not one of"),
    ("hla_mismatches", 6, "out of range 0–5"),
    ("kir_ligand_mismatch", "true", "not one of"),
    ("graft_source", "pbsc", "not one of"),
    ("graft_manipulation", "tcd", "not one of"),
    ("cd34_dose_1e6_per_kg", 0.05, "out of range 0.1–60"),
    ("cd34_dose_1e6_per_kg", "inf", "not a number"),
    ("conditioning_intensity", "mac", "not one of"),
    ("serotherapy", "ATG-F", "not one of"),
    ("gvhd_prophylaxis", "csa", "not one of"),
    ("recipient_cmv", "+", "not one of"),
    ("donor_cmv", "", "use 'unknown'"),
    ("donor_age_years", 81, "out of range 0–80"),
    ("donor_sex", "x", "not one of"),
    ("planned_post_hsct_immunotherapy", "dinutuximab", "not one of"),
    ("hsct_year", 1989, "out of range 1990–2035"),
    ("hsct_year", 2019.5, "not a whole number"),
    ("date_hsct", "14/03/2019", "ISO 8601"),
    ("date_hsct", "2019-02-30", "ISO 8601"),
    ("date_hsct", "", "required value missing"),
    ("date_last_followup", "", "required value missing"),
    ("date_relapse", "soon", "ISO 8601"),
    ("cause_of_death", "gvhd", "not one of"),
]


@pytest.mark.parametrize("field, value, fragment", FIELD_CASES, ids=[f"{f}={v!r}"[:40] for f, v, _ in FIELD_CASES])
def test_each_field_rule(field, value, fragment):
    problems = problems_for(**{field: value})
    mine = [p for p in problems if p.field == field]
    assert mine, f"no problem reported for {field}={value!r}: {problems}"
    assert any(fragment in p.rule for p in mine), mine
    assert all(p.row == 0 for p in mine)


@pytest.mark.parametrize("field, value", [("age_at_diagnosis_months", "abc"), ("lansky_score", 95), ("sex", "m")])
def test_bad_value_also_fails_as_csv_text(field, value):
    rec = as_csv_row(dict(example_record(), **{field: value}))
    _, problems = validate_records(pd.DataFrame([rec]), require_outcomes=True, require_center=True)
    assert [p.field for p in problems] == [field]
    assert problems[0].row == 1  # 1-based data row of a file
    assert problems[0].value == str(value)


CONSISTENCY_CASES = [
    # age at HSCT = (38 + 150) / 12 = 15.7 y is fine; 216 + 120 months = 28 y is not.
    (
        dict(age_at_diagnosis_months=216, months_diagnosis_to_hsct=120),
        "age_at_diagnosis_months,months_diagnosis_to_hsct",
        "0.5–25 years",
    ),
    (
        dict(age_at_diagnosis_months=2, months_diagnosis_to_hsct=3),
        "age_at_diagnosis_months,months_diagnosis_to_hsct",
        OUTSIDE_INTENDED_USE,
    ),
    (
        dict(donor_type="matched_sibling", hla_mismatches=1, graft_source="bone_marrow"),
        "donor_type,hla_mismatches",
        "requires hla_mismatches 0",
    ),
    (
        dict(donor_type="matched_related", hla_mismatches=2, graft_source="bone_marrow"),
        "donor_type,hla_mismatches",
        "requires hla_mismatches 0",
    ),
    (
        dict(donor_type="matched_unrelated", hla_mismatches=1, graft_source="bone_marrow"),
        "donor_type,hla_mismatches",
        "requires hla_mismatches 0",
    ),
    (
        dict(donor_type="mismatched_unrelated", hla_mismatches=0, graft_source="bone_marrow"),
        "donor_type,hla_mismatches",
        "requires hla_mismatches 1–2",
    ),
    (
        dict(donor_type="mismatched_unrelated", hla_mismatches=3, graft_source="bone_marrow"),
        "donor_type,hla_mismatches",
        "requires hla_mismatches 1–2",
    ),
    (dict(donor_type="haploidentical", hla_mismatches=1), "donor_type,hla_mismatches", "requires hla_mismatches 2–5"),
    (
        dict(donor_type="cord_blood", hla_mismatches=4, graft_source="cord_blood"),
        "donor_type,hla_mismatches",
        "requires hla_mismatches 0–3",
    ),
    (
        dict(donor_type="cord_blood", hla_mismatches=1, graft_source="bone_marrow"),
        "donor_type,graft_source",
        "if and only if",
    ),
    (dict(donor_type="haploidentical", graft_source="cord_blood"), "donor_type,graft_source", "if and only if"),
    (dict(disease_phase="upfront_consolidation", prior_auto_hsct=2), "disease_phase,prior_auto_hsct", "≤ 1"),
    (
        dict(disease_status_at_hsct="CR", bone_marrow_tumor_percent_at_hsct=2, curie_score_at_hsct=0),
        "disease_status_at_hsct,bone_marrow_tumor_percent_at_hsct",
        "missing or 0",
    ),
    (
        dict(disease_status_at_hsct="CR", bone_marrow_tumor_percent_at_hsct=0, curie_score_at_hsct=1),
        "disease_status_at_hsct,curie_score_at_hsct",
        "missing or 0",
    ),
]


@pytest.mark.parametrize("overrides, fields, fragment", CONSISTENCY_CASES)
def test_each_consistency_rule_names_its_fields(overrides, fields, fragment):
    problems = problems_for(**overrides)
    assert [p.field for p in problems] == [fields], problems
    assert fragment in problems[0].rule
    for f in fields.split(","):
        assert f in problems[0].value  # the values of every field involved are shown


@pytest.mark.parametrize(
    "overrides",
    [
        dict(donor_type="cord_blood", hla_mismatches=0, graft_source="cord_blood"),
        dict(donor_type="cord_blood", hla_mismatches=3, graft_source="cord_blood"),
        dict(donor_type="haploidentical", hla_mismatches=5),
        dict(donor_type="mismatched_unrelated", hla_mismatches=2, graft_source="peripheral_blood"),
        dict(disease_status_at_hsct="CR", bone_marrow_tumor_percent_at_hsct=None, curie_score_at_hsct=0),
        dict(disease_phase="upfront_consolidation", prior_auto_hsct=1),
        dict(age_at_diagnosis_months=0, months_diagnosis_to_hsct=6),  # exactly 0.5 y: inside the intended use
    ],
)
def test_consistency_boundaries_are_valid(overrides):
    assert problems_for(**overrides) == []


def test_bad_value_is_reported_once_not_again_as_inconsistency():
    problems = problems_for(hla_mismatches="two")
    assert [(p.field, p.rule) for p in problems] == [("hla_mismatches", "not a number")]


def test_unknown_and_missing_columns_are_file_level_problems():
    rec = as_csv_row(example_record())
    rec["donor_sexx"] = rec.pop("donor_sex")
    del rec["lansky_score"]
    _, problems = validate_records(pd.DataFrame([rec]), require_outcomes=True, require_center=True)
    by_field = {p.field: p for p in problems}
    assert by_field["donor_sexx"].row is None and "did you mean 'donor_sex'" in by_field["donor_sexx"].rule
    assert by_field["donor_sex"].rule == "required field missing"
    assert by_field["lansky_score"].rule == "required field missing"
    assert len(problems) == 3


def test_optional_columns_may_be_absent_and_center_outcomes_depend_on_flags():
    rec = example_record(with_outcomes=False)
    for f in ("ldh_at_diagnosis_u_l", "curie_score_at_hsct", "center_id"):
        del rec[f]
    typed, problems = validate_record(rec)
    assert problems == []
    assert "date_hsct" not in typed.columns and typed["center_id"].iat[0] is None
    _, problems = validate_record(rec, require_center=True, require_outcomes=True)
    assert {p.field for p in problems} == {"center_id", "date_hsct", "date_last_followup"}


def test_duplicate_patient_ids_are_reported_on_every_copy():
    rows = [as_csv_row(example_record()) for _ in range(3)]
    rows[1]["patient_id"] = "OTHER"
    _, problems = validate_records(pd.DataFrame(rows), require_outcomes=True, require_center=True)
    assert [(p.row, p.field) for p in problems] == [(1, "patient_id"), (3, "patient_id")]
    assert "duplicate" in problems[1].rule and "row 1" in problems[1].rule


def test_every_problem_of_a_table_is_collected_in_row_order():
    rows = [as_csv_row(example_record()) for _ in range(4)]
    for i, r in enumerate(rows):
        r["patient_id"] = f"P{i}"
    rows[0]["sex"] = "x"
    rows[2]["lansky_score"] = "abc"
    rows[2]["hct_ci"] = "-1"
    rows[3]["donor_type"] = "matched_sibling"
    _, problems = validate_records(pd.DataFrame(rows), require_outcomes=True, require_center=True)
    assert [(p.row, p.patient_id, p.field) for p in problems] == [
        (1, "P0", "sex"),
        (3, "P2", "lansky_score"),
        (3, "P2", "hct_ci"),
        (4, "P3", "donor_type,hla_mismatches"),
    ]


def test_json_list_rows_are_indices_and_non_objects_are_problems():
    objs = [example_record(False), "not a record", dict(example_record(False), patient_id="B", sex=3)]
    frame, pre = records_frame(objs)
    _, problems = validate_records(frame, require_outcomes=False, require_center=False, first_row=0)
    assert [(p.row, p.field) for p in pre] == [(1, "(record)")]
    assert (2, "sex") in [(p.row, p.field) for p in problems]


def test_validate_record_non_mapping():
    _, problems = validate_record(["a"], index=4)
    assert problems[0].row == 4 and problems[0].field == "(record)"


def test_cohort_validation_error_is_a_user_error_with_exit_code_1():
    problems = problems_for(sex="x", lansky_score=95)
    err = CohortValidationError(problems, source="cohort.csv")
    assert isinstance(err, NbriskError) and err.exit_code == 1
    assert err.problems == problems
    assert str(err).startswith("2 problem(s) in cohort.csv affecting 1 row(s)")


def test_parquet_like_typed_columns():
    """Typed columns (floats with NaN, real booleans, datetimes) validate like their text."""
    rec = example_record()
    df = pd.DataFrame([rec, dict(rec, patient_id="B", ldh_at_diagnosis_u_l=None)])
    for f in ("date_hsct", "date_relapse", "date_death", "date_last_followup"):
        df[f] = pd.to_datetime(df[f])
    df["ldh_at_diagnosis_u_l"] = df["ldh_at_diagnosis_u_l"].astype(float)
    df["bone_marrow_metastasis_at_diagnosis"] = df["bone_marrow_metastasis_at_diagnosis"].astype(bool)
    df["hsct_year"] = df["hsct_year"].astype("Int64")
    typed, problems = validate_records(df, require_outcomes=True, require_center=True)
    assert problems == []
    assert np.isnan(typed["ldh_at_diagnosis_u_l"].iat[1])
    assert typed["date_hsct"].iat[0] == pd.Timestamp("2019-03-14")


def test_booleans_in_a_number_column_are_type_errors():
    df = pd.DataFrame([dict(example_record(), hct_ci=True)], dtype=object)
    _, problems = validate_records(df, require_outcomes=True, require_center=True)
    assert [(p.field, p.rule) for p in problems] == [("hct_ci", "not a number")]
