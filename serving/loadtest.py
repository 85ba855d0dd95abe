"""Load, soak and kill harness for a real ``bentoml serve`` of the risk service, on loopback only.

Used by the slow resilience tests (``tests/serving/test_serving_resilience.py``) and by
``benchmarks/resilience.py``; not imported by the service. Everything is bounded: servers bind 127.0.0.1 on a port
the kernel chose, every wait has a deadline, and servers are stopped through their process group.

* :func:`serve` — a ``bentoml serve`` process with a given environment, waited for until ``/readyz`` answers 200.
* :func:`soak` — ``concurrency`` clients posting for ``seconds``: mixed request sizes (1, 5, 25 or 100 patients) and
  a share of bad requests (invalid records, malformed JSON, wrong Content-Type), counting status codes and
  connection errors, and sampling the workers' resident memory.
* :func:`kill_worker_under_load` — ``kill -9`` of one worker while clients post, measuring the longest time without
  an answer, the time until the replacement worker answers, and which answered requests have their audit row.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from nbrisk import processes
from nbrisk.features.record import example_record
from nbrisk.serving.memory import serve_environment

SERVICE_TARGET = "nbrisk.serving.service:RiskService"


@dataclass
class Server:
    """A running ``bentoml serve``: its base URL, process (leader of its own process group) and log file."""

    base: str
    proc: subprocess.Popen
    log_path: Path

    def workers(self) -> list[psutil.Process]:
        """The uvicorn worker processes (descendants running the service), oldest first."""
        out = []
        try:
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                try:
                    cmd = " ".join(p.cmdline())
                except psutil.Error:
                    continue
                if "_bentoml_impl.worker" in cmd or "worker.service" in cmd:
                    out.append(p)
        except psutil.Error:
            return []
        return sorted(out, key=lambda p: p.create_time())

    def rss_mb(self) -> float:
        """Resident memory of all workers, MB."""
        total = 0
        for p in self.workers():
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20


@contextmanager
def serve(
    home: Path,
    env_extra: dict[str, str],
    workers: int = 1,
    timeout: float = 300.0,
    ready: tuple[int, ...] = (200,),
) -> Iterator[Server]:
    """Run ``bentoml serve`` of the risk service with ``NBRISK_HOME=home`` and ``env_extra``; yield once ``/readyz``
    answers one of ``ready`` (``(200, 503)``: the server is up, with or without a model)."""
    port = processes.free_port()
    log_path = home / f"serve-{port}.log"
    env = processes.clean_env(
        BENTOML_HOME=str(home / "bentoml"),
        BENTOML_DO_NOT_TRACK="true",
        NBRISK_HOME=str(home),
        NBRISK_WORKERS=str(workers),
        **env_extra,
    )
    serve_environment(env)  # the workers' malloc settings, as `nbrisk serve` sets them
    cmd = [sys.executable, "-m", "bentoml", "serve", SERVICE_TARGET, "--host", "127.0.0.1", "--port", str(port)]
    proc = processes.start(cmd, log_path, env=env)
    server = Server(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        processes.wait_until(
            lambda: httpx.get(f"{server.base}/readyz", timeout=2).status_code in ready,
            timeout,
            proc=proc,
            log_path=log_path,
            what="bentoml serve",
        )
        yield server
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Stop a server started by :func:`serve` through its process group (SIGTERM, then SIGKILL)."""
    processes.stop_group(proc)


# -- requests -----------------------------------------------------------------------------------------------------

SIZES = (1, 1, 1, 1, 5, 5, 25, 100)  # mostly single patients, sometimes a ward list


def _patients(n: int, tag: str) -> list[dict[str, Any]]:
    rec = example_record(with_outcomes=False)
    return [{**rec, "patient_id": f"{tag}-{i}", "lansky_score": 60 + 10 * (i % 5)} for i in range(n)]


def make_request(rng: random.Random, tag: str, bad_fraction: float) -> tuple[bytes, dict[str, str], str]:
    """(body, headers, kind): a good request of a random size, or one of several kinds of bad request."""
    headers = {"content-type": "application/json"}
    if rng.random() < bad_fraction:
        kind = rng.choice(["invalid", "malformed", "content-type", "unknown-field"])
        if kind == "invalid":
            pats = _patients(rng.choice(SIZES), tag)
            pats[0]["lansky_score"] = 95  # not a multiple of 10
            return json.dumps({"patients": pats}).encode(), headers, kind
        if kind == "malformed":
            return b'{"patients": [' + tag.encode(), headers, kind
        if kind == "content-type":
            return json.dumps({"patients": _patients(1, tag)}).encode(), {"content-type": "text/plain"}, kind
        return json.dumps({"patients": [{**_patients(1, tag)[0], "x" * 500: 1}]}).encode(), headers, kind
    return json.dumps({"patients": _patients(rng.choice(SIZES), tag)}).encode(), headers, "good"


@dataclass
class LoadResult:
    """What a load run saw."""

    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    connection_errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MB)
    answered: list[tuple[str, int, float]] = field(default_factory=list)  # (sha256 of body, status, time answered)
    wrong_kind: int = 0  # a good request not answered 200 or a bad one answered 200

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def percentile(self, q: float) -> float:
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(q / 100 * len(xs)))] if xs else float("nan")

    def memory(self) -> MemoryTrend:
        """The workers' resident memory over the run, split into warm-up (first half) and steady state."""
        return MemoryTrend.of(self.rss_mb)


@dataclass(frozen=True)
class MemoryTrend:
    """Worker RSS over a load run: ``start`` (first sample), ``warm`` (at half time: caches, thread pool and malloc
    arenas filled), ``end``, the steady-state growth ``end − warm`` and the highest sample.

    Flat memory means the steady-state growth stays within the allocator's noise: a leak grows linearly with the
    requests served, whereas what the first half fills (pools, caches, the allocator's high-water marks) does not
    grow again in the second half.
    """

    start: float
    warm: float
    end: float
    peak: float
    seconds: float

    @property
    def growth(self) -> float:
        return self.end - self.warm

    @classmethod
    def of(cls, samples: list[tuple[float, float]]) -> MemoryTrend:
        if not samples:
            raise ValueError("no RSS sample")
        t_end = samples[-1][0]
        warm = next(m for t, m in samples if t >= t_end / 2)
        return cls(samples[0][1], warm, samples[-1][1], max(m for _, m in samples), t_end)


async def _load(
    server: Server,
    key: str,
    seconds: float,
    concurrency: int,
    bad_fraction: float,
    seed: int,
    rss_every: float,
    result: LoadResult,
    stop_event: asyncio.Event | None = None,
) -> None:
    start = time.monotonic()
    t_end = start + seconds
    auth = {"authorization": f"Bearer {key}"}

    async def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        n = 0
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=server.base, timeout=60, limits=limits) as c:
            while time.monotonic() < t_end and not (stop_event and stop_event.is_set()):
                n += 1
                body, headers, kind = make_request(rng, f"L{seed}-{i}-{n}", bad_fraction)
                t0 = time.monotonic()
                try:
                    r = await c.post("/v1/risk", content=body, headers={**headers, **auth})
                except httpx.HTTPError:
                    result.connection_errors += 1
                    await asyncio.sleep(0.05)
                    continue
                now = time.monotonic()
                result.latencies_ms.append((now - t0) * 1000)
                result.statuses[r.status_code] += 1
                result.answered.append((hashlib.sha256(body).hexdigest(), r.status_code, now - start))
                if (kind == "good") != (r.status_code == 200):
                    result.wrong_kind += 1

    async def sample_rss() -> None:
        while time.monotonic() < t_end and not (stop_event and stop_event.is_set()):
            result.rss_mb.append((time.monotonic() - start, server.rss_mb()))
            await asyncio.sleep(rss_every)

    await asyncio.gather(*(client(i) for i in range(concurrency)), sample_rss())
    result.seconds = time.monotonic() - start
    result.rss_mb.append((result.seconds, server.rss_mb()))


def soak(
    server: Server, key: str, seconds: float, concurrency: int = 16, bad_fraction: float = 0.1, seed: int = 0
) -> LoadResult:
    """``concurrency`` clients posting mixed requests for ``seconds`` (see the module docstring)."""
    result = LoadResult()
    asyncio.run(_load(server, key, seconds, concurrency, bad_fraction, seed, max(1.0, seconds / 60), result))
    return result


@dataclass
class KillResult:
    """What :func:`kill_worker_under_load` measured."""

    load: LoadResult
    killed_at: float  # seconds since the load started
    longest_gap_s: float  # longest time without any answer, around the kill
    replacement_ready_s: float | None  # from the kill until the replacement worker answered /readyz-equivalent
    first_answer_after_kill_s: float | None
    missing_audit_rows: int  # answered requests without an audit row of the same body hash and status
    in_flight_rows: int  # rows without a status (requests the killed worker never answered)


def kill_worker_under_load(
    server: Server, key: str, audit_db: Path, seconds: float = 20.0, kill_after: float = 5.0, concurrency: int = 8
) -> KillResult:
    """Post single-patient requests for ``seconds`` and ``kill -9`` the oldest worker after ``kill_after``."""
    result = LoadResult()
    before = {p.pid for p in server.workers()}
    state: dict[str, Any] = {}

    async def killer() -> None:
        await asyncio.sleep(kill_after)
        victim = server.workers()[0]
        state["killed_at"] = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        deadline = time.monotonic() + max(5.0, seconds)
        while time.monotonic() < deadline:  # the replacement: a new worker process whose service has started
            fresh = [p for p in server.workers() if p.pid not in before]
            if fresh and _worker_started(server, fresh[0].pid):
                state["ready"] = time.monotonic() - state["killed_at"]
                return
            await asyncio.sleep(0.1)

    async def main() -> None:
        state["start"] = time.monotonic()
        await asyncio.gather(_load(server, key, seconds, concurrency, 0.0, 7, 1.0, result), killer())

    asyncio.run(main())
    killed_at = state["killed_at"] - state["start"]
    times = sorted([0.0, *(t for _, _, t in result.answered), result.seconds])
    gaps = [b - a for a, b in itertools.pairwise(times)]
    after = [t for _, _, t in result.answered if t > killed_at]
    missing, in_flight = _audit_check(audit_db, result.answered)
    return KillResult(
        load=result,
        killed_at=killed_at,
        longest_gap_s=max(gaps),
        replacement_ready_s=state.get("ready"),
        first_answer_after_kill_s=(min(after) - killed_at) if after else None,
        missing_audit_rows=missing,
        in_flight_rows=in_flight,
    )


def _worker_started(server: Server, pid: int) -> bool:
    """Whether the worker ``pid`` has loaded the model (its "serving model" log line; workers log their pid)."""
    text = server.log_path.read_text(errors="replace")
    return f"[{pid}]" in text and "serving model" in text.split(f"[{pid}]", 1)[1]


def _audit_check(audit_db: Path, answered: list[tuple[str, int, float]]) -> tuple[int, int]:
    with closing(sqlite3.connect(audit_db, timeout=30)) as conn:
        rows = conn.execute("SELECT body_sha256, status FROM audit WHERE path = '/v1/risk'").fetchall()
    have = Counter((h, s) for h, s in rows if s is not None)
    want = Counter((h, s) for h, s, _ in answered)
    missing = sum(max(0, n - have[k]) for k, n in want.items())
    return missing, sum(1 for _, s in rows if s is None)
