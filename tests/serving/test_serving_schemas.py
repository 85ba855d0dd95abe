"""Request parsing at the HTTP boundary: every malformed body is a 4xx RequestError, never an exception."""

from __future__ import annotations

import json

import pytest

from nbrisk.features.record import FIELDS, example_record
from nbrisk.serving.schemas import (
    MAX_BODY_BYTES,
    MAX_PATIENTS,
    InvalidInput,
    MalformedRequest,
    PayloadTooLarge,
    check_report_format,
    parse_report_request,
    parse_risk_request,
    record_json_schema,
    risk_request_schema,
)


def body(obj) -> bytes:
    return json.dumps(obj).encode()


REC = example_record(with_outcomes=False)


def test_valid_request_defaults_horizons():
    req = parse_risk_request(body({"patients": [REC]}))
    assert req.horizons_months == (12.0, 24.0, 36.0, 60.0)
    assert req.patients == [REC] and req.problems == []


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"{",
        b"[1,",
        b"\xff\xfe",
        b"NaN",
        b'{"patients": [NaN]}',
        b'{"patients": Infinity}',
        b"[" * 100_000 + b"]" * 100_000,
        b"1" * 5000,
    ],
)
def test_malformed_json_is_400(raw):
    with pytest.raises(MalformedRequest) as e:
        parse_risk_request(raw)
    assert e.value.status_code == 400


@pytest.mark.parametrize("obj", [[], 5, "x", None, [REC]])
def test_body_must_be_object(obj):
    with pytest.raises(MalformedRequest):
        parse_risk_request(body(obj))


def test_unknown_top_level_field_and_missing_patients_are_422():
    with pytest.raises(InvalidInput) as e:
        parse_risk_request(body({"patients": [REC], "extra": 1}))
    assert e.value.detail[0].field == "extra"
    with pytest.raises(InvalidInput):
        parse_risk_request(body({"horizons_months": [12]}))
    with pytest.raises(InvalidInput):
        parse_risk_request(body({"patients": []}))


def test_too_many_patients_and_too_large_body_are_413():
    with pytest.raises(PayloadTooLarge) as e:
        parse_risk_request(body({"patients": [{}] * (MAX_PATIENTS + 1)}))
    assert e.value.status_code == 413
    with pytest.raises(PayloadTooLarge):
        parse_risk_request(b" " * (MAX_BODY_BYTES + 1))


@pytest.mark.parametrize(
    "h", [[0], [121], [0.5], [-12], ["12"], [True], [[12]], [], [12, 12], list(range(1, 30)), 12, {"a": 1}]
)
def test_bad_horizons_are_422(h):
    with pytest.raises(InvalidInput) as e:
        parse_risk_request(body({"patients": [REC], "horizons_months": h}))
    assert e.value.detail[0].field == "horizons_months"


def test_horizon_bounds_inclusive_and_order_kept():
    req = parse_risk_request(body({"patients": [REC], "horizons_months": [120, 1, 6.5]}))
    assert req.horizons_months == (120.0, 1.0, 6.5)


def test_non_scalar_values_are_problems_not_passed_on():
    pats = [
        {**REC, "sex": {"a": 1}, "lansky_score": [90], "ldh_at_diagnosis_u_l": 10**400},
        7,
        {**REC, "patient_id": 12, "center_id": "x" * 10_000},
    ]
    req = parse_risk_request(body({"patients": pats}))
    got = {(p.patient_index, p.field) for p in req.problems}
    assert got == {
        (0, "sex"),
        (0, "lansky_score"),
        (0, "ldh_at_diagnosis_u_l"),
        (1, None),
        (2, "patient_id"),
        (2, "center_id"),
    }
    assert "sex" not in req.patients[0] and req.patients[1] == {}
    # the offending values are never echoed in a problem
    assert all("10000" not in p.message and "xxxx" not in p.message for p in req.problems)


def test_report_request_and_format():
    req = parse_report_request(body({"patient": REC}))
    assert req.patients == [REC]
    with pytest.raises(InvalidInput):
        parse_report_request(body({"patients": [REC]}))
    assert check_report_format(None) == "pdf" and check_report_format("HTML") == "html"
    with pytest.raises(InvalidInput):
        check_report_format("docx")


def test_documented_record_schema_follows_the_contract():
    schema = record_json_schema()
    predictors = [n for n, s in FIELDS.items() if s.group != "outcome"]
    assert list(schema["properties"]) == predictors
    assert schema["properties"]["sex"]["enum"] == ["male", "female"]
    assert schema["properties"]["lansky_score"]["multipleOf"] == 10
    assert schema["properties"]["ldh_at_diagnosis_u_l"]["nullable"] is True
    assert "center_id" not in schema["required"] and "patient_id" in schema["required"]
    top = risk_request_schema()
    assert top["properties"]["patients"]["maxItems"] == MAX_PATIENTS


def test_field_count_bounds():
    from nbrisk.serving.schemas import MAX_DISTINCT_FIELDS, MAX_FIELDS_PER_PATIENT

    wide = {f"k{i}": 1 for i in range(MAX_FIELDS_PER_PATIENT + 1)}
    req = parse_risk_request(body({"patients": [wide, REC]}))
    assert [(p.patient_index, p.field) for p in req.problems] == [(0, None)] and req.patients[0] == {}
    many = [{f"k{j}_{i}": 1 for i in range(40)} for j in range(4)]  # 160 distinct names
    assert 160 > MAX_DISTINCT_FIELDS
    with pytest.raises(InvalidInput, match="distinct field names"):
        parse_risk_request(body({"patients": many}))
