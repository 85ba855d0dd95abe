"""``POST /v1/risk`` with ``Accept: application/fhir+json``: a FHIR R4 Bundle of RiskAssessment resources, validated
with ``fhir.resources`` (R4B models: Bundle and RiskAssessment are unchanged from R4), with exactly the numbers of
the JSON answer to the same request."""

from __future__ import annotations

import datetime as dt

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.riskassessment import RiskAssessment

from nbrisk.core import SYNTHETIC_LABEL
from nbrisk.features.record import example_record
from nbrisk.serving import fhir

REC = example_record(with_outcomes=False)
FHIR_ACCEPT = {"accept": "application/fhir+json"}


def _interval(pred) -> dict[str, float]:
    (ext,) = [e for e in pred["extension"] if e["url"] == fhir.INTERVAL_EXTENSION]
    return {e["url"]: e["valueDecimal"] for e in ext["extension"]}


@pytest.mark.parametrize("horizons", [[12, 24, 60], [6.5, 36]])
def test_fhir_bundle_validates_and_equals_the_json_answer(client, serving_env, horizons):
    other = {**REC, "patient_id": "FHIR_2", "lansky_score": 60, "mycn_status": "not_amplified"}
    body = {"patients": [REC, other], "horizons_months": horizons}
    plain = client.post("/v1/risk", json=body, headers=serving_env.headers)
    r = client.post("/v1/risk", json=body, headers={**serving_env.headers, **FHIR_ACCEPT})
    assert plain.status_code == 200 and r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("application/fhir+json")
    doc = r.json()
    bundle = Bundle.model_validate(doc)  # raises on anything FHIR does not allow
    assert bundle.type == "collection" and len(bundle.entry) == 2
    answer = plain.json()
    assert any(s["code"] == "HTEST" for s in doc["meta"]["security"])
    for entry, res in zip(doc["entry"], answer["results"], strict=True):
        ra = entry["resource"]
        RiskAssessment.model_validate(ra)
        assert entry["fullUrl"] == f"urn:uuid:{ra['id']}"
        assert ra["status"] == "final" and ra["subject"]["identifier"]["value"] == res["patient_id"]
        model = answer["model"]
        assert ra["method"]["coding"][0]["code"] == f"{model['name']}/{model['version'] or 'unknown'}"
        assert dt.datetime.fromisoformat(ra["occurrenceDateTime"]).tzinfo is not None
        assert ra["note"][0]["text"] == SYNTHETIC_LABEL and res["risk_group"] in ra["note"][1]["text"]
        preds = ra["prediction"]
        assert len(preds) == 4 * len(horizons)
        k = 0
        for outcome, text in fhir.OUTCOMES.items():
            for j, h in enumerate(horizons):
                p = preds[k]
                k += 1
                assert p["outcome"]["text"] == text
                assert p["whenRange"]["low"]["value"] == 0 and p["whenRange"]["high"]["value"] == h
                assert p["whenRange"]["high"]["code"] == "mo"
                assert p["probabilityDecimal"] == res[outcome]["estimate"][j]
                ci = _interval(p)
                assert (ci["lower"], ci["upper"], ci["level"]) == (
                    res[outcome]["lower"][j],
                    res[outcome]["upper"][j],
                    0.95,
                )


def test_errors_stay_in_the_contract_shape_with_fhir_accept(client, serving_env):
    r = client.post(
        "/v1/risk", json={"patients": [{**REC, "sex": "?"}]}, headers={**serving_env.headers, **FHIR_ACCEPT}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "sex"


def test_bundle_without_intervals_or_synthetic_label():
    answer = {
        "model": {
            "name": "nbrisk",
            "version": "3",
            "alias": None,
            "trained_at": None,
            "synthetic_training_data": False,
        },
        "results": [
            {
                "patient_id": "P1",
                "horizons_months": [12],
                **{k: {"estimate": [0.25], "lower": None, "upper": None} for k in fhir.OUTCOMES},
                "risk_group": "low",
                "warnings": ["age outside the training range"],
            }
        ],
    }
    doc = fhir.risk_bundle(answer)
    Bundle.model_validate(doc)
    ra = doc["entry"][0]["resource"]
    assert "security" not in doc["meta"] and "meta" not in ra
    assert all("extension" not in p for p in ra["prediction"])
    assert [n["text"] for n in ra["note"]][1:] == ["age outside the training range"]
    assert SYNTHETIC_LABEL not in str(doc)


@pytest.mark.parametrize(
    "accept,wanted",
    [
        ("application/fhir+json", True),
        ("application/json, application/fhir+json;q=0.9", True),
        ("application/fhir+json;q=0", False),
        ("application/json", False),
        ("*/*", False),
        (None, False),
    ],
)
def test_accept_header(accept, wanted):
    assert fhir.wants_fhir(accept) is wanted
