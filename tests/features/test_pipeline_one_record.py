"""The one-record feature transform (plain Python) against the column code, bit for bit.

The HTTP service's one-patient requests take :meth:`RecordFeatures.transform_record` and
:meth:`RecordFeatures.record_warnings` (through ``transform`` / ``input_warnings`` of one typed record); batches and
DataFrames take the column code. Both must give the same predictors to the last bit (then the model cannot tell
them apart) and the same warnings, for every kind of record: generated ones of every synthetic preset, records with
each optional value missing, each pipeline option (standardised, splines, center effects), and unseen categories.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbrisk.features.pipeline import RecordFeatures, UnseenCategoryError, make_feature_pipeline
from nbrisk.features.record import (
    FIELDS,
    OUTCOME_FIELDS,
    PREDICTOR_FIELDS,
    example_record,
    fast_validate,
    validate_columns,
    validate_records,
)
from nbrisk.features.synthetic import make_synthetic_cohort
from nbrisk.serving.predictor import raw_columns

# derandomize: the same examples on every run (no flaky tests); deadline off: the shared 2-core machine is noisy.
PROPS = settings(derandomize=True, deadline=None, max_examples=100)
NULLABLE = [f for f in PREDICTOR_FIELDS if FIELDS[f].nullable]


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    raw = make_synthetic_cohort(500, seed=21, preset="base")
    typed, problems = validate_records(raw, require_outcomes=True, require_center=True)
    assert problems == []
    return typed


@pytest.fixture(scope="module")
def pipelines(training) -> dict[str, RecordFeatures]:
    return {
        "default": make_feature_pipeline().fit(training),
        "standardized": make_feature_pipeline(standardize=True).fit(training),
        "splines+centers": make_feature_pipeline(splines=True, center_effects=True).fit(training),
    }


@pytest.fixture(scope="module")
def records() -> list[dict]:
    """JSON records (as a client sends them) of every synthetic preset, outcome fields removed."""
    out = []
    for preset, seed in (("base", 1), ("historical", 2), ("optimistic", 3)):
        raw = make_synthetic_cohort(80, seed=seed, preset=preset)
        for rec in json.loads(raw.to_json(orient="records")):
            out.append({k: v for k, v in rec.items() if k not in OUTCOME_FIELDS})
    return out


def typed_one(rec: dict) -> dict[str, np.ndarray]:
    """The service's typed columns of one record: ``fast_validate``, or ``validate_columns`` when it defers."""
    typed = fast_validate([rec])
    if typed is None:
        typed, problems = validate_columns(raw_columns([rec]), 1)
        assert problems == [], problems
    return typed


def column_code(pipe: RecordFeatures, rec: dict) -> tuple[np.ndarray, list[str]]:
    """The column code's row and warnings for ``rec`` (a one-row DataFrame never takes the one-record path)."""
    frame = pd.DataFrame({k: v for k, v in typed_one(rec).items()})
    return pipe.transform(frame).to_numpy()[0], pipe.input_warnings(frame)[0]


def assert_same(pipe: RecordFeatures, rec: dict) -> None:
    typed = typed_one(rec)
    want_x, want_w = column_code(pipe, rec)
    got = pipe.transform_record({k: v[0] for k, v in typed.items()})
    np.testing.assert_array_equal(got, want_x)  # bit for bit: NaN nowhere, signs of zeros included
    assert np.array_equal(np.signbit(got), np.signbit(want_x))
    # and through the public methods, which dispatch one typed record to the one-record code
    frame_out = pipe.transform(typed)
    assert list(frame_out.columns) == pipe.feature_names_out_ and list(frame_out.index) == [0]
    np.testing.assert_array_equal(frame_out.to_numpy()[0], want_x)
    assert pipe.input_warnings(typed) == [want_w]
    assert pipe.record_warnings({k: v[0] for k, v in typed.items()}) == want_w


@pytest.mark.parametrize("name", ["default", "standardized", "splines+centers"])
def test_generated_records_of_every_preset_give_the_same_row(pipelines, records, name):
    pipe = pipelines[name]
    for rec in records:
        assert_same(pipe, rec)


@st.composite
def records_with_missing_values(draw) -> dict:
    """The example record with any set of optional predictors missing (and a center or none)."""
    rec = example_record(with_outcomes=False)
    for f in draw(st.lists(st.sampled_from(NULLABLE), unique=True)):
        rec[f] = None
    if draw(st.booleans()):
        rec["disease_status_at_hsct"] = "CR"
        rec["curie_score_at_hsct"] = draw(st.sampled_from([None, 0]))
        rec["bone_marrow_tumor_percent_at_hsct"] = draw(st.sampled_from([None, 0.0]))
    rec["center_id"] = draw(st.sampled_from([None, "C01", "C02", "C99"]))
    if rec["center_id"] is None:
        del rec["center_id"]
    rec["lansky_score"] = draw(st.sampled_from([10, 50, 80, 90, 100]))
    rec["age_at_diagnosis_months"] = draw(st.integers(0, 120))
    rec["ldh_at_diagnosis_u_l"] = draw(st.one_of(st.none(), st.floats(50, 20000)))
    return rec


@PROPS
@given(rec=records_with_missing_values())
def test_records_with_missing_values_give_the_same_row_and_warnings(pipelines, rec):
    for pipe in pipelines.values():
        assert_same(pipe, rec)


def test_an_unseen_category_is_refused_as_by_the_column_code(training):
    # a training set without any PD patient: PD cannot be scored
    pipe = make_feature_pipeline().fit(training[training["disease_status_at_hsct"] != "PD"])
    rec = dict(example_record(with_outcomes=False), disease_status_at_hsct="PD")
    typed = typed_one(rec)
    with pytest.raises(UnseenCategoryError) as frame_err:
        pipe.transform(pd.DataFrame(typed))
    with pytest.raises(UnseenCategoryError) as row_err:
        pipe.transform_record({k: v[0] for k, v in typed.items()})
    assert row_err.value.unseen == frame_err.value.unseen == [("disease_status_at_hsct", "PD", [0])]
    assert str(row_err.value) == str(frame_err.value)
    # the warnings never raise: both say the category was not seen
    assert pipe.input_warnings(typed) == pipe.input_warnings(pd.DataFrame(typed))
    assert any("not seen" in w for w in pipe.input_warnings(typed)[0])


def test_several_records_or_a_dataframe_take_the_column_code(pipelines, records, monkeypatch):
    pipe = pipelines["default"]

    def refuse(*args, **kwargs):
        raise AssertionError("the one-record code must not run here")

    monkeypatch.setattr(RecordFeatures, "transform_record", refuse)
    monkeypatch.setattr(RecordFeatures, "record_warnings", refuse)
    two = fast_validate(records[:2])
    assert two is not None
    pipe.transform(two)
    pipe.input_warnings(two)
    one = pd.DataFrame(typed_one(records[0]))
    pipe.transform(one)
    pipe.input_warnings(one)
