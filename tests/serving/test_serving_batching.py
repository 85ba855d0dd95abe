"""Micro-batching: a batch of requests gets exactly the answers each request would get alone."""

from __future__ import annotations

import asyncio
import json

import pytest

from nbrisk.features.record import example_record
from nbrisk.serving.batching import MicroBatcher
from nbrisk.serving.predictor import Predictor
from nbrisk.serving.schemas import RequestError, parse_risk_request

REC = example_record(with_outcomes=False)


@pytest.fixture(scope="module")
def predictor(risk_model) -> Predictor:
    return Predictor.from_risk_model(risk_model, version="5", alias="champion")


def req(patients, horizons=None):
    body = {"patients": patients} if horizons is None else {"patients": patients, "horizons_months": horizons}
    return parse_risk_request(json.dumps(body).encode())


def alone(predictor, r):
    try:
        return predictor.risk(r.patients, r.horizons_months, r.problems)
    except RequestError as exc:
        return exc


REQUESTS = [
    [REC],
    [dict(REC, patient_id="M-1", disease_status_at_hsct="PD", curie_score_at_hsct=12), dict(REC, patient_id="M-2")],
    [dict(REC, lansky_score=95)],  # invalid value
    [REC, REC],  # duplicate id within one request
    [dict(REC, hsct_year=2010)],  # same id as request 0: fine across requests
    [dict(REC, unknown_field=1)],  # unknown field in one request only
    [7, dict(REC, patient_id="N-2", sex={"x": 1})],  # shape problems
    [dict(REC, patient_id="H-1")],
]


def same(a, b) -> bool:
    if isinstance(a, RequestError) or isinstance(b, RequestError):
        return (
            isinstance(a, RequestError)
            and isinstance(b, RequestError)
            and a.status_code == b.status_code
            and {(d.patient_index, d.field) for d in a.detail} == {(d.patient_index, d.field) for d in b.detail}
        )
    return a == b


def test_risk_many_equals_each_request_alone(predictor):
    reqs = [req(p) for p in REQUESTS]
    reqs[-1] = req(REQUESTS[-1], [6, 60])  # another horizon set in the same batch
    batch = predictor.risk_many(reqs)
    for j, r in enumerate(reqs):
        assert same(batch[j], alone(predictor, r)), j
    assert isinstance(batch[2], RequestError) and isinstance(batch[3], RequestError)
    assert not isinstance(batch[4], RequestError)  # ids may repeat across requests


def test_micro_batcher_coalesces_concurrent_requests(predictor):
    reqs = [req([dict(REC, patient_id=f"C-{i}", hsct_year=2005 + i % 15)]) for i in range(24)]
    reqs[5] = req([dict(REC, sex="x")])

    async def run():
        b = MicroBatcher()
        results = await asyncio.gather(*(b.submit(predictor, r) for r in reqs), return_exceptions=True)
        return b, results

    b, results = asyncio.run(run())
    assert b.requests == 24 and b.batches < 24  # concurrent arrivals were predicted together
    for r, got in zip(reqs, results, strict=True):
        assert same(got, alone(predictor, r))
    assert isinstance(results[5], RequestError) and results[5].status_code == 422


def test_micro_batcher_respects_the_batch_size(predictor):
    reqs = [req([dict(REC, patient_id=f"S-{i}-{k}") for k in range(3)]) for i in range(10)]

    async def run():
        b = MicroBatcher(max_patients=6)
        await asyncio.gather(*(b.submit(predictor, r) for r in reqs))
        return b

    b = asyncio.run(run())
    assert b.batches >= 5  # at most two 3-patient requests per batch


def test_small_batches_run_on_the_event_loop_large_ones_in_a_thread(predictor):
    """Small batches are predicted inline (no GIL hand-off to a worker thread); large ones in a worker thread so
    that the event loop keeps accepting connections."""
    import threading

    threads: list[int] = []

    class Spy:
        def risk_many(self, requests):
            threads.append(threading.get_ident())
            return predictor.risk_many(requests)

    small = [req([dict(REC, patient_id=f"I-{i}")]) for i in range(4)]
    large = [req([dict(REC, patient_id=f"L-{i}-{k}") for k in range(40)]) for i in range(2)]

    async def run(reqs):
        b = MicroBatcher(inline_max_patients=32)
        await asyncio.gather(*(b.submit(Spy(), r) for r in reqs))
        return threading.get_ident()

    loop_thread = asyncio.run(run(small))
    assert threads and set(threads) == {loop_thread}
    threads.clear()
    loop_thread = asyncio.run(run(large))
    assert threads and loop_thread not in threads
