"""The framework-free predictor, on a real fitted RiskModel (the session ``risk_model`` fixture)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nbrisk.core import SYNTHETIC_LABEL
from nbrisk.features.record import example_record
from nbrisk.serving.predictor import ModelUnavailable, Predictor, raw_frame
from nbrisk.serving.schemas import InvalidInput, ProblemDetail

REC = example_record(with_outcomes=False)


@pytest.fixture(scope="module")
def predictor(risk_model) -> Predictor:
    return Predictor.from_risk_model(risk_model, name="nbrisk", version="3", alias="champion")


def patients(synthetic_cohort, n: int) -> list[dict]:
    """``n`` valid JSON-like patient objects from the fixture cohort (as a client would send them)."""
    from nbrisk.features.record import PREDICTOR_FIELDS

    cols = ["patient_id", *PREDICTOR_FIELDS]
    frame = synthetic_cohort.raw[cols].head(n)
    return json.loads(frame.to_json(orient="records"))


def test_answer_shape_and_model_identity(predictor):
    ans = predictor.risk([REC], (12, 24, 36, 60))
    assert ans["model"] == {
        "name": "nbrisk",
        "version": "3",
        "alias": "champion",
        "trained_at": predictor.risk_model.training_summary["trained_at"],
        "synthetic_training_data": True,
        "label": SYNTHETIC_LABEL,
        # the fixture model predates interval statements: a plain one, saying coverage was not measured
        "intervals": "95% percentile bootstrap, 10 refits; coverage of the true CIF not measured for this model",
        "run_id": None,  # an in-memory model has no registering run
    }
    (res,) = ans["results"]
    assert set(res) == {"patient_id", "horizons_months", "relapse", "trm", "efs", "os", "risk_group", "warnings"}
    assert res["patient_id"] == REC["patient_id"] and res["horizons_months"] == [12, 24, 36, 60]
    for name in ("relapse", "trm", "efs", "os"):
        assert set(res[name]) == {"estimate", "lower", "upper"} and len(res[name]["estimate"]) == 4
    assert res["risk_group"] in ("low", "intermediate", "high")
    json.dumps(ans, allow_nan=False)  # strict JSON: no NaN/inf anywhere


def test_numbers_are_the_risk_models_own(predictor, risk_model):
    """The service adds nothing: its numbers equal RiskModel.predict on the contract-validated record (to the 1e-6
    rounding of answers), and the risk group is the model's, from its stored training cut-offs."""
    typed = predictor.validate([REC])
    curves = risk_model.predict(typed, [12, 24, 36, 60])
    res = predictor.risk([REC], (12, 24, 36, 60))["results"][0]
    for name, band in curves.bands().items():
        np.testing.assert_allclose(res[name]["estimate"], band.estimate[0], atol=5e-7)
        if band.lower is not None:
            np.testing.assert_allclose(res[name]["lower"], band.lower[0], atol=5e-7)
            np.testing.assert_allclose(res[name]["upper"], band.upper[0], atol=5e-7)
    assert res["risk_group"] == risk_model.risk_groups(curves)[0]


def test_invariants_and_batch_equals_single(predictor, synthetic_cohort):
    pats = patients(synthetic_cohort, 60)
    batch = predictor.risk(pats, (6, 12, 24, 60, 120))["results"]
    assert [r["patient_id"] for r in batch] == [p["patient_id"] for p in pats]
    for r in batch:
        rel, trm, efs, os_ = (np.asarray(r[k]["estimate"]) for k in ("relapse", "trm", "efs", "os"))
        assert np.all((rel >= 0) & (rel <= 1) & (trm >= 0) & (efs <= 1) & (os_ >= 0) & (os_ <= 1))
        assert np.all(np.diff(rel) >= 0) and np.all(np.diff(trm) >= 0)
        assert np.all(np.diff(efs) <= 1e-6) and np.all(np.diff(os_) <= 1e-6)
        np.testing.assert_allclose(efs, 1 - rel - trm, atol=3e-6)  # three roundings to 1e-6
        assert np.all(os_ >= efs - 1e-6) and np.all(1 - os_ >= trm - 1e-6)
        for k in ("relapse", "trm", "efs", "os"):
            if r[k]["lower"] is not None:
                assert np.all(np.asarray(r[k]["lower"]) <= np.asarray(r[k]["estimate"]) + 1e-9)
                assert np.all(np.asarray(r[k]["upper"]) >= np.asarray(r[k]["estimate"]) - 1e-9)
    for i in (0, 17, 59):  # vectorised = one at a time
        single = predictor.risk([pats[i]], (6, 12, 24, 60, 120))["results"][0]
        assert single == batch[i]


def test_risk_group_needs_24_months_even_when_not_asked(predictor):
    with_24 = predictor.risk([REC], (12, 24))["results"][0]
    without = predictor.risk([REC], (12,))["results"][0]
    assert without["horizons_months"] == [12] and len(without["efs"]["estimate"]) == 1
    assert without["risk_group"] == with_24["risk_group"]
    assert without["relapse"]["estimate"] == with_24["relapse"]["estimate"][:1]


def test_horizon_order_is_kept(predictor):
    a = predictor.risk([REC], (60, 12))["results"][0]
    b = predictor.risk([REC], (12, 60))["results"][0]
    assert a["horizons_months"] == [60, 12] and a["relapse"]["estimate"] == b["relapse"]["estimate"][::-1]


def test_every_problem_of_every_patient_at_once(predictor):
    bad = [
        {**REC, "patient_id": "A-1", "sex": "unknown-sex", "lansky_score": 95},
        REC,
        {**REC, "patient_id": "A-3", "inrg_stage": "L2", "nonsense": 1},
        {k: v for k, v in REC.items() if k != "donor_type"} | {"patient_id": "A-4"},
    ]
    with pytest.raises(InvalidInput) as e:
        predictor.risk(bad, (12,), [ProblemDetail(1, "extra_shape", "must be a single value")])
    got = {(d.patient_index, d.field) for d in e.value.detail}
    assert {
        (0, "sex"),
        (0, "lansky_score"),
        (1, "extra_shape"),
        (2, "inrg_stage"),
        (2, "nonsense"),
        (3, "donor_type"),
    } <= got
    assert all(d.patient_index is not None for d in e.value.detail)
    intended = [d for d in e.value.detail if d.field == "inrg_stage"]
    assert "intended use" in intended[0].message
    assert e.value.status_code == 422 and e.value.body()["error"].endswith("in 4 patient(s)")


def test_duplicate_patient_ids_are_refused(predictor):
    with pytest.raises(InvalidInput) as e:
        predictor.risk([REC, REC], (12,))
    assert {d.field for d in e.value.detail} == {"patient_id"}


def test_unseen_category_error_maps_to_patient_and_field():
    """A category the training cohort never had (the feature pipeline raises UnseenCategoryError) → 422 naming
    each patient and the field. (The fixture cohort has every level, so the error is built directly.)"""
    from nbrisk.features.pipeline import UnseenCategoryError
    from nbrisk.serving.predictor import _model_input_error

    err = _model_input_error(UnseenCategoryError([("donor_type", "matched_related", [2, 5])]))
    assert err.status_code == 422
    assert [(d.patient_index, d.field) for d in err.detail] == [(2, "donor_type"), (5, "donor_type")]


def test_outcome_fields_are_ignored_for_prediction(predictor):
    full = example_record(with_outcomes=True)
    assert predictor.risk([full], (12,))["results"] == predictor.risk([REC], (12,))["results"]


def test_warnings_name_imputed_and_out_of_range_inputs(predictor, risk_model):
    hi = risk_model.training_summary["numeric_ranges"]["donor_age_years"][1]
    assert hi < 80  # the contract allows donors up to 80 y; the small fixture cohort has none that old
    rec = {**REC, "ldh_at_diagnosis_u_l": None, "donor_age_years": 80}
    warnings = predictor.risk([rec], (12,))["results"][0]["warnings"]
    assert any("ldh_at_diagnosis_u_l" in w and "imputed" in w for w in warnings)
    assert any("donor_age_years" in w and "range" in w for w in warnings)


def test_model_card(predictor, risk_model):
    card = predictor.model_card()
    json.dumps(card, allow_nan=False)
    assert card["model"]["version"] == "3" and card["label"] == SYNTHETIC_LABEL
    assert card["training_data"]["n"] == risk_model.training_summary["n"]
    assert card["training_data"]["events"] == risk_model.training_summary["events"]
    assert card["specification"]["risk_cutoffs_efs_2y"] == list(risk_model.risk_cutoffs)
    assert "intended_use" in card and "neuroblastoma" in card["intended_use"]
    assert "feature_means" not in json.dumps(card)


def test_missing_model_is_model_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(ModelUnavailable, match="nowhere"):
        Predictor.from_uri(str(tmp_path / "nowhere"))


def test_raw_frame_keeps_values_and_drops_outcomes():
    frame = raw_frame([{"a": 1, "date_hsct": "2020-01-01"}, {"b": "x"}])
    assert list(frame.columns) == ["a", "b"]
    assert frame.to_dict("records") == [{"a": 1, "b": None}, {"a": None, "b": "x"}]
