"""Throwaway servers for the team set-up tests, started by the tests themselves and stopped by process-group id
(also when a test fails): a PostgreSQL cluster, an MLflow tracking server on it, a Dask scheduler with workers on
two loopback addresses. Everything listens on 127.0.0.0/8 only.

PostgreSQL: the Debian package's server binaries (``/usr/lib/postgresql/<v>/bin``, or ``pg_config --bindir``).
``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres`` user (``runuser``), in a
temporary folder that user owns. ``fsync=off``: a throwaway test database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nbrisk import processes


def postgres_bindir() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for c in candidates:
        if (c / "initdb").exists():
            return c
    return None


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        """SQLAlchemy URL (psycopg2 driver) of ``database`` on this server."""
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.fail(
            "PostgreSQL server binaries not found: install them (Debian: apt-get install postgresql-15); "
            "scripts/test.sh does so on a fresh machine as root"
        )
    root = Path(tempfile.mkdtemp(prefix="nbrisk-pg-"))
    data, log = root / "data", root / "postgres.log"
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        os.chmod(root, 0o700)
    port = processes.free_port()
    subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-c fsync=off -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -p {port}"
    # pg_ctl start -w returns once the server accepts connections; the server itself is the postmaster we stop
    subprocess.run(
        _as_postgres(
            [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"]
        ),
        check=True,
        capture_output=True,
        timeout=90,
    )
    try:
        yield Postgres(host="127.0.0.1", port=port, user=user)
    finally:
        subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class MlflowServer:
    url: str
    backend_uri: str


@pytest.fixture(scope="session")
def mlflow_server(postgres_server: Postgres, tmp_path_factory) -> Iterator[MlflowServer]:
    """``mlflow server`` backed by PostgreSQL, artifacts proxied to a local folder (``--artifacts-destination``)."""
    import httpx

    backend = postgres_server.create_database("mlflow")
    tmp = tmp_path_factory.mktemp("mlflow-server")
    port = processes.free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend,
        "--artifacts-destination", str(tmp / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = processes.clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    proc = processes.start(cmd, tmp / "mlflow.log", env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(
            lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200,
            180,
            proc,
            tmp / "mlflow.log",
            "mlflow server",
        )
        yield MlflowServer(url=url, backend_uri=backend)
    finally:
        processes.stop_group(proc)


@dataclass(frozen=True)
class DaskCluster:
    address: str
    workers: dict[str, object]  # worker host -> Popen


@pytest.fixture
def dask_cluster(tmp_path) -> Iterator[DaskCluster]:
    """``dask scheduler`` on 127.0.0.1 and two single-threaded ``dask worker`` processes on 127.0.0.2 and
    127.0.0.3 (two "nodes" on loopback)."""
    port = processes.free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = processes.clean_env(DASK_DISTRIBUTED__WORKER__DAEMON="false")
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler = processes.start(
        [*dask, "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", "127.0.0.1:0", "--no-show"],
        tmp_path / "scheduler.log",
        env=env,
    )
    started = [scheduler]
    workers: dict[str, object] = {}
    try:
        processes.wait_until(lambda: processes.port_open("127.0.0.1", port), 60, scheduler, tmp_path / "scheduler.log")
        for host in ("127.0.0.2", "127.0.0.3"):
            w = processes.start(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    address,
                    "--host",
                    host,
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--no-dashboard",
                    "--memory-limit",
                    "4GB",
                    "--local-directory",
                    str(tmp_path / f"worker-{host}"),
                ],
                tmp_path / f"worker-{host}.log",
                env=env,
            )
            started.append(w)
            workers[host] = w
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=90)
        yield DaskCluster(address=address, workers=workers)
    finally:
        for p in reversed(started):
            processes.stop_group(p)
