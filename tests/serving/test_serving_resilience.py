"""A real ``bentoml serve`` under stalled uploads, a 60-second soak and a ``kill -9`` of a worker (slow).

The served model is the session's fitted RiskModel through the production loader (``model_dir``); the ten-minute
soak and the recovery figures are in ``benchmarks/resilience.py`` → ``benchmarks/results/resilience.md``.
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle

from nbrisk.features.record import example_record
from nbrisk.serving import fhir, loadtest
from nbrisk.serving.audit import AuditLog
from nbrisk.serving.auth import KeyStore

pytestmark = pytest.mark.slow

REC = example_record(with_outcomes=False)


def _env(home, model_dir, **extra):
    return {
        "NBRISK_MODEL_URI": str(model_dir),
        "NBRISK_KEYS_DB": str(home / "keys.db"),
        "NBRISK_AUDIT_DB": str(home / "audit.db"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        **extra,
    }


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory, model_dir):
    home = tmp_path_factory.mktemp("resilience1")
    key = KeyStore(home / "keys.db").create("soak")
    with loadtest.serve(home, _env(home, model_dir, NBRISK_BODY_TIMEOUT_SECONDS="3"), workers=1) as server:
        yield server, key, home


def _statuses(home) -> list[int | None]:
    log = AuditLog(home / "audit.db")
    try:
        return [r.status for r in log.recent(10**7)]
    finally:
        log.close()


def _open_stalled(base: str, key: str | None) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    s.sendall(
        (
            f"POST /v1/risk HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n"
            "Content-Length: 100000\r\n\r\n"
            '{"patients": ['
        ).encode()
    )
    return s


def _read_all(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except TimeoutError:
        return data + b"<still open>"
    return data


def test_stalled_uploads_get_408_and_are_closed(one_worker):
    server, key, home = one_worker
    before = len(_statuses(home))
    keyed = [_open_stalled(server.base, key) for _ in range(12)]
    anonymous = [_open_stalled(server.base, None) for _ in range(4)]
    # the stalled connections hold no one else up
    t0 = time.monotonic()
    ok = httpx.post(
        f"{server.base}/v1/risk", json={"patients": [REC]}, headers={"authorization": f"Bearer {key}"}, timeout=60
    )
    assert ok.status_code == 200 and time.monotonic() - t0 < 30
    for s in keyed:
        answer = _read_all(s, timeout=30)  # the server answers 408 after 3 s and closes: recv sees the end
        s.close()
        assert answer.startswith(b"HTTP/1.1 408") and b"request body timeout" in answer
        assert b"<still open>" not in answer
    for s in anonymous:
        answer = _read_all(s, timeout=30)
        s.close()
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    # clients that give up mid-body: recorded as 499, never 500
    quitters = [_open_stalled(server.base, key) for _ in range(4)]
    time.sleep(0.5)
    for s in quitters:
        s.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _statuses(home)[before:].count(499) < 4:
        time.sleep(0.5)
    new = _statuses(home)[before:]
    assert new.count(408) == 12 and new.count(499) == 4 and new.count(401) == 4
    assert not any(s is not None and s >= 500 for s in new)


def test_soak_60s_zero_5xx_flat_memory_and_fhir(one_worker):
    server, key, home = one_worker
    rss_before = server.rss_mb()
    result = loadtest.soak(server, key, seconds=60, concurrency=16, bad_fraction=0.1, seed=1)
    print(
        f"soak 60 s: {result.requests} requests, {dict(result.statuses)}, connection errors "
        f"{result.connection_errors}, p50 {result.percentile(50):.0f} ms, p99 {result.percentile(99):.0f} ms, "
        f"RSS before {rss_before:.0f} MB, samples {[round(m) for _, m in result.rss_mb]}, {result.memory()}"
    )
    assert result.requests > 200
    assert result.server_errors == 0 and result.connection_errors == 0 and result.wrong_kind == 0
    assert {200, 415, 422} <= set(result.statuses)
    # memory flat: over the second half (the first fills the thread pool, caches and malloc arenas) RSS grows by at
    # most 25 MB. Measured on 2 cores: ~8 MB in the second half of 60 s (allocator high-water marks still settling;
    # the 10-minute benchmark shows the plateau), while a leak of 20 kB or more per request (the ≥ 1,500 requests a
    # half sees here) would add more than 25 MB. Smaller leaks are the benchmark's job (benchmarks/resilience.py).
    mem = result.memory()
    assert mem.growth <= 25, mem
    # the worker runs with two malloc arenas, as `nbrisk serve` starts it (serving/memory.py)
    assert all(w.environ().get("MALLOC_ARENA_MAX") == "2" for w in server.workers())
    assert not any(s is not None and s >= 500 for s in _statuses(home))
    # a FHIR Bundle from the running service validates and carries the JSON answer's numbers
    h = {"authorization": f"Bearer {key}"}
    body = {"patients": [REC], "horizons_months": [12, 60]}
    plain = httpx.post(f"{server.base}/v1/risk", json=body, headers=h, timeout=60).json()
    r = httpx.post(f"{server.base}/v1/risk", json=body, headers={**h, "accept": fhir.FHIR_JSON}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"].startswith(fhir.FHIR_JSON)
    bundle = Bundle.model_validate(r.json())
    preds = r.json()["entry"][0]["resource"]["prediction"]
    want = [plain["results"][0][k]["estimate"][j] for k in fhir.OUTCOMES for j in range(2)]
    assert [p["probabilityDecimal"] for p in preds] == want and len(bundle.entry) == 1


def test_killed_worker_other_keeps_answering_and_no_answer_loses_its_audit_row(tmp_path, model_dir):
    key = KeyStore(tmp_path / "keys.db").create("kill")
    with loadtest.serve(tmp_path, _env(tmp_path, model_dir), workers=2) as server:
        assert len(server.workers()) == 2
        res = loadtest.kill_worker_under_load(
            server, key, tmp_path / "audit.db", seconds=20, kill_after=5, concurrency=8
        )
        print(
            f"kill -9 at {res.killed_at:.1f} s: {dict(res.load.statuses)}, connection errors "
            f"{res.load.connection_errors}, longest gap {res.longest_gap_s:.2f} s, first answer after the kill "
            f"{res.first_answer_after_kill_s} s, replacement ready {res.replacement_ready_s} s, "
            f"in-flight rows {res.in_flight_rows}"
        )
        assert res.load.server_errors == 0 and res.load.wrong_kind == 0
        assert res.first_answer_after_kill_s is not None and res.first_answer_after_kill_s <= 5
        assert res.longest_gap_s <= 5
        assert res.missing_audit_rows == 0  # every answered request has its row, with the status it got
        deadline = time.monotonic() + 240  # and the killed worker is replaced
        while time.monotonic() < deadline and len(server.workers()) < 2:
            time.sleep(1)
        assert len(server.workers()) == 2
