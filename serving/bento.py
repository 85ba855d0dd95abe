"""``nbrisk bento build``: an immutable, deployable unit — a BentoML Bento of the risk service with one registered
model version copied inside.

A hospital deploys an artefact whose model cannot change under it: the build resolves the model URI (default
``models:/nbrisk@champion``) to its version, downloads that version's MLflow model folder into the Bento
(``model/``, with ``nbrisk-pin.json`` naming the registered name, version and the URI it was resolved from), adds the
nbrisk wheel and exact requirements of this environment, and runs ``bentoml build`` on the template in
``bento_template/`` (``bentofile.yaml`` + ``bento_service.py``). ``bentoml serve nbrisk:<tag>`` then serves that
version offline from any folder; ``bentoml containerize nbrisk:<tag>`` turns it into a container image.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata, resources
from pathlib import Path

from nbrisk.core import NbriskError


def _requirements() -> str:
    """Exact pins of every installed distribution except nbrisk itself (it comes as a wheel)."""
    lines = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or name.lower() == "nbrisk":
            continue
        lines.add(f"{name}=={dist.version}")
    return "\n".join(sorted(lines, key=str.lower)) + "\n"


def _source_root() -> Path:
    """The nbrisk source tree (a checkout: the folder with pyproject.toml above the installed package)."""
    import nbrisk

    here = Path(nbrisk.__file__).resolve().parent.parent
    if not (here / "pyproject.toml").is_file():
        raise NbriskError(
            "nbrisk bento build needs the nbrisk source checkout (pyproject.toml) to build the wheel; "
            "pass --wheel with a built nbrisk wheel instead"
        )
    return here


def _build_wheel(dest: Path) -> Path:
    root = _source_root()
    out = Path(tempfile.mkdtemp(prefix="nbrisk-wheel-"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(root)]
    uv = shutil.which("uv")
    if uv:
        cmd = [uv, "build", "--wheel", "--out-dir", str(out), str(root)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wheels = sorted(out.glob("nbrisk-*.whl"))
    if done.returncode != 0 or not wheels:
        raise NbriskError(f"building the nbrisk wheel failed: {(done.stderr or done.stdout).strip()[-500:]}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(wheels[-1], dest)
    shutil.rmtree(out, ignore_errors=True)
    return dest


def build_bento(model_uri: str | None = None, wheel: Path | None = None, keep: Path | None = None) -> str:
    """Build a Bento serving the model version behind ``model_uri``; returns the Bento tag (``nbrisk:<version>``).

    ``wheel``: a built nbrisk wheel (default: build one from the source checkout). ``keep``: a folder to keep the
    build context in (default: a temporary folder, removed afterwards). The Bento goes to BentoML's store
    (``BENTOML_HOME``, default ``~/bentoml``).
    """
    from nbrisk.models.pyfunc import PIN_FILE, resolve_model_version
    from nbrisk.settings import get_settings
    from nbrisk.training import tracking

    tracking.configure()
    uri = model_uri or get_settings().model_uri
    resolved, version = resolve_model_version(uri)
    if version is None:
        raise NbriskError(f"{uri} is not a registered model version (use models:/NAME@ALIAS or models:/NAME/VERSION)")
    parts = tracking.parse_models_uri(resolved)
    name = parts.name if parts is not None else get_settings().registered_model_name
    context = keep or Path(tempfile.mkdtemp(prefix="nbrisk-bento-"))
    context.mkdir(parents=True, exist_ok=True)
    try:
        template = resources.files("nbrisk.serving") / "bento_template"
        for item in ("bentofile.yaml", "bento_service.py"):
            (context / item).write_text((template / item).read_text())
        model_dir = context / "model"
        if model_dir.exists():
            shutil.rmtree(model_dir)
        run_id = tracking.download_model_version(name, version, model_dir)
        pin = {"name": name, "version": str(version), "source_uri": uri, "run_id": run_id}
        (model_dir / PIN_FILE).write_text(json.dumps(pin, indent=2) + "\n")
        (context / "requirements.txt").write_text(_requirements())
        target = context / "wheels" / "nbrisk.whl"
        if wheel is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(wheel, target)
        else:
            _build_wheel(target)
        # the Bento version names the registered model version it pins (plus BentoML's unique suffix)
        bento_version = f"v{version}-{run_id[:8] or 'local'}"
        env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true"}
        done = subprocess.run(
            [sys.executable, "-m", "bentoml", "build", str(context), "--version", bento_version, "--output", "tag"],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
            cwd=context,
        )
        if done.returncode != 0:
            raise NbriskError(f"bentoml build failed: {(done.stderr or done.stdout).strip()[-800:]}")
        tag = done.stdout.strip().splitlines()[-1].removeprefix("__tag__:").strip()
        return tag
    finally:
        if keep is None:
            shutil.rmtree(context, ignore_errors=True)
