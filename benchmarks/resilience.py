"""Resilience benchmark: a long soak and ``kill -9`` of a worker under load, against a real ``bentoml serve`` of the
risk service on loopback. Writes ``benchmarks/results/resilience.md``.

    uv run python benchmarks/resilience.py                      # 10-minute soak + kill tests: ~20 minutes on 2 cores
    uv run python benchmarks/resilience.py --soak-seconds 60    # a quick look

What it does (every wait bounded; servers bound to 127.0.0.1 and stopped through their process group):

1. A temporary ``NBRISK_HOME`` (or ``--home``) with its own SQLite MLflow registry; if it has no ``nbrisk@champion``,
   ``configs/quick.toml`` is trained on the embedded synthetic cohort (as ``scripts/start.sh`` does).
2. **Soak**: one worker (the default), 16 concurrent clients for ``--soak-seconds`` (default 600), each posting
   ``/v1/risk`` with 1, 5, 25 or 100 patients (mostly 1) and 10% bad requests (an invalid record, malformed JSON, a
   ``text/plain`` body, an unknown field). Counts every status, 5xx and connection error, checks that good requests
   got 200 and bad ones 4xx, and samples the worker's resident memory (RSS) every ``soak/60`` seconds. Memory is
   flat when RSS grows by at most :data:`FLAT_MB` over the second half of the soak (the first half fills the thread
   pool, caches and the allocator's arenas; see :class:`nbrisk.serving.loadtest.MemoryTrend`).
3. **Kill, one worker**: 8 clients post single patients; after 10 s the worker gets ``kill -9``. Measured: the time
   until the first answer after the kill (the supervisor starts a new worker, which imports the libraries and
   loads the model), requests lost in flight, and whether every answered request has its audit row.
4. **Kill, two workers**: the same with ``NBRISK_WORKERS=2``: the longest time without any answer (the other worker
   keeps answering), and the time until the replacement worker has loaded the model.

Uses :mod:`nbrisk.serving.loadtest` (the harness of the slow tests). The load generator shares the two cores with
the server, as in any single-machine benchmark; the load average is recorded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

from _common import write_results

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "resilience.md"
#: Largest RSS growth (MB) over the second half of the soak that still counts as flat memory: 2–3% of a worker's
#: ~350 MB, above the allocator's steps once warm (a few MB), and below what a leak of 1 kB per request adds over
#: the ~10,000+ requests of five minutes at concurrency 16 on 2 cores (10 MB or more).
FLAT_MB = 10.0


def _env(home: Path) -> dict[str, str]:
    return {
        "NBRISK_KEYS_DB": str(home / "keys.db"),
        "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"],
        "MLFLOW_REGISTRY_URI": os.environ["MLFLOW_TRACKING_URI"],
        "NBRISK_MODEL_REFRESH_SECONDS": "0",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--soak-seconds", type=float, default=600.0)
    ap.add_argument("--kill-seconds", type=float, default=90.0, help="length of each kill run")
    ap.add_argument("--home", type=Path, default=None, help="NBRISK_HOME to use (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="nbrisk-resilience-"))
    home = args.home or tmp
    os.environ["NBRISK_HOME"] = str(home)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlruns' / 'mlflow.db'}")
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    load_start = os.getloadavg()

    from nbrisk.serving import loadtest
    from nbrisk.serving.auth import KeyStore
    from nbrisk.start import DEFAULT_CONFIG, ensure_champion

    version = ensure_champion(DEFAULT_CONFIG, experiment="nbrisk-resilience")
    key = KeyStore(home / "keys.db").create(f"resilience-{int(time.time())}")

    # 2. soak
    run = tmp / "soak"
    run.mkdir()
    with loadtest.serve(run, {**_env(home), "NBRISK_AUDIT_DB": str(run / "audit.db")}, workers=1) as server:
        rss_idle = server.rss_mb()
        print(f"soak: {args.soak_seconds:.0f} s at concurrency 16 ...", flush=True)
        soak = loadtest.soak(server, key, seconds=args.soak_seconds, concurrency=16, bad_fraction=0.1, seed=3)
        rss_after = server.rss_mb()
    # 3./4. kills
    kills = {}
    for workers in (1, 2):
        run = tmp / f"kill{workers}"
        run.mkdir()
        with loadtest.serve(run, {**_env(home), "NBRISK_AUDIT_DB": str(run / "audit.db")}, workers=workers) as server:
            print(f"kill -9 with {workers} worker(s) ...", flush=True)
            kills[workers] = loadtest.kill_worker_under_load(
                server, key, run / "audit.db", seconds=args.kill_seconds, kill_after=10.0, concurrency=8
            )
    load_end = os.getloadavg()
    write_results(args.out, report(soak, rss_idle, rss_after, kills, version, load_start, load_end, args))
    return 0


def report(soak, rss_idle, rss_after, kills, version, load_start, load_end, args) -> str:
    samples = [m for _, m in soak.rss_mb]
    mem = soak.memory()
    half = sum(1 for _, _, t in soak.answered if t >= mem.seconds / 2)
    every = max(1, round(len(soak.rss_mb) / 10))
    timeline = soak.rss_mb[::every] + ([soak.rss_mb[-1]] if (len(soak.rss_mb) - 1) % every else [])
    total = soak.requests
    bad = sum(n for s, n in soak.statuses.items() if 400 <= s < 500)
    lines = [
        "# Resilience: soak and kill -9 (`benchmarks/resilience.py`)",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, this machine: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; model `nbrisk` version {version} (`configs/quick.toml`, SYNTHETIC). "
        f"1-minute load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end (the two cores were "
        "shared with other jobs: latencies are upper bounds).",
        "",
        f"## Soak: {soak.seconds:.0f} s, 16 concurrent clients, one worker",
        "",
        "Requests of 1, 5, 25 or 100 patients (1 in half of them), 10% bad requests (invalid record, malformed JSON, "
        "`text/plain` body, unknown field).",
        "",
        "| requests | answers by status | 5xx | connection errors | wrong answers | p50 | p99 | max |",
        "|---|---|---|---|---|---|---|---|",
        f"| {total:,} ({total / soak.seconds:.1f}/s) | "
        + ", ".join(f"{s}: {n:,}" for s, n in sorted(soak.statuses.items()))
        + f" | {soak.server_errors} | {soak.connection_errors} | {soak.wrong_kind} | {soak.percentile(50):.0f} ms | "
        f"{soak.percentile(99):.0f} ms | {max(soak.latencies_ms):.0f} ms |",
        "",
        f"4xx share {bad / max(total, 1):.1%} (every bad request got a 4xx, every good one a 200: 'wrong answers' "
        "counts exceptions).",
        "",
        "Worker resident memory (RSS) over the soak (the worker runs with `MALLOC_ARENA_MAX=2`, as `nbrisk serve` "
        "starts it: `serving/memory.py`):",
        "",
        "| " + " | ".join(f"{t:.0f} s" for t, _ in timeline) + " |",
        "|" + "---|" * len(timeline),
        "| " + " | ".join(f"{m:.0f} MB" for _, m in timeline) + " |",
        "",
        f"Idle before the soak {rss_idle:.0f} MB; at half time ({mem.seconds / 2:.0f} s) {mem.warm:.0f} MB; at the "
        f"end {mem.end:.0f} MB (after the soak {rss_after:.0f} MB); min/max over the soak {min(samples):.0f}/"
        f"{mem.peak:.0f} MB. Growth over the second half: {mem.growth:+.1f} MB over {half:,} requests "
        f"({mem.growth * 1024 / max(half, 1):+.2f} kB per request) → memory flat: "
        f"{'MET' if mem.growth <= FLAT_MB else 'NOT MET'} (≤ {FLAT_MB:.0f} MB: the first half fills the thread pool, "
        "caches and malloc arenas; a leak grows with every request, so it shows in the second half).",
        "",
        "## kill -9 of a worker under load (8 clients, single-patient requests, kill after 10 s)",
        "",
        "| workers | answered (status) | lost in flight (connection errors) | longest time without an answer | "
        "first answer after the kill | replacement worker serving | answered requests without audit row | "
        "rows left without status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workers, k in kills.items():
        ready = f"{k.replacement_ready_s:.1f} s" if k.replacement_ready_s is not None else "not within the run"
        first = f"{k.first_answer_after_kill_s:.2f} s" if k.first_answer_after_kill_s is not None else "none"
        lines.append(
            f"| {workers} | {', '.join(f'{s}: {n:,}' for s, n in sorted(k.load.statuses.items()))} | "
            f"{k.load.connection_errors} | {k.longest_gap_s:.2f} s | {first} | {ready} | {k.missing_audit_rows} | "
            f"{k.in_flight_rows} |"
        )
    lines += [
        "",
        "With one worker the service is down until the supervisor's new worker has imported the libraries and loaded "
        "the model (the 'first answer after the kill'); connections made meanwhile wait in the listening socket's "
        "backlog and are answered then. With two workers the other one keeps answering: the longest pause is the "
        "requests that were in flight on the killed worker. Requests in flight on the killed worker are lost to their "
        "clients (connection errors, never a 5xx) and leave an audit row without a status (written when the request "
        "arrived); every answered request has its complete row.",
        "",
        f"Command: `uv run python benchmarks/resilience.py --soak-seconds {args.soak_seconds:.0f} "
        f"--kill-seconds {args.kill_seconds:.0f}`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
