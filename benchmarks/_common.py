"""Helpers shared by the benchmark scripts (run as ``uv run python benchmarks/<name>.py``: this folder is on the path).

Not part of the package and not a benchmark itself.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pandas as pd


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def latency_summary(fn, calls: int, warmup: int = 20) -> dict[str, float]:
    """Per-call wall times of ``fn()`` over ``calls`` calls after ``warmup`` untimed ones → median, p99 and max in
    seconds (the tail matters for a served call: one slow call in a hundred is what a clinician notices), and the
    fastest call (``min``) and the median CPU time of a call (``cpu_median``)."""
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(calls):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    times.sort()
    return {
        "median": statistics.median(times),
        "p99": times[min(len(times) - 1, int(0.99 * len(times)))],
        "max": times[-1],
        "min": times[0],  # the fastest call: a proxy for a quiet machine when other jobs share the cores
        # CPU time of this thread per call: what the call costs, whatever else the machine's cores are doing (on a
        # shared machine wall times include waiting for a core)
        "cpu_median": statistics.median(cpu),
    }


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub markdown table of ``df`` (cells already formatted as text); no extra dependency."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(map(str, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def write_results(path: Path, text: str) -> None:
    """Write a results file (creating its folder) and echo it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
