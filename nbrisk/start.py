"""The main job: ``python -m nbrisk.start --port 3000`` (what ``scripts/start.sh`` runs).

1. If the registry (``MLFLOW_TRACKING_URI``, default SQLite under ``mlruns/``) has no ``nbrisk@champion``, train on
   the embedded synthetic cohort with a config that finishes in a few minutes (``configs/quick.toml`` unless
   ``--config`` says otherwise); the first registered model becomes the champion.
2. If no API key is active, create one named ``first-key`` and print it once, on a line of its own (only its hash
   is stored; never repeated, e.g. in an example command).
3. Replace this process with ``bentoml serve nbrisk.serving.service:RiskService`` on ``--host`` (default
   127.0.0.1: loopback only unless asked) and ``--port``.

Everything trained here is labelled ``SYNTHETIC — not for clinical use``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nbrisk.core import SYNTHETIC_LABEL, NbriskError
from nbrisk.training.config import packaged_config

#: Training config used when no champion exists (small: minutes on 2 cores), shipped in ``nbrisk.configs``.
DEFAULT_CONFIG = packaged_config("quick.toml")
FIRST_KEY_NAME = "first-key"


def ensure_champion(config: Path, experiment: str = "nbrisk") -> str:
    """Return the champion's version, training the quick config on the embedded synthetic cohort if there is none."""
    from nbrisk.settings import get_settings
    from nbrisk.training import tracking

    name = get_settings().registered_model_name
    version = tracking.get_alias_version(name, "champion")
    if version is not None:
        print(f"nbrisk: champion is {name} version {version}", flush=True)
        return version
    print(
        f"nbrisk: no champion in the registry; training on the embedded synthetic cohort with {config} "
        f"[{SYNTHETIC_LABEL}]",
        flush=True,
    )
    from nbrisk.training.jobs import train

    train(data=None, config=config, experiment=experiment, log=lambda msg: print(f"  {msg}", flush=True))
    version = tracking.get_alias_version(name, "champion")
    if version is None:
        raise NbriskError("training finished but no champion was registered; see the log above", exit_code=1)
    print(f"nbrisk: champion is {name} version {version}", flush=True)
    return version


def ensure_first_key() -> str | None:
    """Create and return a first API key when none is active (else None: existing keys are never shown again)."""
    from nbrisk.serving.auth import KeyStore
    from nbrisk.settings import get_settings

    store = KeyStore(get_settings().keys_store)
    if store.has_active_keys():
        print("nbrisk: API keys exist (`nbrisk keys list`); create another with `nbrisk keys create NAME`", flush=True)
        return None
    name = FIRST_KEY_NAME
    taken = {k.name for k in store.list()}
    i = 1
    while name in taken:  # a revoked first-key keeps its name in the table; pick a fresh one
        i += 1
        name = f"{FIRST_KEY_NAME}-{i}"
    key = store.create(name)
    print(f"nbrisk: created API key {name!r} — shown only now, store it safely:\n\n    {key}\n", flush=True)
    return key


def serving_banner(host: str, port: int) -> str:
    """The line printed before serving. It never holds a key: the first key is printed once, on a line of its own,
    and an example command line is the kind of text that ends up in shell histories, tickets and captured logs."""
    return (
        f"nbrisk: serving on http://{host}:{port}  (try: KEY=<your key>; "
        f'curl -H "Authorization: Bearer $KEY" http://{host}:{port}/v1/model)'
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nbrisk.start", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--host", default=os.environ.get("NBRISK_HOST", "127.0.0.1"))
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training config if no champion")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="uvicorn worker processes (default 2: if one dies, the other answers while it is replaced)",
    )
    parser.add_argument("--no-serve", action="store_true", help="prepare (train, key) but do not serve")
    args = parser.parse_args(argv)
    try:
        from nbrisk.serving.commands import serve_command, serve_env

        cmd = serve_command(args.port, args.host)  # validates the port before minutes of training
        ensure_champion(args.config)
        ensure_first_key()
    except NbriskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.no_serve:
        return 0
    print(serving_banner(args.host, args.port), flush=True)
    env = serve_env(args.workers)
    os.execve(cmd[0], cmd, env)  # pragma: no cover - replaces the process
    return 0  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
