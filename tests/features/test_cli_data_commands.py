"""`nbrisk data synth | validate | describe` through the real CLI (typer's CliRunner on nbrisk.cli.app)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sksurv.nonparametric import cumulative_incidence_competing_risks
from typer.testing import CliRunner

from nbrisk.cli import app
from nbrisk.core import SYNTHETIC_LABEL, Cause, months_to_days
from nbrisk.features.commands import describe_cohort
from nbrisk.features.io import read_cohort, read_table
from nbrisk.features.record import example_record, validate_records

# Wide virtual terminal: one problem per output line, nothing folded.
runner = CliRunner(env={"COLUMNS": "400"})


def run(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "cohort.csv"
    result = run("data", "synth", "--n", "200", "--seed", "5", "--out", str(path))
    assert result.exit_code == 0, result.output
    return path


def test_synth_writes_a_labelled_valid_reproducible_file(synthetic_csv, tmp_path):
    assert (
        SYNTHETIC_LABEL
        in run("data", "synth", "--n", "200", "--seed", "5", "--out", str(tmp_path / "again.csv")).output
    )
    assert (tmp_path / "again.csv").read_bytes() == synthetic_csv.read_bytes()  # same seed, same bytes
    result = run("data", "validate", str(synthetic_csv))
    assert result.exit_code == 0, result.output
    assert "200 record(s)" in result.output and SYNTHETIC_LABEL in result.output


def test_synth_parquet_matches_csv(synthetic_csv, tmp_path):
    pq = tmp_path / "cohort.parquet"
    assert run("data", "synth", "--n", "200", "--seed", "5", "--out", str(pq)).exit_code == 0
    a, b = read_cohort(synthetic_csv), read_cohort(pq)
    pd.testing.assert_frame_equal(a.records, b.records)
    pd.testing.assert_frame_equal(a.outcomes, b.outcomes)
    assert a.synthetic and b.synthetic


@pytest.mark.parametrize(
    "args, message",
    [
        (("data", "synth", "--n", "5", "--out", "cohort.txt"), "unsupported output type '.txt'"),
        (("data", "synth", "--n", "5", "--preset", "utopia", "--out", "c.csv"), "unknown preset 'utopia'"),
        (("data", "validate", "does-not-exist.csv"), "file not found"),
        (("data", "validate", "cohort.xlsx"), "file not found"),
        (("data", "describe", "does-not-exist.csv"), "file not found"),
    ],
)
def test_user_mistakes_are_one_line_errors(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_unsupported_extension_of_an_existing_file(tmp_path):
    path = tmp_path / "cohort.xlsx"
    path.write_bytes(b"not a spreadsheet")
    result = run("data", "validate", str(path))
    assert result.exit_code == 2 and "unsupported file type '.xlsx'" in result.output


def _text_row(rec: dict) -> dict:
    return {k: "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in rec.items()}


# Every kind of bad row: (changes to a valid record, the field the report must name).
BAD_ROWS = [
    ({"age_at_diagnosis_months": "abc"}, "age_at_diagnosis_months"),  # type error
    ({"ldh_at_diagnosis_u_l": "25000"}, "ldh_at_diagnosis_u_l"),  # range
    ({"mycn_status": "Amplified!"}, "mycn_status"),  # vocabulary
    ({"metastatic_sites_at_diagnosis": "2.5"}, "metastatic_sites_at_diagnosis"),  # integer
    ({"lansky_score": "85"}, "lansky_score"),  # multiple of 10
    ({"patient_id": "John Smith"}, "patient_id"),  # id pattern
    ({"sex": ""}, "sex"),  # required value missing
    ({"mrd_at_hsct": ""}, "mrd_at_hsct"),  # use 'unknown'
    ({"bone_marrow_metastasis_at_diagnosis": "yes"}, "bone_marrow_metastasis_at_diagnosis"),  # boolean
    ({"inrg_stage": "L2"}, "inrg_stage"),  # intended use
    (
        {"age_at_diagnosis_months": "200", "months_diagnosis_to_hsct": "120"},
        "age_at_diagnosis_months,months_diagnosis_to_hsct",
    ),  # age at HSCT > 25 y
    ({"hla_mismatches": "1"}, "donor_type,hla_mismatches"),  # donor ↔ HLA
    ({"graft_source": "cord_blood"}, "donor_type,graft_source"),  # cord iff cord
    ({"disease_phase": "upfront_consolidation", "prior_auto_hsct": "2"}, "disease_phase,prior_auto_hsct"),
    ({"disease_status_at_hsct": "CR"}, "disease_status_at_hsct,curie_score_at_hsct"),  # CR with Curie 4
    ({"date_hsct": "2019-13-01"}, "date_hsct"),  # bad date
    ({"date_hsct": "2018-03-14"}, "date_hsct,hsct_year"),  # year ≠ hsct_year
    ({"date_relapse": "2019-03-01"}, "date_hsct,date_relapse"),  # relapse before HSCT
    ({"date_death": "2019-10-01", "date_last_followup": "2019-10-01"}, "date_relapse,date_death"),  # death < relapse
    ({"cause_of_death": ""}, "date_death,cause_of_death"),  # death without cause
    ({"date_last_followup": "2020-07-01"}, "date_last_followup,date_death"),  # follow-up ≠ death
    ({"date_death": "", "cause_of_death": "relapse_progression"}, "cause_of_death,date_death"),
    ({"center_id": ""}, "center_id"),  # center required
]


@pytest.fixture
def bad_csv(tmp_path):
    rows = []
    for i, (changes, _) in enumerate(BAD_ROWS):
        rec = _text_row(example_record())
        rec["patient_id"] = f"P{i:03d}"
        rec.update(changes)
        rows.append(rec)
    dup = _text_row(example_record())
    dup["patient_id"] = "P000"  # duplicate of the first row's id
    rows.append(dup)
    df = pd.DataFrame(rows)
    df["favourite_colour"] = "blue"  # unknown column
    df = df.drop(columns=["serotherapy"])  # missing required column
    path = tmp_path / "bad_rows.csv"
    df.to_csv(path, index=False)
    return path


def test_validate_reports_every_problem_in_one_table(bad_csv):
    result = run("data", "validate", str(bad_csv))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    for i, (_, field) in enumerate(BAD_ROWS):
        row = str(i + 1)
        assert any(f" {row} " in ln and f" {field} " in ln for ln in lines), f"row {row} {field} not reported"
    assert any(" favourite_colour " in ln and "unknown field" in ln for ln in lines)
    assert any(" serotherapy " in ln and "required field missing" in ln for ln in lines)
    assert any(f" {len(BAD_ROWS) + 1} " in ln and "duplicate patient_id" in ln for ln in lines)
    # The same count as the library reports, in the summary line.
    _, problems = validate_records(read_table(bad_csv), require_outcomes=True, require_center=True)
    n_rows = len({p.row for p in problems if p.row is not None})
    assert f"{len(problems)} problem(s) in {n_rows} row(s) of {len(BAD_ROWS) + 1}" in result.output
    # Every data row is bad (the duplicate's first copy too), so every row must appear.
    assert n_rows == len(BAD_ROWS) + 1


def test_prediction_file_without_outcomes_is_validated_as_prediction_records(tmp_path):
    path = tmp_path / "patients.csv"
    pd.DataFrame([_text_row(example_record(with_outcomes=False))]).drop(columns=["center_id"]).to_csv(path, index=False)
    result = run("data", "validate", str(path))
    assert result.exit_code == 0 and "prediction records" in result.output
    assert SYNTHETIC_LABEL not in result.output  # EX- ids are not synthetic-generator ids


def test_describe_prints_table1_events_and_cif(synthetic_csv):
    result = run("data", "describe", str(synthetic_csv))
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.count(SYNTHETIC_LABEL) == 2  # top and bottom
    for text in (
        "Table 1",
        "Donor type",
        "haploidentical",
        "Events (competing risks)",
        "Cumulative incidence",
        "transplant-related mortality",
        "Median follow-up",
    ):
        assert text in out
    cohort = read_cohort(synthetic_csv)
    summary = describe_cohort(cohort.records, cohort.outcomes)
    first = summary["cif"]["relapse"][0]
    assert f"{100 * first['estimate']:.1f}%" in out


def test_describe_numbers_against_independent_references(synthetic_csv):
    cohort = read_cohort(synthetic_csv)
    summary = describe_cohort(cohort.records, cohort.outcomes)
    n = cohort.n
    # Table 1: counts of every enum add up to n; medians are numpy's.
    by_field: dict[str, int] = {}
    for row in summary["table1"]:
        if row["level"] is not None:
            by_field[row["field"]] = by_field.get(row["field"], 0) + row["count"]
    assert set(by_field.values()) == {n}
    ev = cohort.outcomes["event"]
    assert summary["events"]["relapse"] == int((ev == Cause.RELAPSE).sum())
    assert summary["events"]["censored"] + summary["events"]["relapse"] + summary["events"]["trm"] == n
    # Aalen–Johansen CIF against scikit-survival's implementation of the same estimator: the same arithmetic on
    # the same data, so agreement to 1e-10 (floating-point summation order only).
    time = cohort.outcomes["time"].to_numpy()
    event = ev.to_numpy()
    grid, cif = cumulative_incidence_competing_risks(event, time)
    for key, k in (("relapse", 1), ("trm", 2)):
        for item in summary["cif"][key]:
            t = float(months_to_days(12 * item["years"]))
            if t > time.max():
                assert np.isnan(item["estimate"])
                continue
            ref = cif[k][np.searchsorted(grid, t, side="right") - 1]
            assert item["estimate"] == pytest.approx(ref, abs=1e-10)
            assert item["lower"] <= item["estimate"] <= item["upper"]


def test_describe_refuses_an_invalid_file_in_one_line(bad_csv):
    result = run("data", "describe", str(bad_csv))
    assert result.exit_code == 1
    assert "problem(s)" in result.output and "nbrisk data validate" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_validate_json_patient_files(tmp_path):
    good = tmp_path / "patient.json"
    good.write_text(json.dumps(example_record(with_outcomes=False)))
    result = run("data", "validate", str(good))
    assert result.exit_code == 0 and "1 record(s)" in result.output
    bad = tmp_path / "patients.json"
    bad.write_text(json.dumps([example_record(False), "oops", dict(example_record(False), patient_id="B", sex="?")]))
    result = run("data", "validate", str(bad))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(" 1 " in ln and "(record)" in ln for ln in lines)
    assert any(" 2 " in ln and " sex " in ln for ln in lines)
    assert "2 problem(s) in 2 row(s) of 3" in result.output  # no noise for the non-object entry


def test_empty_files_are_refused(tmp_path):
    header_only = tmp_path / "empty.csv"
    header_only.write_text(",".join(example_record().keys()) + "\n")
    result = run("data", "validate", str(header_only))
    assert result.exit_code == 1 and "no patient records" in result.output
    result = run("data", "describe", str(header_only))
    assert result.exit_code == 1 and "no patient records" in result.output
    zero_bytes = tmp_path / "zero.csv"
    zero_bytes.write_text("")
    result = run("data", "validate", str(zero_bytes))
    assert result.exit_code == 2 and "cannot read" in result.output
