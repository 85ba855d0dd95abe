"""Hostile and broken clients, through the real BentoML app (``RiskService.to_asgi()``): every case answers 4xx with
the contract's JSON error (never a 5xx), answers never grow with the input, nothing client-controlled reaches a log
line, metric label or redirect, and every answer carries the security headers. Each test failed before the fix
it guards (see the issue list in the commit history)."""

from __future__ import annotations

import gzip
import json
import logging
import re

import anyio
import pytest

from nbrisk.features.record import example_record
from nbrisk.serving import limits
from nbrisk.serving.audit import AuditLog
from nbrisk.serving.auth import KeyStore

REC = example_record(with_outcomes=False)
JSON = {"content-type": "application/json"}


def _post(client, env, path, content: bytes, **headers):
    return client.post(path, content=content, headers={**env.headers, **JSON, **headers})


def _assert_error(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert set(body) == {"error", "detail"}
    for d in body["detail"]:
        assert set(d) == {"patient_index", "field", "message"}
    return body


@pytest.fixture
def limits_of(client):
    """Install other limits in the running app for one test, then the defaults again."""
    saved = limits.current().limits

    def install(**kw):
        limits.configure(limits.Limits(**kw))
        return limits.current()

    yield install
    limits.configure(saved)


# -- bodies -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,body,where",
    [
        ("/v1/risk", b'{"patients":[{"\\ud83d":1}]}', (0, "\\ud83d")),
        ("/v1/risk", b'{"patients":[{"patient_id":"\\udc00x"}]}', (0, "patient_id")),
        ("/v1/risk", b'{"\\ud83d":1,"patients":[]}', (None, "\\ud83d")),
        ("/v1/report?format=html", b'{"patient":{"\\ud83d":1}}', (0, "\\ud83d")),
        ("/v1/report?format=html", b'{"patient":{"sex":"\\ud800"}}', (0, "sex")),
    ],
)
def test_lone_surrogates_are_422_naming_patient_and_field(client, serving_env, path, body, where):
    err = _assert_error(_post(client, serving_env, path, body), 422)
    assert (err["detail"][0]["patient_index"], err["detail"][0]["field"]) == where
    assert "surrogate" in err["detail"][0]["message"]


def test_a_paired_surrogate_escape_is_just_a_character(client, serving_env):
    body = json.dumps({"patients": [{**REC, "patient_id": "A-1", "\U0001f600": 1}]}).encode()  # \ud83d\ude00
    err = _assert_error(_post(client, serving_env, "/v1/risk", body), 422)
    assert {(d["patient_index"], d["field"]) for d in err["detail"]} == {(0, "\U0001f600")}


def test_huge_unknown_field_name_is_cut_in_the_answer(client, serving_env):
    name = "x" * 7_000_000
    body = json.dumps({"patients": [{**REC, name: 1}]}).encode()
    r = _post(client, serving_env, "/v1/risk", body)
    err = _assert_error(r, 422)
    assert len(r.content) < 2_000
    (d,) = err["detail"]
    assert d["patient_index"] == 0 and len(d["field"]) <= 64 and d["message"].startswith("unknown field")
    r = _post(client, serving_env, "/v1/risk", json.dumps({name: 1, "patients": [REC]}).encode())
    assert len(_assert_error(r, 422)["detail"][0]["field"]) <= 64 and len(r.content) < 2_000


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "multipart/form-data; boundary=x"},
        {"content-type": "application/json; charset=latin-1"},
        {"content-encoding": "gzip"},
        {"content-encoding": "br"},
        {"content-encoding": "identity, gzip"},
    ],
)
@pytest.mark.parametrize("path", ["/v1/risk", "/v1/report?format=html"])
def test_bodies_not_plain_json_are_415(client, serving_env, headers, path):
    payload = json.dumps({"patients": [REC]} if "risk" in path else {"patient": REC}).encode()
    if headers.get("content-encoding", "").endswith(("gzip",)):
        payload = gzip.compress(payload)
    r = client.post(path, content=payload, headers={**serving_env.headers, **JSON, **headers})
    err = _assert_error(r, 415)
    assert err["detail"][0]["field"] in ("Content-Type", "Content-Encoding")


def test_json_with_utf8_charset_and_identity_encoding_is_accepted(client, serving_env):
    r = client.post(
        "/v1/risk",
        content=json.dumps({"patients": [REC]}).encode(),
        headers={
            **serving_env.headers,
            "content-type": "application/json; charset=UTF-8",
            "content-encoding": "identity",
        },
    )
    assert r.status_code == 200, r.text[:300]


# -- routes outside /v1 ------------------------------------------------------------------------------------------


def test_metrics_labels_are_fixed_whatever_paths_clients_invent(client, serving_env):
    for i in range(200):
        client.get(f"/v1/made-up-{i}-PRIVPATH", headers=serving_env.headers)
        client.get(f"/nowhere-{i}-PRIVPATH")
    text = client.get("/metrics").text
    assert "PRIVPATH" not in text and "made-up" not in text
    routes = set(re.findall(r'route="([^"]*)"', text))
    methods = set(re.findall(r'method="([^"]*)"', text))
    assert routes and routes <= {"/v1/risk", "/v1/report", "/v1/model", "/v1/*", "/ui/*", "/docs.json", "/", "other"}
    assert "/v1/*" in routes and "other" in routes
    assert methods <= {"GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE", "OTHER"}
    size = len(text)
    for i in range(200, 400):
        client.get(f"/v1/made-up-{i}", headers=serving_env.headers)
    assert len(client.get("/metrics").text) < size + 500  # counts change, the number of series does not


def test_metrics_can_require_a_key(serving_env):
    from nbrisk.serving.edge import EdgeMiddleware

    async def app(scope, receive, send):  # pragma: no cover - never reached for /metrics
        raise AssertionError

    mw = EdgeMiddleware(app)
    mw.metrics_need_key = True
    sent: list[dict] = []

    async def send(m):
        sent.append(m)

    async def receive():
        return {"type": "http.request", "body": b""}

    def call(headers):
        sent.clear()
        scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": headers}
        anyio.run(mw, scope, receive, send)
        return sent[0]["status"]

    assert call([]) == 401
    assert call([(b"authorization", b"Bearer nbk_wrong")]) == 401
    assert call([(b"authorization", f"Bearer {serving_env.key}".encode())]) == 200


def test_docs_json_loads_nothing_from_outside_hosts(client):
    r = client.get("/docs.json")
    assert r.status_code == 200
    text = r.text
    assert "![" not in text and not re.search(r"https?://", text), re.findall(r"https?://[^\s\"')]+", text)[:5]
    spec = r.json()
    assert {"/v1/risk", "/v1/report", "/v1/model", "/livez", "/readyz", "/metrics"} <= set(spec["paths"])
    assert "BentoML" not in json.dumps(spec["info"])


def test_no_bentoml_page_or_tracker_is_reachable(client):
    for path in ("/", "/static_content/index.css", "/static_content/swagger-ui.css", "/assets/index.js"):
        r = client.get(path)
        assert "googletagmanager" not in r.text.lower(), path
        assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", r.text, re.I), path
        if path != "/":
            assert r.status_code == 404, path


@pytest.mark.parametrize("path", ["/v1", "/livez/", "/readyz/"])
def test_redirects_never_use_the_clients_host(client, path):
    r = client.get(path, headers={"host": "evil.example"}, follow_redirects=False)
    assert "evil.example" not in r.headers.get("location", "")
    if r.is_redirect:
        assert r.headers["location"].startswith("/") and not r.headers["location"].startswith("//")


def test_paths_never_forge_log_lines(client, serving_env, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    client.get("/v1/x%0aFORGED-LINE%0d%0aALSO", headers=serving_env.headers)
    client.get("/v1/x%0aFORGED-LINE")
    client.get("/zz%0aFORGED-LINE")
    out, err = capfd.readouterr()
    server = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]  # not the test's client
    assert server and not any("FORGED" in m or "\n" in m for m in server)
    lines = [*caplog.text.splitlines(), *out.splitlines(), *err.splitlines()]
    assert not any(ln.startswith(("FORGED-LINE", "ALSO")) for ln in lines)
    assert any("/v1/*" in r.getMessage() for r in caplog.records if r.name == "nbrisk.access")


# -- headers on every answer ----------------------------------------------------------------------------------------


def _secure(r) -> None:
    h = r.headers
    assert h["x-content-type-options"] == "nosniff"
    csp = h["content-security-policy"]
    # the calculator page at / sets its own same-origin policy; everything else allows nothing
    assert ("default-src 'none'" in csp or r.url.path == "/") and "frame-ancestors 'none'" in csp
    assert "http" not in csp and "*" not in csp
    assert h["referrer-policy"] == "no-referrer" and h["x-frame-options"] == "DENY"
    assert "cross-origin-opener-policy" in h and "permissions-policy" in h


def test_security_headers_on_every_answer(client, serving_env):
    h = serving_env.headers
    answers = [
        client.get("/livez"),
        client.get("/readyz"),
        client.get("/metrics"),
        client.get("/docs.json"),
        client.get("/"),
        client.get("/nowhere"),
        client.post("/v1/risk", json={"patients": [REC]}, headers=h),
        client.post("/v1/risk", json={"patients": [REC]}),
        client.post("/v1/risk", content=b"{", headers={**h, **JSON}),
        client.post("/v1/risk", content=b"x", headers={**h, "content-type": "text/plain"}),
        client.get("/v1/model", headers=h),
        client.get("/v1/nothing", headers=h),
        client.post("/v1/report?format=pdf", json={"patient": REC}, headers=h),
    ]
    for r in answers:
        _secure(r)
    assert answers[6].headers["cache-control"] == "no-store"
    html = client.post("/v1/report?format=html", json={"patient": REC}, headers=h)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    _secure(html)
    csp = html.headers["content-security-policy"]
    assert "script-src" not in csp and "img-src data:" in csp
    assert "<script" not in html.text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", html.text, re.I)


# -- limits -------------------------------------------------------------------------------------------------------


def test_rate_limit_per_key_429_with_retry_after(client, serving_env, limits_of):
    other = KeyStore(serving_env.keys_db).create("rate-other")
    try:
        limits_of(rate_per_minute=60, rate_burst=3)
        codes = [client.get("/v1/model", headers=serving_env.headers).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        r = client.get("/v1/model", headers=serving_env.headers)
        err = _assert_error(r, 429)
        assert err["detail"][0]["field"] == "Authorization" and 1 <= int(r.headers["retry-after"]) <= 60
        _secure(r)
        # the limit is per key: another key is not affected
        assert client.get("/v1/model", headers={"Authorization": f"Bearer {other}"}).status_code == 200
        rows = AuditLog(serving_env.audit_db).recent(3)
        assert [x.status for x in rows][:2] == [429, 429] and rows[0].key_name == "tests"
    finally:
        KeyStore(serving_env.keys_db).revoke("rate-other")


def test_rate_limiter_refills_at_the_configured_rate():
    rl = limits.RateLimiter(per_minute=120, burst=2)  # 2 per second
    assert [rl.check("k", now=0.0) for _ in range(3)] == [0, 0, 1]
    assert rl.check("k", now=0.5) == 0 and rl.check("k", now=0.5) == 1
    assert rl.check("other", now=0.5) == 0
    assert limits.RateLimiter(per_minute=0, burst=0).check("k") == 0  # off


def test_full_report_queue_is_503_with_retry_after(client, serving_env, limits_of):
    state = limits_of(report_concurrency=1, report_queue=1)
    state.reports.admitted = 2  # one report rendering, one waiting: the queue is full
    r = client.post("/v1/report?format=html", json={"patient": REC}, headers=serving_env.headers)
    err = _assert_error(r, 503)
    assert err["error"] == "report queue full" and int(r.headers["retry-after"]) >= 1
    state.reports.admitted = 1  # a place in the queue: the report waits for the slot, then renders
    r = client.post("/v1/report?format=html", json={"patient": REC}, headers=serving_env.headers)
    assert r.status_code == 200
    assert state.reports.admitted == 1


def test_work_queue_admits_slots_plus_queue_then_refuses():
    async def main():
        q = limits.WorkQueue(slots=1, queue=1, typical_seconds=2.0)
        release = anyio.Event()
        results: list[str] = []

        async def job(name):
            try:
                async with q.admit():
                    await anyio.to_thread.run_sync(lambda: None, limiter=q.limiter)
                    await release.wait()
                    results.append(name)
            except limits.Busy as exc:
                results.append(f"busy {exc.retry_after}")

        async with anyio.create_task_group() as tg:
            for n in ("a", "b", "c"):
                tg.start_soon(job, n)
                await anyio.sleep(0.01)
            await anyio.sleep(0.05)
            release.set()
        return results

    results = anyio.run(main)
    assert results[0].startswith("busy ") and int(results[0].split()[1]) >= 2 and sorted(results[1:]) == ["a", "b"]


# -- stalled uploads and disconnects, driven at the ASGI level on the app's own event loop ---------------------------


def _scope(path, headers, method="POST"):
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def _drive(client, scope, receive, on_start=None, timeout=20.0):
    """Run one request through the app on the TestClient's loop; returns (status or None, headers, body)."""
    out = {"status": None, "headers": [], "body": b""}

    async def send(message):
        if message["type"] == "http.response.start":
            if on_start is not None:
                on_start()
            out["status"], out["headers"] = message["status"], message["headers"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    async def run():
        with anyio.fail_after(timeout):
            await client.app(scope, receive, send)

    client.portal.call(run)
    return out["status"], dict(out["headers"]), out["body"]


def _stalled_receive(first=b'{"patients": ['):
    sent = {"n": 0}

    async def receive():
        sent["n"] += 1
        if sent["n"] == 1:
            return {"type": "http.request", "body": first, "more_body": True}
        await anyio.sleep_forever()

    return receive


def test_stalled_upload_gets_408_and_closes(client, serving_env, limits_of):
    limits_of(body_timeout_seconds=0.5)
    auth = (b"authorization", f"Bearer {serving_env.key}".encode())
    for path in ("/v1/risk", "/v1/report"):
        scope = _scope(path, [auth, (b"content-type", b"application/json"), (b"content-length", b"100000")])
        status, headers, body = _drive(client, scope, _stalled_receive())
        assert status == 408 and headers[b"connection"] == b"close"
        assert json.loads(body)["error"] == "request body timeout"
        row = AuditLog(serving_env.audit_db).recent(1)[0]
        assert row.status == 408 and row.path == path and row.key_name == "tests"


def test_client_that_leaves_mid_upload_is_499_not_500(client, serving_env):
    auth = (b"authorization", f"Bearer {serving_env.key}".encode())
    sent = {"n": 0}

    async def receive():
        sent["n"] += 1
        if sent["n"] == 1:
            return {"type": "http.request", "body": b"{", "more_body": True}
        return {"type": "http.disconnect"}

    scope = _scope("/v1/risk", [auth, (b"content-type", b"application/json"), (b"content-length", b"5000")])
    status, _, _ = _drive(client, scope, receive)
    assert status == 499  # nobody is listening any more; the request cycle is closed all the same
    row = AuditLog(serving_env.audit_db).recent(1)[0]
    assert row.status == 499 and row.path == "/v1/risk"


def test_audit_row_exists_before_the_answer(client, serving_env):
    """The audit row is written when the request arrives and completed before the first byte of the answer."""
    log = AuditLog(serving_env.audit_db)
    auth = (b"authorization", f"Bearer {serving_env.key}".encode())
    body = json.dumps({"patients": [REC]}).encode()
    seen = {}

    async def receive():
        # while the body is being read the request is already in the audit table, status not yet known
        seen["in_flight"] = log.recent(1)[0]
        return {"type": "http.request", "body": body, "more_body": False}

    def on_start():
        seen["at_answer"] = log.recent(1)[0]

    scope = _scope("/v1/risk", [auth, (b"content-type", b"application/json")])
    status, _, _ = _drive(client, scope, receive, on_start=on_start)
    assert status == 200
    assert seen["in_flight"].path == "/v1/risk" and seen["in_flight"].status is None
    done = seen["at_answer"]
    assert done.status == 200 and done.key_name == "tests" and done.n_patients == 1
    assert done.body_sha256 is not None and len(done.body_sha256) == 64


def test_old_audit_files_get_a_nullable_status(tmp_path):
    import sqlite3

    db = tmp_path / "audit.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, key_name TEXT, "
            "method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL, model_version TEXT, "
            "n_patients INTEGER, body_sha256 TEXT, body_bytes INTEGER NOT NULL, latency_ms REAL NOT NULL);"
            "INSERT INTO audit(time, method, path, status, body_bytes, latency_ms) "
            "VALUES ('t', 'GET', '/v1/model', 200, 0, 1.0);"
        )
    log = AuditLog(db)
    row = log.begin("t2", "POST", "/v1/risk")
    assert [r.status for r in log.recent(10)] == [200, None]
    log.finish(row, status=201)
    assert [r.status for r in log.recent(10)] == [200, 201]
    with pytest.raises(ValueError):
        log.finish(row, path="/elsewhere")
