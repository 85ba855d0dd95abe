"""The main job ``python -m nbrisk.start``: train when there is no champion, create a first key once, serve."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nbrisk.core import NbriskError
from nbrisk.serving.auth import KeyStore
from nbrisk.serving.commands import SERVICE_TARGET, serve_command, serve_env
from nbrisk.start import ensure_first_key


def test_first_key_created_once_and_usable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NBRISK_KEYS_DB", str(tmp_path / "keys.db"))
    key = ensure_first_key()
    out = capsys.readouterr().out
    assert key is not None and key in out
    assert KeyStore(tmp_path / "keys.db").verify(key) == "first-key"
    assert ensure_first_key() is None  # keys exist: never shown again, none added
    assert key not in capsys.readouterr().out
    KeyStore(tmp_path / "keys.db").revoke("first-key")
    key2 = ensure_first_key()  # all revoked: a fresh one, under a fresh name
    assert KeyStore(tmp_path / "keys.db").verify(key2) == "first-key-2"


def test_serve_command_binds_loopback_by_default():
    cmd = serve_command(3000)
    assert cmd[:4] == [sys.executable, "-m", "bentoml", "serve"] and SERVICE_TARGET in cmd
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "3000"
    with pytest.raises(NbriskError, match="invalid port"):
        serve_command(70000)
    env = serve_env(workers=2)
    assert env["NBRISK_WORKERS"] == "2" and env["BENTOML_DO_NOT_TRACK"] == "true"


def test_start_rejects_a_bad_port_before_training(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    env = {**os.environ, "NBRISK_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    r = subprocess.run(
        [sys.executable, "-m", "nbrisk.start", "--port", "0", "--no-serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "invalid port" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "m.db").exists()  # nothing trained, registry untouched


@pytest.mark.slow
def test_start_trains_once_then_reuses_the_champion(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    env = {**os.environ, "NBRISK_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    env.pop("NBRISK_KEYS_DB", None)
    cmd = [sys.executable, "-m", "nbrisk.start", "--no-serve"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "no champion in the registry; training" in first.stdout and "SYNTHETIC" in first.stdout
    assert "champion is nbrisk version 1" in first.stdout
    key = next(ln.strip() for ln in first.stdout.splitlines() if ln.strip().startswith("nbk_"))
    assert KeyStore(tmp_path / ".nbrisk" / "keys.db").verify(key) == "first-key"
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "training" not in second.stdout and "champion is nbrisk version 1" in second.stdout
    assert "nbk_" not in second.stdout  # the key is never printed again
