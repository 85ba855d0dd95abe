"""Training fits as tasks on a Dask cluster (``nbrisk train --cluster ADDRESS``).

The training job already expresses its refits as joblib ``Parallel`` loops (outer CV folds with their inner tuning,
bootstrap CIs, optimism refits, leave-center-out, interval refits). Inside :func:`training_cluster` those loops run
on joblib's Dask backend (``joblib.parallel_config(backend=...)``): each joblib batch becomes a task of the Dask
scheduler at ADDRESS, and the results come back in submission order, so a cluster run computes exactly what the
local pool computes (same seeds, same folds, same summation order).

* **The rest of the fits**: the whole-cohort tuning, the final fit and the registered model's fit (with its interval
  refits, a *nested* ``Parallel`` that joblib sends to the same cluster from inside the worker, which secedes from
  its thread meanwhile) are submitted by :func:`run_fit`; nothing is fitted in the client process.
* **Data once**: the records and outcomes are scattered to every worker when the cluster is entered; joblib and
  :func:`run_fit` pass references to them (joblib looks arguments up by identity), not copies with each task.
* **Lost workers**: the scheduler re-runs the tasks of a worker that dies on the remaining ones (Dask's own
  recovery; a task is declared failed only after it has killed ``distributed.scheduler.allowed-failures`` workers).
* **Progress**: a scheduler plugin (:class:`TaskCounter`) counts computed tasks; :class:`ClusterProgress` snapshots
  (tasks done / submitted so far, workers busy / connected) are polled by a background thread.

``ADDRESS`` is ``local`` (a ``LocalCluster`` of 2 single-threaded worker processes on this machine, started and
stopped here) or a running scheduler (``tcp://host:8786`` or ``host:8786``; start one with ``dask scheduler``, its
Active Memory Manager off (``DASK_DISTRIBUTED__SCHEDULER__ACTIVE_MEMORY_MANAGER__START=False``: it would drop the
workers' copies of the scattered data, which then cannot survive the loss of the one worker left holding them), and
``dask worker tcp://host:8786`` on each node, all with nbrisk installed). Worker processes re-import the client's
``__main__``: scripts that train on a cluster must guard their entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin
from joblib._dask import DaskDistributedBackend

LOCAL = "local"
_ADDRESS = re.compile(r"^(tcp|tls|inproc)://\S+$|^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
PLUGIN_NAME = "nbrisk-task-counter"


def check_address(address: str) -> str:
    """``local`` or a scheduler address (``tcp://host:port`` or ``host:port``); ValueError otherwise."""
    address = address.strip()
    if address != LOCAL and not _ADDRESS.match(address):
        raise ValueError(f"cluster must be 'local' or a Dask scheduler address like tcp://host:8786, got {address!r}")
    return address


@dataclass(frozen=True)
class ClusterProgress:
    """One snapshot of the cluster's work for this job: tasks computed / submitted so far, workers busy / alive."""

    done: int
    total: int
    workers_busy: int
    workers: int


class TaskCounter(SchedulerPlugin):
    """Scheduler plugin: the keys of every computed task it has seen, and those that finished.

    A task re-run after its worker died is the same key, counted once. Scattered data never passes through
    ``processing`` and is not counted.
    """

    name = PLUGIN_NAME

    def __init__(self) -> None:
        self.submitted: set[str] = set()
        self.finished: set[str] = set()

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if finish == "processing":
            self.submitted.add(str(key))
        elif start == "processing" and finish == "memory":
            self.finished.add(str(key))


def _snapshot(dask_scheduler=None) -> tuple[int, int, int, int]:
    """Runs on the scheduler (``Client.run_on_scheduler``)."""
    plugin = dask_scheduler.plugins.get(PLUGIN_NAME)
    workers = dask_scheduler.workers.values()
    busy = sum(1 for w in workers if w.processing)
    if plugin is None:
        return 0, 0, busy, len(dask_scheduler.workers)
    return len(plugin.finished), len(plugin.submitted), busy, len(dask_scheduler.workers)


class _Backend(DaskDistributedBackend):
    """joblib's Dask backend, dispatching to the cluster even when only one worker thread is left (joblib would
    otherwise run a loop in the calling process when the cluster's effective ``n_jobs`` is 1)."""

    def effective_n_jobs(self, n_jobs):
        return max(2, super().effective_n_jobs(n_jobs))


class TrainingCluster:
    """The Dask cluster of one training job: connected and given the data by :meth:`share` (lazily, so a bad data
    file fails before any cluster is started), closed when :func:`training_cluster` exits."""

    def __init__(self, address: str, on_progress: Callable[[ClusterProgress], None] | None, poll_seconds: float):
        self.address = address
        self.on_progress = on_progress
        self.poll_seconds = poll_seconds
        self.client: Any = None  # distributed.Client once connected
        self.data: dict[int, Any] = {}
        self._local: Any = None  # the LocalCluster this job started, if any
        self._stack = ExitStack()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def share(self, *objects: Any) -> None:
        """Connect (or start the local cluster), send ``objects`` to every worker once and route joblib there."""
        from distributed import Client, LocalCluster
        from joblib import parallel_config

        if self.address == LOCAL:
            import dask

            # the Active Memory Manager would drop the broadcast replicas of the data between tasks (and workers
            # would fetch them again); a scheduler started with `dask scheduler` should set the same option
            with dask.config.set({"distributed.scheduler.active-memory-manager.start": False}):
                self._local = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, processes=True)
            self.client = Client(self._local, set_as_default=False)
        else:
            try:
                self.client = Client(self.address, set_as_default=False, timeout="20s")
            except (OSError, TimeoutError) as exc:
                from nbrisk.core import NbriskError

                raise NbriskError(f"cannot reach the Dask scheduler at {self.address}: {exc}") from None
        try:  # the scheduler needs nbrisk importable for the counter; without it training goes on uncounted
            self.client.register_plugin(TaskCounter(), name=PLUGIN_NAME)
        except Exception:  # a missing progress count must never stop training
            pass
        backend = _Backend(client=self.client, scatter=list(objects) or None)
        self.data = dict(backend.data_futures)
        self._stack.enter_context(parallel_config(backend=backend, n_jobs=-1))
        if self.on_progress is not None:
            self._poller = threading.Thread(target=self._poll, name="nbrisk-cluster-progress", daemon=True)
            self._poller.start()

    def progress(self) -> ClusterProgress:
        return ClusterProgress(*self.client.run_on_scheduler(_snapshot))

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self._report()

    def _report(self) -> bool:
        if self.on_progress is None:
            return True
        try:
            self.on_progress(self.progress())
            return True
        except Exception:  # a missed progress update must never stop training
            return False

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            # the final count is the one a user reads: a busy scheduler may miss one call, so try a few times
            for _ in range(3):
                if self._report():
                    break
        self._stack.close()
        if self.client is not None:
            self.client.close()
        if self._local is not None:
            self._local.close()


_ACTIVE: list[TrainingCluster] = []


def active() -> TrainingCluster | None:
    """The cluster of the training job running in this process, if any."""
    return _ACTIVE[-1] if _ACTIVE else None


def share_data(*objects: Any) -> None:
    """Send the training data to the job's cluster (no-op with the local pool); call before the first fit."""
    cl = active()
    if cl is not None and cl.client is None:
        cl.share(*objects)


def _with_dask_joblib(fn: Callable, kwargs: dict, *args):
    """Task wrapper: nested joblib loops inside ``fn`` go to the same cluster (through the worker's client)."""
    from joblib import parallel_config

    with parallel_config(backend=_Backend(), n_jobs=-1):
        return fn(*args, **kwargs)


def run_fit(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` — as one task on the training cluster when there is one, else here.

    Scattered arguments (the records and outcomes) travel as references to the workers' copies.
    """
    cl = active()
    if cl is None or cl.client is None:
        return fn(*args, **kwargs)
    args = tuple(cl.data.get(id(a), a) for a in args)
    kwargs = {k: cl.data.get(id(v), v) for k, v in kwargs.items()}
    return cl.client.submit(_with_dask_joblib, fn, kwargs, *args, pure=False).result()


@contextmanager
def training_cluster(
    address: str | None,
    on_progress: Callable[[ClusterProgress], None] | None = None,
    poll_seconds: float = 0.5,
) -> Iterator[TrainingCluster | None]:
    """Run the training job's fits on the Dask cluster at ``address`` (None: the local pool, nothing changes).

    The cluster is reached when the job calls :func:`share_data`. ``on_progress`` is called from a background thread
    with a :class:`ClusterProgress` about every ``poll_seconds`` and once at the end.
    """
    if address is None:
        yield None
        return
    cl = TrainingCluster(check_address(address), on_progress, poll_seconds)
    _ACTIVE.append(cl)
    try:
        yield cl
    finally:
        _ACTIVE.remove(cl)
        cl.close()
