"""Fuzzing the HTTP API: no body, however broken, gets a 5xx; every refusal is the contract's JSON error.

Two generators, both deterministic (``derandomize=True``: the same examples on every run, so the test is not flaky):
hand-written hypothesis strategies (arbitrary JSON, arbitrary bytes, valid records with one field replaced by an
arbitrary JSON value, dropped or added) — 1,000 requests — and schemathesis driven by the service's own OpenAPI
document (``/docs.json``), positive and negative modes. Slow (tens of seconds on 2 cores).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbrisk.features.record import FIELDS, example_record

pytestmark = pytest.mark.slow

REC = example_record(with_outcomes=False)
_SETTINGS = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12
)


@st.composite
def mutated_record(draw):
    rec = dict(REC)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        field = draw(st.sampled_from(sorted(FIELDS)))
        if action == "replace":
            rec[field] = draw(json_values)
        elif action == "drop":
            rec.pop(field, None)
        else:
            rec[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    return rec


@st.composite
def bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["records", "records", "records", "json", "bytes", "horizons"]))
    if kind == "records":
        pats = draw(st.lists(mutated_record() | st.just(REC) | json_values, min_size=0, max_size=4))
        obj = {"patients": pats}
        if draw(st.booleans()):
            obj["horizons_months"] = draw(st.lists(json_scalars, max_size=4) | json_values)
        return json.dumps(obj, allow_nan=False).encode()
    if kind == "horizons":
        return json.dumps(
            {
                "patients": [REC],
                "horizons_months": draw(
                    st.lists(
                        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.integers(-200, 200), max_size=30
                    )
                ),
            }
        ).encode()
    if kind == "json":
        return json.dumps(draw(json_values), allow_nan=False).encode()
    return draw(st.binary(max_size=200))


def _check(r) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    body = r.json()
    if r.status_code == 200:
        assert set(body) == {"model", "results"}
    else:
        assert set(body) == {"error", "detail"}
        for d in body["detail"]:
            assert set(d) == {"patient_index", "field", "message"}


def test_thousand_generated_bodies_never_5xx(client, serving_env):
    seen: dict[int, int] = {}

    @settings(max_examples=1000, **_SETTINGS)
    @given(body=bodies())
    def run(body):
        r = client.post("/v1/risk", content=body, headers={**serving_env.headers, "content-type": "application/json"})
        _check(r)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1

    run()
    assert sum(seen.values()) >= 1000
    assert {200, 400, 422} <= set(seen)  # the generator reaches valid, malformed and invalid bodies


@pytest.fixture(scope="module")
def openapi_schema(client):
    import schemathesis

    return schemathesis.openapi.from_dict(client.get("/docs.json").json())


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("path,examples", [("/v1/risk", 150), ("/v1/report", 15)])
def test_schemathesis_no_5xx(client, serving_env, openapi_schema, mode, path, examples):
    from schemathesis.generation.modes import GenerationMode

    strategy = openapi_schema[path]["POST"].as_strategy(generation_mode=GenerationMode(mode))

    @settings(max_examples=examples, **_SETTINGS)
    @given(case=strategy)
    def run(case):
        query = {"format": "html"} if path == "/v1/report" else None  # HTML: the fast renderer
        kwargs = (
            {"json": case.body}
            if case.body is not None and not isinstance(case.body, bytes | str)
            else {"content": case.body if case.body is not None else b""}
        )
        r = client.post(
            path, params=query, headers={**serving_env.headers, "content-type": "application/json"}, **kwargs
        )
        assert r.status_code < 500, (r.status_code, r.text[:300])

    run()
