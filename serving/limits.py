"""Limits that keep one client from starving the others: per-key rate limiting, a bounded queue for the CPU-heavy
reports, and the request-body read timeout.

All three are per worker process (no shared state between uvicorn workers: a limit of R requests per minute with
``NBRISK_WORKERS=2`` lets one key reach up to 2·R when its connections land on both workers) and are read from the
environment when the service starts (:meth:`Limits.from_env`):

``NBRISK_RATE_LIMIT_PER_MINUTE``
    requests per minute per API key on ``/v1`` (default 0 = off). A token bucket (the metering of RFC 2697, "A Single
    Rate Three Color Marker", with one bucket and no colours): each key may burst up to
    ``NBRISK_RATE_LIMIT_BURST`` requests (default a tenth of the per-minute rate, at least 10) and is then refilled
    at the per-minute rate. Past it: ``429`` with ``Retry-After`` (whole seconds until a token is back). Off by
    default so that tests and benchmarks measure the service, not the limiter; a deployment sets it.
``NBRISK_REPORT_CONCURRENCY`` / ``NBRISK_REPORT_QUEUE``
    PDF/HTML reports rendered at once (default 1: a PDF takes ~1.3 s of CPU, and two at a time on 2 cores only
    slow each other and the risk requests down) and reports allowed to wait for a slot (default 4). A report that
    finds the queue full gets ``503`` with ``Retry-After`` (the expected wait, from the running mean render time),
    instead of waiting tens of seconds behind the others.
``NBRISK_BODY_TIMEOUT_SECONDS``
    the whole request body must arrive within this many seconds of the first read (default 30; 8 MiB at
    280 KB/s). A client that declares a body and sends it too slowly (or not at all) gets ``408`` and the connection
    is closed, instead of holding a worker's connection slot open indefinitely.

The service calls :func:`configure` once per process; the middleware and handlers read :func:`current` per request
(one attribute load), so tests can swap the limits of the running app.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from nbrisk.serving.schemas import ProblemDetail, RequestError


@dataclass(frozen=True)
class Limits:
    """The service's limits (see the module docstring for each)."""

    rate_per_minute: float = 0.0
    rate_burst: int = 0
    report_concurrency: int = 1
    report_queue: int = 4
    body_timeout_seconds: float = 30.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Limits:
        e = os.environ if env is None else env
        rate = float(e.get("NBRISK_RATE_LIMIT_PER_MINUTE", "0") or 0)
        burst = int(e.get("NBRISK_RATE_LIMIT_BURST", "0") or 0) or max(10, math.ceil(rate / 10))
        return cls(
            rate_per_minute=max(rate, 0.0),
            rate_burst=burst,
            report_concurrency=max(1, int(e.get("NBRISK_REPORT_CONCURRENCY", "1"))),
            report_queue=max(0, int(e.get("NBRISK_REPORT_QUEUE", "4"))),
            body_timeout_seconds=float(e.get("NBRISK_BODY_TIMEOUT_SECONDS", "30")),
        )


class TooManyRequests(RequestError):
    """Rate limit of the key exceeded (429); ``retry_after`` in whole seconds."""

    status_code = 429

    def __init__(self, retry_after: int):
        super().__init__(
            "rate limit exceeded",
            [ProblemDetail(None, "Authorization", f"too many requests for this API key; retry in {retry_after} s")],
        )
        self.retry_after = retry_after
        self.headers = {"retry-after": str(retry_after)}


class Busy(RequestError):
    """The report queue is full (503); ``retry_after`` in whole seconds."""

    status_code = 503

    def __init__(self, retry_after: int):
        super().__init__(
            "report queue full",
            [ProblemDetail(None, None, f"too many reports in progress; retry in {retry_after} s")],
        )
        self.retry_after = retry_after
        self.headers = {"retry-after": str(retry_after)}


class BodyTimeout(RequestError):
    """The request body did not arrive in time (408)."""

    status_code = 408

    def __init__(self, seconds: float):
        super().__init__(
            "request body timeout",
            [ProblemDetail(None, None, f"the request body did not arrive within {seconds:g} s")],
        )
        self.headers = {"connection": "close"}  # the rest of the body will not be read: the connection must go


class RateLimiter:
    """Token buckets keyed by API-key name (a server-side name, so the table is bounded by the number of keys)."""

    def __init__(self, per_minute: float, burst: int):
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, last refill time)
        self._lock = threading.Lock()

    def check(self, key: str, now: float | None = None) -> int:
        """Take one token for ``key``: 0 if allowed, else the whole seconds until a token is back."""
        if self.rate <= 0:
            return 0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.rate))


class WorkQueue:
    """At most ``slots`` jobs run at once and at most ``queue`` wait; one more is refused with :class:`Busy`.

    Used by ``POST /v1/report``: ``async with queue.admit(): ...`` then run the job with ``limiter=queue.limiter``.
    The expected wait for ``Retry-After`` comes from an exponentially weighted mean of the observed job times.
    """

    def __init__(self, slots: int, queue: int, typical_seconds: float = 3.0):
        self.slots = slots
        self.queue = queue
        self.limiter = anyio.CapacityLimiter(slots)
        self.mean_seconds = typical_seconds
        self.admitted = 0  # running + waiting (one event loop per worker: no lock needed)

    def retry_after(self) -> int:
        waves = math.ceil((self.admitted + 1) / self.slots)
        return max(1, math.ceil(waves * self.mean_seconds))

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self.admitted >= self.slots + self.queue:
            raise Busy(self.retry_after())
        self.admitted += 1
        start = time.monotonic()
        try:
            yield
        finally:
            self.admitted -= 1
            self.mean_seconds = 0.8 * self.mean_seconds + 0.2 * (time.monotonic() - start)


class _State:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.rate = RateLimiter(limits.rate_per_minute, limits.rate_burst)
        self.reports = WorkQueue(limits.report_concurrency, limits.report_queue)


_state = _State(Limits())


def configure(limits: Limits) -> None:
    """Install ``limits`` for this process (fresh buckets and a fresh report queue)."""
    global _state
    _state = _State(limits)


def current() -> Any:
    """The installed limits and their live objects: ``.limits``, ``.rate`` (RateLimiter), ``.reports``."""
    return _state
