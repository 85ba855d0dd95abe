"""A Bento built from the registry pins one model version: ``bentoml serve`` of it in a fresh folder, with no
registry reachable, serves exactly that version. Slow."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from nbrisk import processes
from nbrisk.features.record import example_record
from nbrisk.processes import clean_env

pytestmark = pytest.mark.slow


def test_bento_serves_the_pinned_version_offline(registered_champion, mlflow_tracking, tmp_path):
    from nbrisk.training import tracking

    version = tracking.get_alias_version("nbrisk", "champion")
    bentoml_home = tmp_path / "bentoml"
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_tracking, BENTOML_HOME=str(bentoml_home), BENTOML_DO_NOT_TRACK="true")
    built = subprocess.run(
        [sys.executable, "-m", "nbrisk.cli", "bento", "build"], env=env, capture_output=True, text=True, timeout=900
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    tag = built.stdout.split("built Bento ", 1)[1].split(":")
    tag = f"{tag[0]}:{tag[1]}"
    assert tag.startswith(f"nbrisk:v{version}-")

    # a fresh folder, and a registry URI that points nowhere: the Bento must not need it
    fresh = tmp_path / "hospital"
    fresh.mkdir()
    no_registry = fresh / "no-registry-here.db"
    serve_env = clean_env(
        BENTOML_HOME=str(bentoml_home),
        BENTOML_DO_NOT_TRACK="true",
        NBRISK_HOME=str(fresh),
        MLFLOW_TRACKING_URI=f"sqlite:///{no_registry}",
    )
    from nbrisk.serving.auth import KeyStore

    key = KeyStore(fresh / ".nbrisk" / "keys.db").create("bento")
    port = processes.free_port()
    log = tmp_path / "bento-serve.log"
    proc = processes.start(
        [sys.executable, "-m", "bentoml", "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
        log,
        env=serve_env,
        cwd=fresh,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(
            lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200, 240, proc, log, "bentoml serve"
        )
        r = httpx.post(
            f"{base}/v1/risk",
            json={"patients": [example_record(with_outcomes=False)]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        model = r.json()["model"]
        assert model["version"] == version and model["name"] == "nbrisk" and model["alias"] is None
        assert r.headers["x-nbrisk-model-version"] == version
    finally:
        processes.stop_group(proc)
    assert not no_registry.exists()  # no registry was opened
