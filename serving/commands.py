"""``nbrisk serve`` and ``nbrisk keys create|list|revoke`` (called lazily by :mod:`nbrisk.cli`).

User mistakes raise :class:`nbrisk.core.NbriskError` (one line, exit code ≠ 0).
"""

from __future__ import annotations

import os
import subprocess
import sys

import typer

from nbrisk.core import NbriskError

#: The BentoML service's import path (``bentoml serve`` target).
SERVICE_TARGET = "nbrisk.serving.service:RiskService"


def _store():
    from nbrisk.serving.auth import KeyStore
    from nbrisk.settings import get_settings

    return KeyStore(get_settings().keys_store)


def keys_create(name: str) -> str:
    """Create an API key and print it once; only its SHA-256 is stored. Returns the key (for callers like start)."""
    key = _store().create(name)
    typer.echo(f"API key {name!r} created. It is shown only now; store it safely:")
    typer.echo(key)
    return key


def keys_list() -> None:
    """Print key names with creation/revocation times (never keys or hashes)."""
    keys = _store().list()
    if not keys:
        typer.echo("no API keys (create one with `nbrisk keys create NAME`)")
        return
    typer.echo(f"{'name':<24} {'created (UTC)':<26} status")
    for k in keys:
        status = "active" if k.active else f"revoked {k.revoked_at}"
        typer.echo(f"{k.name:<24} {k.created_at:<26} {status}")


def keys_revoke(name: str) -> None:
    _store().revoke(name)
    typer.echo(f"API key {name!r} revoked")


def serve_command(port: int, host: str = "127.0.0.1", workers: int | None = None) -> list[str]:
    """The ``bentoml serve`` command line for the service (run from the repository root or any directory: the
    target is imported from the installed ``nbrisk`` package)."""
    if not 1 <= int(port) <= 65535:
        raise NbriskError(f"invalid port {port}: must be 1–65535")
    return [sys.executable, "-m", "bentoml", "serve", SERVICE_TARGET, "--host", host, "--port", str(int(port))]


def serve_env(workers: int | None = None) -> dict[str, str]:
    """Environment for ``bentoml serve``: no usage tracking (no network here), two malloc arenas per worker
    (:mod:`nbrisk.serving.memory`: flat memory under load), optional worker count."""
    from nbrisk.serving.memory import serve_environment

    env = dict(os.environ)
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    serve_environment(env)
    if workers is not None:
        env["NBRISK_WORKERS"] = str(int(workers))
    return env


def serve(port: int = 3000, host: str = "127.0.0.1", workers: int | None = None) -> None:
    """Run the HTTP service (``bentoml serve``) in the foreground until interrupted."""
    cmd = serve_command(port, host)
    typer.echo(f"nbrisk: serving {SERVICE_TARGET} on http://{host}:{port} (probes /livez /readyz, docs /docs.json)")
    try:
        code = subprocess.call(cmd, env=serve_env(workers))
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        code = 0
    if code not in (0, -2, 130):
        raise NbriskError(f"bentoml serve exited with code {code}", exit_code=code if code > 0 else 1)
