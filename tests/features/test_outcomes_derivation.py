"""Outcome derivation: competing-risks, EFS, OS and post-relapse targets, and every impossible sequence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbrisk.core import Cause
from nbrisk.features.outcomes import OUTCOME_COLUMNS, derive_outcomes, outcome_problems
from nbrisk.features.record import CohortValidationError, example_record, validate_record, validate_records

HSCT = "2019-03-14"


def cohort(*outcomes: dict) -> pd.DataFrame:
    """Typed records whose outcome dates are given per patient (hsct date fixed at HSCT)."""
    rows = []
    for i, o in enumerate(outcomes):
        rec = example_record()
        rec.update(patient_id=f"P{i}", date_hsct=HSCT, date_relapse=None, date_death=None, cause_of_death=None)
        rec.update(o)
        rows.append(rec)
    typed, problems = validate_records(pd.DataFrame(rows, dtype=object), require_outcomes=True, require_center=True)
    assert problems == [], problems
    return typed


def test_relapse_trm_censored_by_hand():
    # Day counts by hand from 2019-03-14: 2019-04-13 is day 30, 2019-06-12 day 90, 2020-03-13 day 365.
    typed = cohort(
        dict(
            date_relapse="2019-04-13",
            date_death="2019-06-12",
            cause_of_death="relapse_progression",
            date_last_followup="2019-06-12",
        ),
        dict(date_death="2019-04-13", cause_of_death="transplant_related", date_last_followup="2019-04-13"),
        dict(date_last_followup="2020-03-13"),
        dict(date_relapse="2019-06-12", date_last_followup="2020-03-13"),
    )
    out = derive_outcomes(typed)
    assert list(out.columns) == list(OUTCOME_COLUMNS)
    assert out.index.equals(typed.index)
    assert out["event"].tolist() == [Cause.RELAPSE, Cause.TRM, Cause.CENSORED, Cause.RELAPSE]
    assert out["time"].tolist() == [30.0, 30.0, 365.0, 90.0]
    assert out["efs_event"].tolist() == [1, 1, 0, 1]
    assert out["efs_time"].tolist() == [30.0, 30.0, 365.0, 90.0]
    assert out["os_event"].tolist() == [1, 1, 0, 0]
    assert out["os_time"].tolist() == [90.0, 30.0, 365.0, 365.0]
    np.testing.assert_array_equal(out["relapse_time"], [30.0, np.nan, np.nan, 90.0])
    np.testing.assert_array_equal(out["post_relapse_time"], [60.0, np.nan, np.nan, 275.0])
    assert out["post_relapse_event"].tolist() == [1, 0, 0, 0]
    assert out["event"].dtype.kind == "i" and out["time"].dtype == float


def test_day_zero_counts_as_half_a_day():
    typed = cohort(
        dict(date_death=HSCT, cause_of_death="transplant_related", date_last_followup=HSCT),  # death on day 0
        dict(date_last_followup=HSCT),  # censored on day 0
        dict(
            date_relapse="2019-03-15",
            date_death="2019-03-15",
            cause_of_death="relapse_progression",
            date_last_followup="2019-03-15",
        ),  # death on the day of relapse
    )
    out = derive_outcomes(typed)
    assert out["time"].tolist() == [0.5, 0.5, 1.0]
    assert out["os_time"].tolist() == [0.5, 0.5, 1.0]
    assert out["post_relapse_time"].iat[2] == 0.5 and out["post_relapse_event"].iat[2] == 1
    assert out["event"].tolist() == [Cause.TRM, Cause.CENSORED, Cause.RELAPSE]


def test_other_cause_death_without_relapse_is_trm():
    # The contract defines TRM as death without prior relapse/progression, whatever the recorded cause.
    typed = cohort(
        dict(date_death="2019-05-01", cause_of_death="other", date_last_followup="2019-05-01"),
        dict(date_death="2019-05-01", cause_of_death="unknown", date_last_followup="2019-05-01"),
    )
    assert derive_outcomes(typed)["event"].tolist() == [Cause.TRM, Cause.TRM]


def test_raw_iso_strings_are_accepted():
    raw = pd.DataFrame(
        [
            {
                "date_hsct": HSCT,
                "date_relapse": "",
                "date_death": "",
                "cause_of_death": "",
                "date_last_followup": "2019-04-13",
                "hsct_year": "2019",
            }
        ]
    )
    out = derive_outcomes(raw)
    assert out["event"].iat[0] == Cause.CENSORED and out["time"].iat[0] == 30.0


# Each impossible or incomplete sequence: the outcome fields to set and the fields the problem must name.
IMPOSSIBLE = [
    (dict(date_relapse=HSCT, date_last_followup="2019-06-01"), "date_hsct,date_relapse", "after date_hsct"),
    (dict(date_relapse="2019-01-01", date_last_followup="2019-06-01"), "date_hsct,date_relapse", "after day 0"),
    (
        dict(date_death="2019-03-13", cause_of_death="transplant_related", date_last_followup="2019-03-13"),
        "date_hsct,date_death",
        "on or after date_hsct",
    ),
    (
        dict(
            date_relapse="2019-05-01",
            date_death="2019-04-01",
            cause_of_death="relapse_progression",
            date_last_followup="2019-05-01",
        ),
        "date_relapse,date_death",
        "death before relapse",
    ),
    (
        dict(cause_of_death="transplant_related", date_last_followup="2019-05-01"),
        "cause_of_death,date_death",
        "date_death is missing",
    ),
    (
        dict(date_death="2019-05-01", date_last_followup="2019-05-01"),
        "date_death,cause_of_death",
        "cause_of_death is missing",
    ),
    (
        dict(date_death="2019-05-01", cause_of_death="relapse_progression", date_last_followup="2019-05-01"),
        "cause_of_death,date_relapse",
        "requires a date_relapse",
    ),
    (
        dict(date_death="2019-05-01", cause_of_death="transplant_related", date_last_followup="2019-06-01"),
        "date_last_followup,date_death",
        "equal date_death",
    ),
    (dict(date_last_followup="2019-03-01"), "date_last_followup,date_hsct", "on or after date_hsct"),
    (
        dict(date_relapse="2019-05-01", date_last_followup="2019-04-01"),
        "date_last_followup,date_relapse",
        "on or after date_relapse",
    ),
    (dict(date_hsct="2018-03-14", date_last_followup="2019-04-01"), "date_hsct,hsct_year", "equal hsct_year"),
]


@pytest.mark.parametrize("outcome, fields, fragment", IMPOSSIBLE, ids=[c[1] + ":" + c[2] for c in IMPOSSIBLE])
def test_each_impossible_sequence_is_a_problem(outcome, fields, fragment):
    rec = example_record()
    rec.update(date_hsct=HSCT, date_relapse=None, date_death=None, cause_of_death=None)
    rec.update(outcome)
    _, problems = validate_record(rec, require_outcomes=True, index=7)
    mine = [p for p in problems if p.field == fields]
    assert mine and fragment in mine[0].rule, problems
    assert mine[0].row == 7 and mine[0].patient_id == "EX-0001"
    # derive_outcomes refuses the same data with every problem listed.
    with pytest.raises(CohortValidationError) as info:
        derive_outcomes(pd.DataFrame([rec]))
    assert any(p.field == fields for p in info.value.problems)


def test_valid_sequence_has_no_outcome_problem_and_missing_dates_are_checked_on_request():
    typed = cohort(dict(date_last_followup="2020-01-01"))
    assert outcome_problems(typed) == []
    raw = pd.DataFrame([{"date_hsct": "", "date_last_followup": ""}])
    assert outcome_problems(raw) == []
    assert {p.field for p in outcome_problems(raw, check_missing=True)} == {"date_hsct", "date_last_followup"}
