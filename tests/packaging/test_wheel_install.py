"""The built wheel works on its own: installed into a fresh virtual environment, away from the source tree.

``uv build`` makes the sdist and, from it, the wheel (so a file missing from either fails here); the wheel is
installed non-editable into a new environment whose third-party packages come from ``uv.lock`` (the same versions
and index as ``uv sync``, read from uv's cache when present); then, from an empty folder outside the repository,
``nbrisk train --help``, ``nbrisk data synth``, a quick ``nbrisk train`` with the packaged ``quick`` config into a
temporary SQLite MLflow store, and ``nbrisk predict`` with the model it registered. What this protects: the configs,
templates and entry point ship in the wheel, and nothing imports the source tree by accident. Slow (about a minute):
CI runs it with ``-m slow``.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> dict[str, Path]:
    """Build the wheel and install it into a fresh virtual environment; returns its paths."""
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed to build and install the wheel (scripts/test.sh installs it)"
    tmp = tmp_path_factory.mktemp("wheel")
    base_env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT")}

    dist = tmp / "dist"
    _run([uv, "build", "--quiet", "--out-dir", str(dist)], cwd=REPO, env=base_env)
    version = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    wheels = list(dist.glob(f"nbrisk-{version}-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {dist}: {sorted(p.name for p in dist.iterdir())}"

    venv = tmp / "venv"
    sync_env = {**base_env, "UV_PROJECT_ENVIRONMENT": str(venv)}
    _run([uv, "sync", "--frozen", "--no-dev", "--no-install-project", "--quiet"], cwd=REPO, env=sync_env)
    python = venv / "bin" / "python"
    _run([uv, "pip", "install", "--quiet", "--python", str(python), "--no-deps", str(wheels[0])], cwd=tmp, env=base_env)
    # every dependency the wheel declares is installed, at a version it accepts
    _run([uv, "pip", "check", "--python", str(python)], cwd=tmp, env=base_env)

    work = tmp / "work"
    work.mkdir()
    run_env = {
        **base_env,
        "PATH": f"{venv / 'bin'}{os.pathsep}{base_env.get('PATH', '')}",
        "NBRISK_HOME": str(work),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
    }
    # nothing of this test session's MLflow set-up: the session exports MLFLOW_REGISTRY_URI (mlflow does, when the
    # registry is configured), and a wheel run inheriting it would register its model in the session's registry
    for key in [
        k for k in run_env if k.startswith(("NBRISK_", "MLFLOW_")) and k not in ("NBRISK_HOME", "MLFLOW_TRACKING_URI")
    ]:
        run_env.pop(key)
    return {
        "venv": venv,
        "python": python,
        "nbrisk": venv / "bin" / "nbrisk",
        "work": work,
        "env": run_env,
        "wheel": wheels[0],
    }


def _package_dirs() -> dict[str, str]:
    """``nbrisk.x`` → its folder in the repository, from pyproject's ``package-dir``."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    return dict(setuptools["package-dir"])


def test_every_data_file_of_the_package_folders_is_in_the_wheel(wheel_env):
    # templates, static assets, configs, Bento template: anything beside the code that the code reads at run time
    with zipfile.ZipFile(wheel_env["wheel"]) as whl:
        shipped = set(whl.namelist())
    missing = []
    for package, folder in _package_dirs().items():
        root = REPO / folder
        for path in root.rglob("*"):
            rel = path.relative_to(root)
            if path.is_dir() or "__pycache__" in rel.parts or path.suffix == ".pyc" or path.name == "README.md":
                continue
            if (root / rel.parts[0]).is_dir() and (root / rel.parts[0] / "__init__.py").exists():
                continue  # a subpackage folder: checked as its own package
            name = "/".join([*package.split("."), *rel.parts])
            if name not in shipped:
                missing.append(name)
    assert not missing, f"files of the package folders missing from the wheel: {missing}"


def test_the_installed_package_comes_from_the_wheel_with_its_configs(wheel_env):
    code = (
        "import nbrisk, nbrisk.features, nbrisk.models, nbrisk.training, nbrisk.serving, nbrisk.reports\n"
        "from nbrisk.training.config import default_config_path, load_config, packaged_config\n"
        "print(nbrisk.__file__); print(nbrisk.__version__); print(default_config_path())\n"
        "print(','.join(m.family for m in load_config().models)); print(load_config('quick').seed)\n"
        "print(packaged_config('quick.toml').is_file())\n"
    )
    out = _run([str(wheel_env["python"]), "-c", code], cwd=wheel_env["work"], env=wheel_env["env"]).stdout.split("\n")
    site = wheel_env["venv"].resolve()
    assert Path(out[0]).resolve().is_relative_to(site), f"nbrisk imported from {out[0]}, not the wheel"
    assert out[1] == tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert Path(out[2]).resolve().is_relative_to(site) and Path(out[2]).name == "default.toml"
    families = set(out[3].split(","))
    assert {"AalenJohansen", "CauseSpecificCox", "FineGray", "CauseSpecificForest", "CauseSpecificBoosting"} <= families
    assert out[4] == "0" and out[5] == "True"


def test_train_help_synth_quick_train_and_predict_from_the_wheel(wheel_env):
    nbrisk, work, env = str(wheel_env["nbrisk"]), wheel_env["work"], wheel_env["env"]

    help_text = _run([nbrisk, "train", "--help"], cwd=work, env=env).stdout
    assert "--config" in help_text and "--data" in help_text

    _run([nbrisk, "data", "synth", "--n", "400", "--seed", "7", "--out", "cohort.csv"], cwd=work, env=env)
    with (work / "cohort.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 400 and rows[0]["patient_id"] == "SYN-000001"

    out = _run(
        [nbrisk, "train", "--config", "quick", "--data", "cohort.csv", "--experiment", "wheel"], cwd=work, env=env
    ).stdout
    assert "SYNTHETIC — not for clinical use" in out
    assert "champion → version 1" in out, out[-2000:]

    _run([nbrisk, "predict", "cohort.csv", "--out", "pred.csv", "--horizons", "12,24"], cwd=work, env=env)
    with (work / "pred.csv").open(newline="", encoding="utf-8") as fh:
        pred = list(csv.DictReader(fh))
    assert len(pred) == 2 * 400
    assert {r["risk_group"] for r in pred} <= {"low", "intermediate", "high"}
    assert all(0.0 <= float(r["relapse"]) <= 1.0 and 0.0 <= float(r["os"]) <= 1.0 for r in pred)


def test_the_source_tree_is_not_on_the_path_of_the_fresh_environment(wheel_env):
    # the checks above mean something only if the fresh interpreter cannot see the repository
    out = _run(
        [str(wheel_env["python"]), "-c", "import sys; print('\\n'.join(sys.path))"],
        cwd=wheel_env["work"],
        env=wheel_env["env"],
    )
    assert str(REPO) not in out.stdout.split("\n")
    assert sys.prefix != str(wheel_env["venv"])
