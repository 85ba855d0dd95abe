"""Worker memory settings (``serving/memory.py``) and the soak's memory trend (``serving/loadtest.py``).

The end-to-end check — a real ``bentoml serve`` worker started with two malloc arenas whose RSS stays flat under a
soak — is ``tests/serving/test_serving_resilience.py`` (slow) and ``benchmarks/resilience.py``.
"""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest

from nbrisk.serving import memory
from nbrisk.serving.commands import serve_env
from nbrisk.serving.loadtest import MemoryTrend


def test_the_serve_command_starts_workers_with_two_malloc_arenas(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert serve_env()["MALLOC_ARENA_MAX"] == "2"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # an operator's own setting is kept
    assert serve_env()["MALLOC_ARENA_MAX"] == "4"
    assert memory.serve_environment({})["MALLOC_ARENA_MAX"] == "2"


@pytest.mark.skipif(not sys.platform.startswith("linux") or not ctypes.util.find_library("c"), reason="glibc only")
def test_a_worker_started_without_the_setting_caps_its_arenas_itself():
    """In a fresh process (so that this test changes nothing in the test session's allocator): without the
    environment variable, 16 threads allocating numpy arrays use at most 2 arenas once the service's fallback ran;
    without it, more (glibc's default is 8 per core)."""
    code = """
import sys, threading, ctypes, os
os.environ.pop("MALLOC_ARENA_MAX", None)
if sys.argv[1] == "capped":
    from nbrisk.serving.memory import limit_malloc_arenas
    assert limit_malloc_arenas()
import numpy as np
def work():
    for i in range(300):
        a = [np.ones(1000 + (i * 7919) % 200000) for _ in range(4)]
threads = [threading.Thread(target=work) for _ in range(16)]
[t.start() for t in threads]; [t.join() for t in threads]
ctypes.CDLL(None).malloc_stats()
"""
    counts = {}
    for mode in ("capped", "default"):
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
        out = subprocess.run(
            [sys.executable, "-c", code, mode], capture_output=True, text=True, timeout=120, env=env, check=True
        )
        counts[mode] = out.stderr.count("Arena ")
    assert 1 <= counts["capped"] <= 2 < counts["default"], counts


def test_memory_trend_splits_warm_up_from_steady_state():
    plateau = [(0.0, 300.0), (10.0, 340.0), (20.0, 355.0), (30.0, 356.0), (40.0, 355.0), (60.0, 357.0)]
    trend = MemoryTrend.of(plateau)
    assert (trend.start, trend.warm, trend.end, trend.peak) == (300.0, 356.0, 357.0, 357.0)
    assert trend.growth == pytest.approx(1.0)
    leak = [(float(t), 300.0 + t) for t in range(0, 61, 10)]  # 1 MB per second
    assert MemoryTrend.of(leak).growth == pytest.approx(30.0)
    with pytest.raises(ValueError):
        MemoryTrend.of([])
