"""Reading files: raw CSV text, Parquet, cohorts with provenance, and prediction inputs (CSV / JSON / objects)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from nbrisk.core import Cause, NbriskError
from nbrisk.features.io import Cohort, read_cohort, read_records, read_table
from nbrisk.features.record import OUTCOME_FIELDS, PREDICTOR_FIELDS, CohortValidationError, example_record


def text_row(rec: dict) -> dict:
    return {k: "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in rec.items()}


@pytest.fixture
def cohort_csv(tmp_path):
    rows = []
    for i in range(3):
        rec = text_row(example_record())
        rec["patient_id"] = f"P{i}"
        rows.append(rec)
    rows[1].update(date_relapse="", date_death="", cause_of_death="", date_last_followup="2021-01-01")
    path = tmp_path / "cohort.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_read_table_keeps_raw_text(cohort_csv):
    raw = read_table(cohort_csv)
    assert all(dt == np.dtype(object) for dt in raw.dtypes)
    assert raw["date_relapse"].iat[1] == "" and raw["lansky_score"].iat[0] == "90"


def test_read_table_rejects_missing_and_unknown(tmp_path):
    with pytest.raises(NbriskError, match="file not found"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(NbriskError, match=r"unsupported file type '\.json'"):
        read_table(tmp_path / "x.json")
    (tmp_path / "broken.parquet").write_bytes(b"garbage")
    with pytest.raises(NbriskError, match="cannot read"):
        read_table(tmp_path / "broken.parquet")


def test_read_cohort(cohort_csv):
    cohort = read_cohort(cohort_csv)
    assert isinstance(cohort, Cohort) and cohort.n == 3
    assert list(cohort.records.columns) == ["patient_id", "center_id", *PREDICTOR_FIELDS]
    assert not set(OUTCOME_FIELDS) & set(cohort.records.columns)
    assert cohort.outcomes.index.equals(cohort.records.index)
    assert cohort.y["event"].tolist() == [Cause.RELAPSE, Cause.CENSORED, Cause.RELAPSE]
    assert cohort.fingerprint == hashlib.sha256(cohort_csv.read_bytes()).hexdigest()
    assert cohort.source == str(cohort_csv) and cohort.synthetic is False


def test_read_cohort_synthetic_flag(cohort_csv, tmp_path):
    df = read_table(cohort_csv)
    df["patient_id"] = ["SYN-1", "SYN-2", "SYN-3"]
    path = tmp_path / "syn.csv"
    df.to_csv(path, index=False)
    assert read_cohort(path).synthetic is True


def test_read_cohort_lists_every_problem(cohort_csv, tmp_path):
    df = read_table(cohort_csv)
    df.loc[0, "sex"] = "x"
    df.loc[2, "date_last_followup"] = ""
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    with pytest.raises(CohortValidationError) as info:
        read_cohort(path)
    assert [(p.row, p.field) for p in info.value.problems] == [(1, "sex"), (3, "date_last_followup")]
    assert info.value.exit_code == 1 and str(path) in str(info.value)


def test_read_cohort_center_optional_on_request(cohort_csv, tmp_path):
    df = read_table(cohort_csv).drop(columns=["center_id"])
    path = tmp_path / "nocenter.csv"
    df.to_csv(path, index=False)
    with pytest.raises(CohortValidationError, match="center_id"):
        read_cohort(path)
    assert read_cohort(path, require_center=False).n == 3


def test_read_records_from_every_source(tmp_path, cohort_csv):
    one = example_record(with_outcomes=False)
    two = dict(one, patient_id="B")
    for source in (one, [one, two], {"patients": [one, two]}, pd.DataFrame([one, two], dtype=object)):
        typed = read_records(source)
        assert typed["patient_id"].iloc[0] == "EX-0001" and list(typed.index) == list(range(len(typed)))
    path = tmp_path / "patients.json"
    path.write_text(json.dumps([one, two]))
    assert len(read_records(path)) == 2
    path.write_text(json.dumps(one))
    assert len(read_records(path)) == 1
    typed = read_records(cohort_csv)  # outcome columns are validated, then dropped
    assert not set(OUTCOME_FIELDS) & set(typed.columns) and len(typed) == 3


def test_read_records_problems_use_json_indices_and_csv_rows(tmp_path):
    one = example_record(with_outcomes=False)
    with pytest.raises(CohortValidationError) as info:
        read_records([one, 42, dict(one, patient_id="C", lansky_score=95)])
    assert [(p.row, p.field) for p in info.value.problems] == [(1, "(record)"), (2, "lansky_score")]
    path = tmp_path / "p.csv"
    pd.DataFrame([text_row(dict(one, sex="?"))]).to_csv(path, index=False)
    with pytest.raises(CohortValidationError) as info:
        read_records(path)
    assert info.value.problems[0].row == 1


def test_read_records_input_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(NbriskError, match="invalid JSON"):
        read_records(bad)
    with pytest.raises(NbriskError, match="must be a list of patient objects"):
        read_records({"patients": 3})
    bad.write_text("42")
    with pytest.raises(NbriskError, match="JSON input must be"):
        read_records(bad)
    with pytest.raises(NbriskError, match="no patient records"):
        read_records([])
