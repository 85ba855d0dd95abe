"""The service's fast path against its reference, on generated records, valid and broken.

* Records: ``fast_validate`` (plain Python, small requests) against ``validate_columns`` (the column rules on numpy
  arrays) against ``validate_records`` (the same rules on a DataFrame, the path of cohort files).
* Answers: ``Predictor(fast=True)`` (no DataFrame from JSON to answer) against ``Predictor(fast=False)`` (raw
  DataFrame, ``validate_records``, frames into the model): the same answers to the last digit, the same errors.

The fast path may defer (return ``None``) whenever it likes; what it must never do is accept a record the column
validator refuses, or type a value differently. Property tests (hypothesis) mutate valid records field by field with
values chosen to sit on every rule's edge: missing-value tokens, case and whitespace variants of enum levels,
booleans as numbers, numeric text, range limits and just beyond, non-scalars, huge integers, unknown and outcome
fields, broken cross-field rules, repeated ids.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbrisk.features.record import (
    CONSISTENCY_RULES,
    FIELDS,
    HLA_MISMATCH_RANGE,
    MISSING_TOKENS,
    OUTCOME_FIELDS,
    PREDICTOR_FIELDS,
    example_record,
    fast_validate,
    validate_columns,
    validate_records,
)
from nbrisk.serving.predictor import Predictor, raw_columns
from nbrisk.serving.schemas import RequestError, RiskRequest, check_patients

# derandomize: the same examples on every run (no flaky tests); deadline off: the shared 2-core machine is noisy.
PROPS = settings(derandomize=True, deadline=None, max_examples=60)
PREDICTION_FIELDS = ["patient_id", "center_id", *PREDICTOR_FIELDS]


def prediction_record(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in OUTCOME_FIELDS}


def field_values(name: str) -> st.SearchStrategy:
    """Valid values of one field, read from its FieldSpec (JSON types: numbers, booleans, listed levels)."""
    spec = FIELDS[name]
    if spec.kind == "enum":
        values = st.sampled_from(spec.allowed)
    elif spec.kind == "boolean":
        values = st.booleans()
    elif spec.kind == "integer":
        step = spec.multiple_of or 1
        values = st.integers(int(spec.minimum) // step, int(spec.maximum) // step).map(lambda k: k * step)
        values = values.filter(lambda v: spec.minimum <= v <= spec.maximum)
    elif spec.kind == "number":
        values = st.one_of(
            st.integers(math.ceil(spec.minimum), math.floor(spec.maximum)),
            st.floats(spec.minimum, spec.maximum, allow_nan=False),
        )
    else:
        ids = st.from_regex(r"[A-Za-z0-9_\-]{1,64}", fullmatch=True)
        values = ids.filter(lambda t: t.lower() not in MISSING_TOKENS)
    return st.one_of(st.none(), values) if spec.nullable else values


@st.composite
def valid_records(draw) -> dict:
    """A prediction record satisfying every field rule (drawn from the field table) and every cross-field rule
    (the dependent fields are drawn after the fields they depend on)."""
    rec = {name: draw(field_values(name)) for name in PREDICTION_FIELDS}
    age_dx = rec["age_at_diagnosis_months"]  # age at HSCT 0.5–25 y: age_dx + gap in 6–300 months
    rec["months_diagnosis_to_hsct"] = draw(
        st.integers(max(1, math.ceil(6 - age_dx)), math.floor(min(180, 300 - age_dx)))
    )
    lo, hi = HLA_MISMATCH_RANGE[rec["donor_type"]]
    rec["hla_mismatches"] = draw(st.integers(lo, hi))
    if (rec["donor_type"] == "cord_blood") != (rec["graft_source"] == "cord_blood"):
        rec["graft_source"] = "cord_blood" if rec["donor_type"] == "cord_blood" else "bone_marrow"
    if rec["disease_phase"] == "upfront_consolidation":
        rec["prior_auto_hsct"] = draw(st.integers(0, 1))
    if rec["disease_status_at_hsct"] == "CR":
        rec["curie_score_at_hsct"] = draw(st.sampled_from([None, 0]))
        rec["bone_marrow_tumor_percent_at_hsct"] = draw(st.sampled_from([None, 0, 0.0]))
    if draw(st.booleans()):
        del rec["center_id"]  # optional for prediction
    return rec


def edge_values(name: str) -> st.SearchStrategy:
    """Values that sit on the edges of the rules of field ``name`` (and a few that break every rule)."""
    spec = FIELDS[name]
    common = [None, "", " ", "NA", "n/a", "None", "null", "NaN", "nan", True, False, [1], {"a": 1}, 10**400, "abc"]
    if spec.kind in ("number", "integer"):
        lo, hi = spec.minimum, spec.maximum
        vals = [lo, hi, lo - 1, hi + 1, lo - 1e-9, hi + 1e-9, (lo + hi) / 2, 0, 1, 0.0, 1.0, -0.0, 2.5]
        vals += [str(lo), f" {hi} ", f"{hi:e}", "1_0", "inf", "-inf", math.inf, math.nan, int(hi), int(lo) + 10]
        return st.sampled_from(vals + common)
    if spec.kind == "enum":
        levels = list(spec.allowed)
        variants = [v.upper() for v in levels] + [f" {v} " for v in levels] + [v.title() for v in levels]
        return st.sampled_from(levels + variants + ["unknown", "Unknown", "M", "m", "CR"] + common)
    if spec.kind == "boolean":
        return st.sampled_from([True, False, 1, 0, 1.0, 0.0, 2, "true", "FALSE", " true", "1", "0", "yes", *common])
    # strings: patient_id / center_id
    return st.sampled_from(["P-1", "p_2", " P3 ", "x" * 64, "x" * 65, "a b", "é", "P.1", 7, 7.5, *common])


@st.composite
def mutated_records(draw) -> dict:
    """A valid prediction record with 0–3 fields replaced by edge values, removed, or joined by a stray field."""
    rec = draw(valid_records())
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(PREDICTION_FIELDS))
        action = draw(st.sampled_from(["edge", "edge", "edge", "drop", "extra"]))
        if action == "edge":
            rec[name] = draw(edge_values(name))
        elif action == "drop":
            rec.pop(name, None)
        else:
            rec[draw(st.sampled_from(["lansky", "date_hsct", "cause_of_death", "\ud83d", "x" * 100]))] = 1
    return rec


def assert_same_columns(fast: dict, typed: dict) -> None:
    assert list(fast) == list(typed)
    for name, col in typed.items():
        got = fast[name]
        assert got.dtype == col.dtype, name
        if col.dtype.kind == "f":
            np.testing.assert_array_equal(got, col, err_msg=name)  # NaN == NaN here; values bit for bit
            assert np.array_equal(np.signbit(got), np.signbit(col)), name
        else:
            assert got.tolist() == col.tolist(), name
            assert [type(v) for v in got] == [type(v) for v in col], name


@PROPS
@given(st.lists(mutated_records(), min_size=1, max_size=4))
def test_fast_path_never_accepts_what_the_contract_refuses(records):
    typed, problems = validate_columns(raw_columns(records), len(records))
    fast = fast_validate(records)
    if fast is not None:
        assert problems == [], "the fast path accepted records the contract refuses"
        assert_same_columns(fast, typed)
    # the column validator is the DataFrame validator without the frame: same typed values, same problems
    frame = pd.DataFrame({k: pd.Series(list(v), dtype=object) for k, v in raw_columns(records).items()})
    frame_typed, frame_problems = validate_records(frame, require_outcomes=False, require_center=False, first_row=0)
    assert frame_problems == problems
    assert_same_columns({k: frame_typed[k].to_numpy() for k in frame_typed.columns}, typed)


@PROPS
@given(st.lists(valid_records(), min_size=1, max_size=4, unique_by=lambda r: r["patient_id"]))
def test_plainly_valid_records_take_the_fast_path(records):
    """Valid records as a client sends them (JSON numbers, listed levels) are never deferred."""
    fast = fast_validate(records)
    assert fast is not None
    typed, problems = validate_columns(raw_columns(records), len(records))
    assert problems == []
    assert_same_columns(fast, typed)


def test_fast_path_defers_on_every_kind_of_problem():
    rec = example_record(with_outcomes=False)
    assert fast_validate([rec]) is not None
    broken = [
        dict(rec, lansky_score=95),  # multiple of 10
        dict(rec, lansky_score="NA"),  # missing token for a required value
        dict(rec, sex="Female"),  # not the listed spelling (the column validator decides)
        dict(rec, hla_mismatches=0),  # haploidentical requires 2–5: a cross-field rule
        dict(rec, bone_marrow_metastasis_at_diagnosis=2),
        dict(rec, patient_id="has space"),
        dict(rec, lansky=90),  # unknown field
        dict(rec, date_hsct="2020-01-01"),  # outcome field
        {k: v for k, v in rec.items() if k != "sex"},  # required field missing
    ]
    for bad in broken:
        assert fast_validate([bad]) is None, bad
    assert fast_validate([rec, rec]) is None  # repeated patient_id
    assert fast_validate([rec, rec], unique_ids=False) is not None
    assert fast_validate([]) is None and fast_validate(["not an object"]) is None


def test_every_cross_field_rule_has_an_example_that_breaks_it():
    """Each rule of CONSISTENCY_RULES fires on some record (a rule that can never fire would be a silent no-op)."""
    rec = example_record(with_outcomes=False)
    cases = [
        dict(rec, age_at_diagnosis_months=216, months_diagnosis_to_hsct=180),
        dict(rec, donor_type="matched_sibling", hla_mismatches=1),
        dict(rec, donor_type="matched_related", hla_mismatches=1),
        dict(rec, donor_type="matched_unrelated", hla_mismatches=1),
        dict(rec, donor_type="mismatched_unrelated", hla_mismatches=3),
        dict(rec, donor_type="haploidentical", hla_mismatches=1),
        dict(rec, donor_type="cord_blood", hla_mismatches=4, graft_source="cord_blood"),
        dict(rec, donor_type="cord_blood", hla_mismatches=1),
        dict(rec, disease_phase="upfront_consolidation", prior_auto_hsct=2),
        dict(rec, disease_status_at_hsct="CR", curie_score_at_hsct=0),
        dict(rec, disease_status_at_hsct="CR", bone_marrow_tumor_percent_at_hsct=0),
    ]
    _, problems = validate_columns(raw_columns(cases), len(cases))
    fired = {p.rule for p in problems}
    for _, rule, _ in CONSISTENCY_RULES:
        assert rule in fired, rule


# --------------------------------------------------------------------------------------------------------------
# whole answers: fast path vs DataFrame path, on a real fitted RiskModel

ANSWER_PROPS = settings(derandomize=True, deadline=None, max_examples=40)
HORIZONS = st.sampled_from([(12, 24, 36, 60), (6, 120), (24,), (60, 12, 18.5)])


@pytest.fixture(scope="module")
def paths(risk_model) -> tuple[Predictor, Predictor]:
    return (
        Predictor.from_risk_model(risk_model, version="1", fast=True),
        Predictor.from_risk_model(risk_model, version="1", fast=False),
    )


def outcome(predictor: Predictor, patients: list, horizons) -> tuple:
    """The answer, or the error as the client sees it (status and body)."""
    cleaned, shape = check_patients(patients)
    try:
        return ("answer", predictor.risk(cleaned, horizons, shape))
    except RequestError as exc:
        return ("error", exc.status_code, exc.body())


@ANSWER_PROPS
@given(st.lists(st.one_of(valid_records(), mutated_records()), min_size=1, max_size=3), HORIZONS)
def test_fast_and_frame_paths_give_the_same_answers_and_errors(paths, records, horizons):
    fast, frame = paths
    got, want = outcome(fast, records, horizons), outcome(frame, records, horizons)
    assert got == want  # exact: every estimate and bound to its last digit, every problem and its wording


@ANSWER_PROPS
@given(
    st.lists(st.lists(st.one_of(valid_records(), mutated_records()), min_size=1, max_size=2), min_size=2, max_size=4)
)
def test_fast_and_frame_paths_batch_the_same(paths, requests):
    """The micro-batcher's call: several requests answered together give the same answers on both paths."""
    fast, frame = paths
    reqs = []
    for patients in requests:
        cleaned, shape = check_patients(patients)
        reqs.append(RiskRequest(cleaned, (12, 24, 36, 60), shape))

    def plain(answers):
        return [("error", a.status_code, a.body()) if isinstance(a, RequestError) else a for a in answers]

    assert plain(fast.risk_many(reqs)) == plain(frame.risk_many(reqs))


def test_the_fast_path_is_taken_for_a_valid_request(paths, monkeypatch):
    """A valid one-patient request never reaches the column validator; an invalid one does (for its problems)."""
    import nbrisk.features.record as record

    fast, _ = paths
    calls = []

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(record, "validate_columns", spy("columns", record.validate_columns))
    monkeypatch.setattr(record, "validate_records", spy("records", record.validate_records))
    rec = example_record(with_outcomes=False)
    fast.risk([rec], (12, 24))
    assert calls == []
    with pytest.raises(RequestError):
        fast.risk([dict(rec, lansky_score=95)], (12,))
    assert calls == ["columns"]
