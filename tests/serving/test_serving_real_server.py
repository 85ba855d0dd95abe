"""End to end over real HTTP: ``bentoml serve nbrisk.serving.service:RiskService`` serving the champion registered
in a temporary MLflow registry (the ``registered_champion`` fixture), and the same server started with no
champion at all (503, not a crash loop). Slow: a real training run, real server processes."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from nbrisk.core import SYNTHETIC_LABEL
from nbrisk.features.record import example_record
from nbrisk.serving import loadtest
from nbrisk.serving.auth import KeyStore

pytestmark = pytest.mark.slow

REC = example_record(with_outcomes=False)
SECRETS = ("RSPRIV-40417", "RSCTR-88123", "RSVAL-qq72")


@contextmanager
def bentoml_serve(tmp: Path, env_extra: dict[str, str], wait_ready: bool = True):
    """A real server on a free loopback port (:func:`nbrisk.serving.loadtest.serve`: nothing of this test session's
    NBRISK_/MLFLOW_/BENTOML_ environment leaks in); yields (base_url, log_path, process)."""
    with loadtest.serve(tmp, env_extra, timeout=240, ready=(200,) if wait_ready else (200, 503)) as server:
        yield server.base, server.log_path, server.proc


def test_real_server_serves_the_champion(registered_champion, mlflow_tracking, tmp_path):
    from nbrisk.training import tracking

    version = tracking.get_alias_version("nbrisk", "champion")
    keys_db, audit_db = tmp_path / "keys.db", tmp_path / "audit.db"
    key = KeyStore(keys_db).create("e2e")
    h = {"Authorization": f"Bearer {key}"}
    env = {
        "NBRISK_KEYS_DB": str(keys_db),
        "NBRISK_AUDIT_DB": str(audit_db),
        "MLFLOW_TRACKING_URI": mlflow_tracking,
        "MLFLOW_REGISTRY_URI": mlflow_tracking,
        "NBRISK_MODEL_REFRESH_SECONDS": "2",
    }
    with bentoml_serve(tmp_path, env) as (base, log_path, _proc):
        with httpx.Client(base_url=base, timeout=60) as c:
            r = c.post("/v1/risk", json={"patients": [REC], "horizons_months": [12, 24, 36, 60]}, headers=h)
            assert r.status_code == 200, r.text
            model = r.json()["model"]
            assert model["version"] == version and model["alias"] == "champion" and model["name"] == "nbrisk"
            assert model["label"] == SYNTHETIC_LABEL and r.headers["x-nbrisk-model-version"] == version
            assert c.post("/v1/risk", json={"patients": [REC]}).status_code == 401
            bad = c.post("/v1/risk", json={"patients": [{**REC, "lansky_score": 95}]}, headers=h)
            assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "lansky_score"
            assert c.post("/v1/risk", content=b"\x00{", headers=h).status_code == 400
            assert c.get("/v1/model", headers=h).json()["model"]["version"] == version
            pdf = c.post("/v1/report", params={"format": "pdf"}, json={"patient": REC}, headers=h)
            assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
            assert "/v1/risk" in c.get("/docs.json").json()["paths"]
            assert c.get("/metrics").status_code == 200 and c.get("/livez").status_code == 200
            # identifiers and values that must never reach a log
            good = {**REC, "patient_id": SECRETS[0], "center_id": SECRETS[1]}
            c.post("/v1/risk", json={"patients": [good]}, headers=h)
            c.post("/v1/risk", json={"patients": [{**good, "sex": SECRETS[2]}]}, headers=h)
            c.post("/v1/risk", content=("{" + SECRETS[0]).encode(), headers=h)
            c.post("/v1/report", params={"format": "html"}, json={"patient": good}, headers=h)
            # promote another registered version: the running server follows the alias without a restart
            other = _other_version(version)
            if other is not None:
                tracking.set_alias("nbrisk", "champion", other)
                try:
                    deadline = time.monotonic() + 90
                    while time.monotonic() < deadline:
                        got = c.post("/v1/risk", json={"patients": [REC]}, headers=h).json()["model"]["version"]
                        if got == other:
                            break
                        time.sleep(1)
                    assert got == other
                finally:
                    tracking.set_alias("nbrisk", "champion", version)  # the session fixture's champion, restored
    text = log_path.read_text(errors="replace")
    assert "serving model nbrisk version" in text and "/v1/risk" in text  # the log is really captured
    logs = [log_path, *Path(tmp_path / "bentoml").rglob("*.log")]
    for f in logs:
        content = f.read_text(errors="replace")
        for s in SECRETS:
            assert s not in content, f
    assert audit_db.exists()


def _other_version(version: str) -> str | None:
    """Another registered version of ``nbrisk`` (the quick config registers one per model family), if any."""
    from mlflow import MlflowClient

    from nbrisk.training import tracking

    tracking.configure()
    versions = sorted({str(mv.version) for mv in MlflowClient().search_model_versions("name='nbrisk'")} - {version})
    return versions[0] if versions else None


def test_real_server_without_champion_is_not_ready_but_alive(tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty' / 'mlflow.db'}"
    # both URIs: mlflow.set_registry_uri() in this test process exports MLFLOW_REGISTRY_URI to children
    env = {
        "MLFLOW_TRACKING_URI": empty,
        "MLFLOW_REGISTRY_URI": empty,
        "NBRISK_KEYS_DB": str(tmp_path / "keys.db"),
        "NBRISK_AUDIT_DB": str(tmp_path / "audit.db"),
        "NBRISK_MODEL_RETRY_SECONDS": "2",
    }
    (tmp_path / "empty").mkdir()
    key = KeyStore(tmp_path / "keys.db").create("e2e")
    with bentoml_serve(tmp_path, env, wait_ready=False) as (base, log_path, proc):
        with httpx.Client(base_url=base, timeout=60) as c:
            for _ in range(3):  # repeated probes and retries: still answering, still not ready, never a 5xx loop
                assert c.get("/livez").status_code == 200
                assert c.get("/readyz").status_code == 503, log_path.read_text(errors="replace")[-4000:]
                r = c.post("/v1/risk", json={"patients": [REC]}, headers={"Authorization": f"Bearer {key}"})
                assert r.status_code == 503 and r.json()["error"] == "model unavailable"
                time.sleep(2.5)
            assert proc.poll() is None
    assert "no model to serve" in log_path.read_text(errors="replace")
