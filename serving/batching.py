"""Micro-batching of concurrent small ``/v1/risk`` requests (framework-free: asyncio + anyio, no BentoML).

Most of the cost of a one-patient request is fixed: the record validator and the model build pandas frames and loop
over columns whether they hold 1 patient or 100. When requests arrive concurrently, :class:`MicroBatcher` therefore
coalesces them: while one batch is being predicted (in a worker thread, so the event loop keeps accepting
requests), newly arrived requests queue up and form the next batch, answered by one
:meth:`nbrisk.serving.predictor.Predictor.risk_many` call. There is no timer: a request arriving at an idle service is
predicted at once (a batch of one, exactly :meth:`Predictor.risk`), so batching adds no latency at low load and
grows the batch — and the throughput — with the load. This is BentoML's adaptive-batching idea, done here because
the ``/v1`` routes are a mounted ASGI app.

**Small batches run on the event loop**, large ones in a worker thread. Prediction is CPU-bound Python and numpy on
small arrays, so it holds the GIL: a worker thread does not run in parallel with the event loop, it only makes the
two hand the GIL back and forth — and a thread waiting for the GIL gets it after the switch interval (5 ms), once
per hand-off, which is what a request's latency then grows by. A batch of a few patients (a few milliseconds on the
fast path) is therefore predicted inline, after one turn of the loop that lets requests already read join it; a
batch above :data:`INLINE_MAX_PATIENTS` still goes to a thread so that the loop keeps accepting connections.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio.to_thread

from nbrisk.serving.predictor import Predictor
from nbrisk.serving.schemas import RequestError, RiskRequest

#: Largest number of patients predicted in one batch (bounds the latency a batch adds to the requests behind it).
MAX_BATCH_PATIENTS = 256
#: Batches of at most this many patients are predicted on the event loop (≈ 5–10 ms on the fast path); larger ones
#: in a worker thread.
INLINE_MAX_PATIENTS = 32


class MicroBatcher:
    """Queue of pending requests drained by one task at a time; one instance per worker process (event loop)."""

    def __init__(self, max_patients: int = MAX_BATCH_PATIENTS, inline_max_patients: int = INLINE_MAX_PATIENTS):
        self.max_patients = max_patients
        self.inline_max_patients = inline_max_patients
        self._pending: list[tuple[RiskRequest, asyncio.Future]] = []
        self._draining = False
        self._task: asyncio.Task | None = None
        self.batches = 0  # counters for tests and metrics
        self.requests = 0

    async def submit(self, predictor: Predictor, request: RiskRequest) -> dict[str, Any]:
        """The ``/v1/risk`` answer for ``request``; raises its :class:`RequestError` (4xx) like ``predictor.risk``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._pending.append((request, fut))
        if not self._draining:
            self._draining = True
            # keep a reference: the event loop holds tasks only weakly
            self._task = loop.create_task(self._drain(predictor))
        return await fut

    def _take(self) -> list[tuple[RiskRequest, asyncio.Future]]:
        batch: list[tuple[RiskRequest, asyncio.Future]] = []
        n = 0
        while self._pending and (not batch or n + len(self._pending[0][0].patients) <= self.max_patients):
            item = self._pending.pop(0)
            batch.append(item)
            n += len(item[0].patients)
        return batch

    async def _drain(self, predictor: Predictor) -> None:
        try:
            while self._pending:
                await asyncio.sleep(0)  # one turn of the loop: requests already read join this batch
                batch = self._take()
                self.batches += 1
                self.requests += len(batch)
                requests = [r for r, _ in batch]
                try:
                    if sum(len(r.patients) for r in requests) <= self.inline_max_patients:
                        answers = predictor.risk_many(requests)  # on the loop: no GIL hand-off (module docstring)
                    else:
                        answers = await anyio.to_thread.run_sync(predictor.risk_many, requests)
                except BaseException as exc:  # a bug: every request of the batch fails (→ 500), none hangs
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, fut), answer in zip(batch, answers, strict=True):
                    if fut.done():  # the client went away
                        continue
                    if isinstance(answer, RequestError):
                        fut.set_exception(answer)
                    else:
                        fut.set_result(answer)
        finally:
            self._draining = False
            for _, fut in self._pending:  # only reached if the loop itself was cancelled
                if not fut.done():
                    fut.cancel()
            self._pending.clear()
