"""Memory of the service's worker processes: a bounded number of glibc malloc arenas.

glibc's ``malloc`` gives each thread that contends for the heap an *arena* of its own, up to 8 per core (16 on this
2-core machine). A worker answers with many threads — the event loop, AnyIO's pool for larger requests (up to 40
threads), SQLite's audit writes — and each request of 25–100 patients allocates and frees numpy arrays of a few
hundred kB. Each arena keeps the peak of what its threads once held (freed chunks stay mapped for reuse, and glibc
raises its mmap threshold after the first large free, so later large arrays come from the arenas too). Resident
memory therefore creeps up for many minutes as more threads reach their peak in more arenas: a 600-second soak at
concurrency 16 measured 363 MB idle → 449 MB at the end, still rising; in process, the same requests from 4 threads
stay flat, and with ``MALLOC_ARENA_MAX=2`` the worker levels off after a few minutes (numbers in
``benchmarks/results/resilience.md``).

Two arenas keep memory flat at no measurable cost here: prediction holds the GIL anyway, so the threads never
allocate truly in parallel (glibc manual, "Memory Allocation Tunables": ``glibc.malloc.arena_max``; the same advice as
for other threaded Python servers).

* :func:`serve_environment` puts ``MALLOC_ARENA_MAX=2`` into the environment of ``bentoml serve`` (``nbrisk serve``
  and the load-test harness), so every worker starts with it; a value already set by the operator is kept.
* :func:`limit_malloc_arenas` is the worker's own best effort when it was started some other way (``bentoml serve``
  by hand): ``mallopt(M_ARENA_MAX, 2)`` at service start, which caps the arenas created from then on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from collections.abc import MutableMapping

logger = logging.getLogger("nbrisk.serving")

#: glibc's environment variable for the maximum number of malloc arenas (read once, when a process starts).
ARENA_ENV = "MALLOC_ARENA_MAX"
#: Arenas per worker process (see the module docstring).
SERVED_ARENAS = 2
#: ``mallopt`` parameter number of M_ARENA_MAX in glibc's ``malloc.h``.
_M_ARENA_MAX = -8


def serve_environment(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the workers' malloc settings to ``env`` (the environment of ``bentoml serve``), keeping any value the
    operator set; returns ``env``."""
    env.setdefault(ARENA_ENV, str(SERVED_ARENAS))
    return env


def limit_malloc_arenas(arenas: int = SERVED_ARENAS) -> bool:
    """Cap glibc's malloc arenas of this process at ``arenas`` (``mallopt(M_ARENA_MAX)``), unless the environment
    already sets ``MALLOC_ARENA_MAX`` (glibc applied it at start). True when the cap is in place; False on a C
    library without ``mallopt`` (musl, macOS), where nothing is changed."""
    if os.environ.get(ARENA_ENV):
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        mallopt = None
    if mallopt is None:
        logger.info("malloc arenas not limited (no mallopt in this C library)")
        return False
    return bool(mallopt(_M_ARENA_MAX, int(arenas)))
