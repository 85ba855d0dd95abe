"""Child processes that nbrisk starts and stops: servers for tests, benchmarks and the team set-up.

Every process is started in a session of its own (``start_new_session=True``) so that stopping it stops what it
started too (uvicorn workers, MLflow's gunicorn, Dask's nanny): :func:`stop_group` signals the whole process group.
All waits are bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (bound and released; a race with other programs is unlikely)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without nbrisk, MLflow and BentoML settings, plus ``extra``.

    A child started with it sees only what the caller passes: MLflow exports ``MLFLOW_REGISTRY_URI`` (and a test or
    a team set-up may have set ``MLFLOW_TRACKING_URI``) into the environment of the process that configured it, and a
    child that inherited them would log to the wrong store."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NBRISK_", "MLFLOW_", "BENTOML_")) and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    return {**base, **extra}


def start(
    cmd: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    """Start ``cmd`` in a new session with stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )


def stop_group(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL whatever is left after ``timeout`` seconds."""
    if proc.poll() is not None:
        _kill_group(proc.pid, signal.SIGKILL)  # children may outlive a leader that already exited
        return
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    _kill_group(proc.pid, signal.SIGKILL)


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_until(
    ready: Callable[[], bool],
    timeout: float,
    proc: subprocess.Popen | None = None,
    log_path: Path | None = None,
    what: str = "process",
) -> None:
    """Poll ``ready()`` every 0.2 s until it is true; raise ``RuntimeError`` (with the log's tail) on timeout or
    when ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}:\n{_tail(log_path)}")
        try:
            if ready():
                return
        except Exception:  # not up yet: connection refused, 503, ...
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s:\n{_tail(log_path)}")


def port_open(host: str, port: int) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def _tail(log_path: Path | None, n: int = 3000) -> str:
    if log_path is None or not log_path.exists():
        return ""
    return log_path.read_text(errors="replace")[-n:]
