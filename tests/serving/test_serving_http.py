"""The BentoML service through ``RiskService.to_asgi()`` and Starlette's TestClient: every status code of
docs/http-api.md, probes, docs, audit rows, and no patient data in any log."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest

from nbrisk.core import SYNTHETIC_LABEL
from nbrisk.features.record import example_record
from nbrisk.serving.audit import AuditLog

from .conftest import import_service

REC = example_record(with_outcomes=False)


def test_probes_metrics_and_docs_are_open(client):
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200
    spec = client.get("/docs.json").json()
    assert {"/v1/risk", "/v1/report", "/v1/model", "/livez", "/readyz", "/metrics"} <= set(spec["paths"])
    body = spec["paths"]["/v1/risk"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["patients"]["items"]["properties"]["sex"]["enum"] == ["male", "female"]


@pytest.mark.parametrize(
    "method,path",
    [("post", "/v1/risk"), ("post", "/v1/report"), ("get", "/v1/model"), ("get", "/v1/unknown"), ("post", "/v1/")],
)
def test_everything_under_v1_needs_a_key(client, method, path):
    for headers in ({}, {"Authorization": "Bearer nbk_not-a-key"}, {"Authorization": "Basic dXNlcjpwdw=="}):
        r = getattr(client, method)(path, headers=headers)
        assert r.status_code == 401, (path, headers)
        assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"].startswith("Bearer")


def test_risk_200_names_the_model(client, serving_env):
    r = client.post("/v1/risk", json={"patients": [REC], "horizons_months": [12, 24, 60]}, headers=serving_env.headers)
    assert r.status_code == 200, r.text
    ans = r.json()
    assert ans["model"]["synthetic_training_data"] is True and ans["model"]["label"] == SYNTHETIC_LABEL
    assert set(ans["model"]) >= {"name", "version", "alias", "trained_at", "synthetic_training_data"}
    (res,) = ans["results"]
    assert res["patient_id"] == REC["patient_id"] and res["horizons_months"] == [12, 24, 60]
    assert len(res["os"]["estimate"]) == 3 and res["risk_group"] in ("low", "intermediate", "high")
    assert "x-nbrisk-model-version" in r.headers or ans["model"]["version"] is None


def test_thousand_patients_in_one_request(client, serving_env):
    pats = [dict(REC, patient_id=f"P-{i:04d}") for i in range(1000)]
    r = client.post("/v1/risk", json={"patients": pats}, headers=serving_env.headers)
    assert r.status_code == 200 and len(r.json()["results"]) == 1000


@pytest.mark.parametrize(
    "content,status",
    [
        (b"", 400),
        (b"{not json", 400),
        (b"[]", 400),
        (b'"x"', 400),
        (b"\xff\xfe\x00", 400),
        (b'{"patients": NaN}', 400),
        (b"[" * 50_000 + b"]" * 50_000, 400),
        (b'{"patients": 5}', 400),
        (b'{"patients": []}', 422),
        (b'{"patients": [{}]}', 422),
        (b'{"foo": 1}', 422),
        (json.dumps({"patients": [REC], "horizons_months": [0]}).encode(), 422),
        (json.dumps({"patients": [REC], "horizons_months": [121]}).encode(), 422),
        (json.dumps({"patients": [REC], "horizons_months": ["12"]}).encode(), 422),
        (json.dumps({"patients": [{**REC, "age_at_diagnosis_months": 10**40}]}).encode(), 422),
        (json.dumps({"patients": [{**REC, "sex": ["male"]}]}).encode(), 422),
        (json.dumps({"patients": [{**REC, "sex": "男"}]}).encode(), 422),
    ],
)
def test_bad_bodies_are_4xx_json(client, serving_env, content, status):
    r = client.post("/v1/risk", content=content, headers={**serving_env.headers, "content-type": "application/json"})
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and isinstance(body["error"], str)
    for d in body["detail"]:
        assert set(d) == {"patient_index", "field", "message"}


def test_422_lists_patient_index_field_and_rule(client, serving_env):
    pats = [REC, {**REC, "patient_id": "B-2", "lansky_score": 95, "inrg_stage": "L1"}]
    r = client.post("/v1/risk", json={"patients": pats}, headers=serving_env.headers)
    assert r.status_code == 422
    got = {(d["patient_index"], d["field"]) for d in r.json()["detail"]}
    assert got == {(1, "lansky_score"), (1, "inrg_stage")}


def test_413_too_many_patients_or_too_large_body(client, serving_env):
    r = client.post("/v1/risk", json={"patients": [REC] * 1001}, headers=serving_env.headers)
    assert r.status_code == 413 and r.json()["detail"][0]["field"] == "patients"
    big = b'{"patients": [' + b" " * (9 * 1024 * 1024) + b"]}"
    r = client.post("/v1/risk", content=big, headers={**serving_env.headers, "content-type": "application/json"})
    assert r.status_code == 413


def test_404_and_405_are_json(client, serving_env):
    r = client.get("/v1/nothing-here", headers=serving_env.headers)
    assert r.status_code == 404 and r.json()["error"] == "not found"
    r = client.get("/v1/risk", headers=serving_env.headers)
    assert r.status_code == 405 and r.headers["allow"] == "POST"


def test_model_card(client, serving_env):
    r = client.get("/v1/model", headers=serving_env.headers)
    assert r.status_code == 200
    card = r.json()
    assert card["label"] == SYNTHETIC_LABEL and card["training_data"]["n"] > 0 and "intended_use" in card


def test_report_html_and_format_errors(client, serving_env):
    r = client.post("/v1/report?format=html", json={"patient": REC}, headers=serving_env.headers)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("text/html") and SYNTHETIC_LABEL in r.text
    r = client.post("/v1/report?format=docx", json={"patient": REC}, headers=serving_env.headers)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "format"
    r = client.post("/v1/report?format=html", json={"patient": {**REC, "sex": "?"}}, headers=serving_env.headers)
    assert r.status_code == 422 and r.json()["detail"][0] == {
        "patient_index": 0,
        "field": "sex",
        "message": r.json()["detail"][0]["message"],
    }


def test_every_v1_call_is_audited(client, serving_env):
    log = AuditLog(serving_env.audit_db)
    before = len(log.recent(100_000))
    client.post("/v1/risk", json={"patients": [REC, dict(REC, patient_id="X2")]}, headers=serving_env.headers)
    client.post("/v1/risk", content=b"{", headers=serving_env.headers)
    client.get("/v1/model")
    rows = log.recent(100_000)[before:]
    assert [(r.status, r.key_name, r.n_patients) for r in rows] == [
        (200, "tests", 2),
        (400, "tests", None),
        (401, None, None),
    ]
    assert all(r.latency_ms > 0 and r.path.startswith("/v1/") for r in rows)
    assert rows[0].body_sha256 is not None and len(rows[0].body_sha256) == 64


def test_no_patient_data_in_logs_or_audit(client, serving_env, caplog, capfd):
    """Distinctive identifiers and values go through good and bad requests; none may reach a log line, stdout/
    stderr or the audit database (which keeps only a hash of the body)."""
    secrets_ = ["PRIVPID-93172", "PRIVCTR-55817", "PRIVVAL-zz81"]
    good = {**REC, "patient_id": secrets_[0], "center_id": secrets_[1]}
    caplog.set_level(logging.DEBUG)
    h = serving_env.headers
    client.post("/v1/risk", json={"patients": [good]}, headers=h)
    client.post("/v1/risk", json={"patients": [{**good, "sex": secrets_[2]}]}, headers=h)
    client.post("/v1/risk", json={"patients": [{**good, secrets_[2]: 1}]}, headers=h)
    client.post("/v1/risk", content=("{" + secrets_[0]).encode(), headers=h)
    client.post("/v1/report?format=html", json={"patient": good}, headers=h)
    client.post("/v1/risk", json={"patients": [good]})  # unauthenticated
    out, err = capfd.readouterr()
    text = "\n".join([caplog.text, out, err, *(r.getMessage() for r in caplog.records)])
    for s in secrets_:
        assert s not in text
    audit_bytes = serving_env.audit_db.read_bytes()
    wal = serving_env.audit_db.with_name(serving_env.audit_db.name + "-wal")
    if wal.exists():
        audit_bytes += wal.read_bytes()
    for s in secrets_:
        assert s.encode() not in audit_bytes
    with sqlite3.connect(serving_env.audit_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] > 0


def test_no_model_is_503_and_not_ready(serving_env, tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    RiskService = import_service()
    # BentoML keeps one "current service" per process (what its class views resolve ``self`` to); this second app's
    # lifespan replaces it, so it is put back at teardown, or the session app's later requests would find none (500)
    import importlib

    bentoml_service = importlib.import_module("_bentoml_sdk.service")  # the module (its package exports a function)
    monkeypatch.setattr(bentoml_service, "_current_service", bentoml_service._current_service)
    # a model location with nothing there (the registry case, no champion yet, is in the slow real-server test:
    # creating an empty MLflow database costs tens of seconds)
    monkeypatch.setenv("NBRISK_MODEL_URI", str(tmp_path / "no-model-here"))
    monkeypatch.setenv("NBRISK_MODEL_RETRY_SECONDS", "3600")
    # A second app in the same process would register BentoML's Prometheus histograms twice (an error of
    # prometheus_client); this one is built with metrics off in the service config (the session app tests
    # /metrics), restored at once: every to_asgi() re-injects the service config.
    saved = dict(RiskService.config)
    RiskService.config["metrics"] = {"enabled": False}
    try:
        app = RiskService.to_asgi()
    finally:
        RiskService.config.clear()
        RiskService.config.update(saved)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/livez").status_code == 200
        assert c.get("/readyz").status_code == 503
        for method, path in (("post", "/v1/risk"), ("get", "/v1/model"), ("post", "/v1/report")):
            r = c.request(method, path, json={"patients": [REC]}, headers=serving_env.headers)
            assert r.status_code == 503 and r.json()["error"] == "model unavailable"
            assert "no-model-here" in r.json()["detail"][0]["message"]
        r = c.post("/v1/risk", json={"patients": [REC]})
        assert r.status_code == 401  # auth comes first
