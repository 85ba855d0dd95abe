"""Training speed benchmark: wall time and peak memory of ``nbrisk train`` with a config, by cohort size.

Run from the repository root::

    uv run python benchmarks/training_speed.py                       # default config, n = 500, 2,000, 10,000
    uv run python benchmarks/training_speed.py --sizes 500,2000      # a subset
    uv run python benchmarks/training_speed.py --config configs/quick.toml --sizes 300

Each size runs in a fresh subprocess (``/usr/bin/time`` style accounting through ``os.wait4``) that trains on the
embedded synthetic cohort of that size (``data.synthetic_n`` overridden, everything else from the config) into a
temporary MLflow store, so the times include everything a user waits for: data generation and validation, nested
cross-validation, bootstrap CIs, optimism correction, leave-center-out, the final fits with interval bootstraps,
MLflow logging and registration. Peak memory is the largest resident set size of the training process or any of
its joblib workers (``ru_maxrss`` of the waited-for process tree). Results go to
``benchmarks/results/training_speed.md`` (a table per run is appended to the existing results).

Everything here is built on synthetic data: SYNTHETIC — not for clinical use.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "training_speed.md"

CHILD = """
import sys, time
from nbrisk.training.config import load_config, parse_config
from nbrisk.training.jobs import train
cfg = load_config(sys.argv[1]).model_dump(mode="json")
cfg["data"]["synthetic_n"] = int(sys.argv[2])
t0 = time.perf_counter()
res = train(data=None, config=parse_config(cfg), experiment="speed")
stages = {m.name: round(m.seconds, 1) for m in res.models}
print("RESULT", round(time.perf_counter() - t0, 1), stages, flush=True)
"""


def run_size(config: Path, n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="nbrisk_speed_") as home:
        env = dict(os.environ, NBRISK_HOME=home, MLFLOW_TRACKING_URI=f"sqlite:///{home}/mlruns/mlflow.db")
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(config), str(n)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        out = proc.stdout.read()
        # reap the child ourselves to get its resource usage (ru_maxrss covers its waited-for workers too)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT")), None)
    if proc.returncode != 0 or line is None:
        return {"n": n, "ok": False, "wall_s": wall}
    _, train_s, stages = line.split(" ", 2)
    return {
        "n": n,
        "ok": True,
        "wall_s": wall,
        "train_s": float(train_s),
        "stages": stages,
        "peak_mb": usage.ru_maxrss / 1024.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "default.toml")
    ap.add_argument("--sizes", default="500,2000,10000")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    cfg = tomllib.loads(args.config.read_text())
    rows = []
    for n in sizes:
        print(f"n = {n} ...", flush=True)
        r = run_size(args.config, n)
        print(r, flush=True)
        rows.append(r)
    lines = [
        f"## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — `{args.config.relative_to(ROOT)}`",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}; "
        f"config n_jobs = {cfg.get('n_jobs', 1)}; models: {', '.join(m['name'] for m in cfg['models'])}. "
        "Wall time includes interpreter start-up and MLflow logging/registration; peak = largest RSS of the "
        "training process or any of its workers. The machine was shared with other jobs, so times are upper bounds.",
        "",
        "| n | wall time | train() time | peak memory | seconds per model (CV + final fits) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r["ok"]:
            lines.append(
                f"| {r['n']:,} | {r['wall_s'] / 60:.1f} min | {r['train_s'] / 60:.1f} min | "
                f"{r['peak_mb']:.0f} MB | {r['stages']} |"
            )
        else:
            lines.append(f"| {r['n']:,} | failed after {r['wall_s'] / 60:.1f} min | — | — | — |")
    header = (
        "# Training speed (`benchmarks/training_speed.py`)\n\n"
        "SYNTHETIC — not for clinical use. Newest results first.\n\n"
    )
    old = args.out.read_text(encoding="utf-8") if args.out.exists() else header
    body = old[len(header) :] if old.startswith(header) else old
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(header + "\n".join(lines) + "\n\n" + body, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
