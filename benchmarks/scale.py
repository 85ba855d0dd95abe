"""Scale benchmark: Fine–Gray in linear memory, default training on the local pool vs a 2-worker Dask cluster, and
a capacity model for a consortium-sized cohort. Results: ``benchmarks/results/scale.md``.

Run from the repository root (each measurement in a fresh subprocess; use ``nice`` on a shared machine)::

    nice -n 10 uv run python benchmarks/scale.py                          # everything below, default sizes
    nice -n 10 uv run python benchmarks/scale.py --fg-sizes 2000,10000,50000 --train-sizes 2000,10000
    uv run python benchmarks/scale.py --train-sizes 2000 --modes local,dask --fg-sizes 2000 --task-sizes 2000
    uv run python benchmarks/scale.py --fg-sizes "" --task-sizes "" --train-sizes ""   # re-render scale.json only

The issue-14 target (n = 10,000 default training ≤ 5 min and ≤ 2 GB per process, local pool and Dask) alone::

    nice -n 10 uv run python benchmarks/scale.py --fg-sizes "" --task-sizes "" --train-sizes 10000 --modes local,dask

1. **Fine–Gray alone** (``--fg-sizes``): fit time and peak RSS of :class:`~nbrisk.models.fine_gray.FineGray` (the
   default config's ``alpha = 10``) on the feature matrix of the synthetic cohort, and the number of rows the former
   counting-process expansion would have materialised for the same data.
2. **Per-task costs** (``--task-sizes``): one fit + prediction of every default model family and one evaluation of
   the bootstrap metric set — the units the training job distributes; the capacity model scales them.
3. **Default training** (``--train-sizes`` × ``--modes``): ``configs/default.toml`` with ``data.synthetic_n = n``,
   on today's local process pool (``local``) and on ``LocalCluster(n_workers=2, threads_per_worker=1)``
   (``dask``, i.e. ``nbrisk train --cluster local``): wall time, peak RSS of the training process and of the largest
   worker (sampled every 0.5 s over the process tree), Dask tasks, and MLflow writes (rows in the tracking
   database's params / metrics / tags / runs / model-version tables, artifact files).

The training child guards its entry point (``if __name__ == "__main__"``): Dask's worker processes re-import the
client's ``__main__``. Everything here is built on synthetic data: SYNTHETIC — not for clinical use.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import write_results  # benchmarks/ is on the path when run as a script

from nbrisk.core import DEFAULT_HORIZONS_MONTHS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "scale.md"
HORIZONS = list(DEFAULT_HORIZONS_MONTHS)


# ----------------------------------------------------------------------------------------------------------------
# children (run in fresh processes)


def _cohort(n: int):
    from nbrisk.features.synthetic import make_synthetic_cohort
    from nbrisk.training.jobs import _validate_raw

    typed, outcomes = _validate_raw(make_synthetic_cohort(n, 2026, "base"), source="benchmark")
    return typed, outcomes


def expansion_rows(time, event, cause: int) -> int:
    """Rows of the former counting-process expansion (merged form): n + Σ_j blocks of cause-k event times after T_j
    sharing Ĝ(t−), over patients j with the other cause before the last cause-k time."""
    import numpy as np

    from nbrisk.models.nonparametric import censoring_survival

    g = censoring_survival(time, event)
    drops = np.flatnonzero(np.diff(np.concatenate([[1.0], g.surv])) < 0)
    ek = np.unique(time[event == cause])
    nj = np.searchsorted(g.times[drops], ek, side="left")
    new = np.concatenate([[True], nj[1:] != nj[:-1]])
    blocks_from = np.cumsum(new[::-1])[::-1]  # blocks starting at or after each event index
    block_start = np.maximum.accumulate(np.where(new, np.arange(len(ek)), 0))
    other = (event != cause) & (event != 0) & (time < ek[-1])
    first = np.searchsorted(ek, time[other], side="right")
    return int(len(time) + blocks_from[block_start[first]].sum())


def child_fine_gray(n: int) -> dict:
    import numpy as np

    from nbrisk.features.pipeline import make_feature_pipeline
    from nbrisk.models.fine_gray import FineGray

    records, outcomes = _cohort(n)
    X = make_feature_pipeline().fit_transform(records)
    y = outcomes[["event", "time"]]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    model = FineGray(alpha=10.0).fit(X, y)
    seconds = time.perf_counter() - t0
    t_, e_ = y.time.to_numpy(float), y.event.to_numpy()
    return {
        "n": n,
        "p": X.shape[1],
        "seconds": seconds,
        "rss_before_mb": rss_before,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "expansion_rows": [expansion_rows(t_, e_, 1), expansion_rows(t_, e_, 2)],
        "converged": bool(model.converged_),
        "coef_finite": bool(np.isfinite(model.coef_).all()),
    }


def child_tasks(n: int) -> dict:
    from nbrisk.training import validation as V
    from nbrisk.training.config import load_config

    records, outcomes = _cohort(n)
    out: dict = {"n": n, "fit_s": {}, "predict_s": {}}
    for spec in load_config(None).models:
        if spec.is_null:
            continue
        t0 = time.perf_counter()
        fitted = V.fit_candidate(spec, spec.candidates()[0], records, outcomes, 0)
        out["fit_s"][spec.name] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = V.predict_states(fitted, records, HORIZONS)
        out["predict_s"][spec.name] = time.perf_counter() - t0
    t0 = time.perf_counter()
    V.evaluate(outcomes, pred, HORIZONS)
    out["evaluate_s"] = time.perf_counter() - t0
    # what the training job pays for the CIs of the pooled metrics: all 200 resamples at once (frequency weights)
    boot = V.bootstrap_indices(outcomes["event"].to_numpy(), 200, 2026)
    t0 = time.perf_counter()
    V._bootstrap_replicates(outcomes, pred, HORIZONS, boot)
    out["bootstrap_200_s"] = time.perf_counter() - t0
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["data_mb"] = float(records.memory_usage(deep=True).sum() / 2**20)
    return out


def child_forest_cap(n: int) -> dict:
    """Out-of-fold accuracy of the default forest with and without ``max_tree_samples`` (one 5-fold CV, same folds),
    with paired bootstrap 95% CIs of the differences (the training job's 200 shared resamples)."""
    import numpy as np

    from nbrisk.training import validation as V
    from nbrisk.training.config import load_config

    records, outcomes = _cohort(n)
    spec = load_config(None).model("forest")
    folds = V.make_folds(outcomes["event"].to_numpy(), 5, 1, 2026)
    boot = V.bootstrap_indices(outcomes["event"].to_numpy(), 200, 2026)
    out: dict = {"n": n, "cap": spec.params.get("max_tree_samples")}
    reps = {}
    for label, params in (("capped", dict(spec.params)), ("uncapped", {**spec.params, "max_tree_samples": None})):
        s = spec.model_copy(update={"params": params, "grid": {}})
        t0 = time.perf_counter()
        cv = V.cross_validate(s, records, outcomes, folds, HORIZONS, 3, 2026, n_jobs=1)
        out[f"{label}_cv_s"] = time.perf_counter() - t0
        point = V.evaluate(outcomes, cv.pooled, HORIZONS)
        reps[label] = V._bootstrap_replicates(outcomes, cv.pooled, HORIZONS, boot)
        out[label] = {k: v for k, v in point.items() if k.endswith("_24m")}
    out["difference_ci"] = {}
    for k in out["capped"]:
        d = reps["capped"][k] - reps["uncapped"][k]
        d = d[np.isfinite(d)]
        out["difference_ci"][k] = [float(q) for q in np.percentile(d, [2.5, 97.5])] if d.size else None
    return out


def child_train(n: int, mode: str) -> dict:
    from nbrisk.training.config import load_config, parse_config
    from nbrisk.training.jobs import train

    cfg = load_config(None).model_dump(mode="json")
    cfg["data"]["synthetic_n"] = n
    snapshots: list = []
    t0 = time.perf_counter()
    res = train(
        config=parse_config(cfg),
        experiment="scale",
        cluster="local" if mode == "dask" else None,
        cluster_progress=snapshots.append,
    )
    last = snapshots[-1] if snapshots else None
    return {
        "train_s": time.perf_counter() - t0,
        "per_model_s": {m.name: round(m.seconds, 1) for m in res.models},
        "tasks": None if last is None else last.done,
        "workers_seen": None if last is None else last.workers,
    }


# ----------------------------------------------------------------------------------------------------------------
# parent


def _run_child(args: list[str], env: dict | None = None) -> tuple[dict | None, float, dict]:
    """Run ``scale.py --child …``; return its JSON result, wall time and peak RSS (MB) per role, sampled."""
    import psutil

    t0 = time.perf_counter()
    errors = tempfile.TemporaryFile()  # the child's stderr: its last lines are printed if it fails
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    peaks: dict[int, tuple[str, float]] = {}
    stop = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not stop.wait(0.5):
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for p in procs:
                try:
                    rss = p.memory_info().rss / 2**20
                    role = "main" if p.pid == proc.pid else " ".join(p.cmdline()[1:3])[:60]
                except psutil.Error:
                    continue
                if rss > peaks.get(p.pid, ("", 0.0))[1]:
                    peaks[p.pid] = (role, rss)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = proc.stdout.read()
    proc.wait()
    stop.set()
    th.join()
    wall = time.perf_counter() - t0
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the child and every descendant it waited for (its pool or cluster workers): load-independent
    # work; on an otherwise idle 2-core machine the wall time cannot be below cpu / 2
    cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        errors.seek(0)
        print(f"child {args} failed (exit {proc.returncode}):", errors.read().decode(errors="replace")[-3000:])
    errors.close()
    main_peak = max((r for pid, (role, r) in peaks.items() if role == "main"), default=float("nan"))
    others = [r for role, r in peaks.values() if role != "main"]
    mem = {"main_mb": main_peak, "worker_mb": max(others, default=0.0), "n_procs": len(peaks), "cpu_s": cpu_s}
    return (json.loads(line[len("RESULT ") :]) if line and proc.returncode == 0 else None), wall, mem


def mlflow_writes(home: Path) -> dict:
    counts = {}
    db = home / "mlruns" / "mlflow.db"
    with sqlite3.connect(db) as con:
        for table in ("runs", "params", "metrics", "tags", "model_versions"):
            counts[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
    counts["artifact_files"] = sum(1 for p in home.rglob("*") if p.is_file() and p.name != "mlflow.db")
    return counts


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--fg-sizes", default="2000,10000,50000")
    ap.add_argument("--task-sizes", default="2000,10000")
    ap.add_argument("--train-sizes", default="2000,10000")
    ap.add_argument("--modes", default="local,dask")
    ap.add_argument("--forest-cap-sizes", default="", help="n for the forest's max_tree_samples accuracy check")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.child:
        kind, n, *rest = args.child
        fn = {"fg": child_fine_gray, "tasks": child_tasks, "train": child_train, "forestcap": child_forest_cap}[kind]
        print("RESULT " + json.dumps(fn(int(n), *rest), default=float), flush=True)
        return 0

    sizes = {k: [int(s) for s in getattr(args, k).split(",") if s.strip()] for k in ("fg_sizes", "task_sizes")}
    # measurements accumulate across runs (a subset can be re-measured): kept as JSON beside the markdown
    store = args.out.with_suffix(".json")
    report: dict = json.loads(store.read_text()) if store.exists() else {"fg": [], "tasks": [], "train": []}
    report.setdefault("forestcap", [])

    def record(kind: str, entry: dict) -> None:
        if store.exists():  # another run may have added measurements meanwhile
            report.update(json.loads(store.read_text()))
        same = [e for e in report[kind] if (e["n"], e.get("mode")) == (entry["n"], entry.get("mode"))]
        for e in same:
            report[kind].remove(e)
        report[kind].append(entry)
        report[kind].sort(key=lambda e: (e["n"], e.get("mode", "")))
        store.write_text(json.dumps(report, indent=1, default=float))
        write_markdown(report, args.out)  # after every measurement: a long run that is cut short keeps its results

    for n in sizes["fg_sizes"]:
        la = load()
        res, wall, mem = _run_child(["fg", str(n)])
        print("fine-gray", n, res, mem, flush=True)
        record("fg", {"n": n, "res": res, "load": la, "mem": mem})
    for n in sizes["task_sizes"]:
        la = load()
        res, wall, mem = _run_child(["tasks", str(n)])
        print("tasks", n, res, flush=True)
        record("tasks", {"n": n, "res": res, "load": la})
    for n in [int(s) for s in args.forest_cap_sizes.split(",") if s.strip()]:
        la = load()
        res, wall, mem = _run_child(["forestcap", str(n)])
        print("forest cap", n, res, flush=True)
        record("forestcap", {"n": n, "res": res, "load": la, "mem": mem})
    for n in [int(s) for s in args.train_sizes.split(",") if s.strip()]:
        for mode in [m for m in args.modes.split(",") if m]:
            with tempfile.TemporaryDirectory(prefix="nbrisk_scale_") as home:
                env = dict(os.environ, NBRISK_HOME=home, MLFLOW_TRACKING_URI=f"sqlite:///{home}/mlruns/mlflow.db")
                (Path(home) / "mlruns").mkdir()
                la = load()
                res, wall, mem = _run_child(["train", str(n), mode], env=env)
                writes = mlflow_writes(Path(home)) if res else {}
            print("train", n, mode, res, wall, mem, writes, flush=True)
            record("train", {"n": n, "mode": mode, "res": res, "wall": wall, "mem": mem, "writes": writes, "load": la})
    write_markdown(report, args.out)  # (with empty size lists: re-render the stored measurements only)
    return 0


def write_markdown(report: dict, out: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    lines = [
        "# Scale (`benchmarks/scale.py`)",
        "",
        f"Last written {now:%Y-%m-%d %H:%M} UTC (measurements accumulate in `scale.json`). Machine: "
        f"{os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}, shared with other jobs (1/5/15-minute load averages at the start of each "
        "measurement are given: with load L on 2 cores each process gets roughly 2/L of a core, so times are upper "
        "bounds). SYNTHETIC — not for clinical use.",
        "",
    ]
    if report["fg"]:
        lines += [
            "## Fine–Gray without the IPCW expansion",
            "",
            "`FineGray(alpha=10).fit` on the default feature matrix of the synthetic cohort (both causes). "
            "*Expansion rows*: what the former counting-process form would have built for the same data "
            "(relapse / TRM model).",
            "",
            "| n | p | fit time | peak RSS (data loaded → after fit) | expansion rows avoided | load |",
            "|---|---|---|---|---|---|",
        ]
        for r in report["fg"]:
            x = r["res"]
            if x is None:
                lines.append(f"| {r['n']:,} | — | failed | — | — | {r['load']} |")
                continue
            lines.append(
                f"| {x['n']:,} | {x['p']} | {x['seconds']:.1f} s | {x['rss_before_mb']:.0f} → {x['peak_mb']:.0f} MB "
                f"| {x['expansion_rows'][0]:,} / {x['expansion_rows'][1]:,} | {r['load']} |"
            )
        lines.append("")
    report["tasks"] = [r for r in report["tasks"] if r["res"] is not None]
    if report["tasks"]:
        lines += [
            "## Per-task costs (one fit + prediction of the whole cohort, one evaluation of the bootstrap metric set)",
            "",
            "*evaluate*: one evaluation of the metric set; *200 resamples*: the training job's bootstrap CIs, all "
            "resamples at once as frequency weights (`nbrisk.training.metrics.replicate_metrics`; before: 200 "
            "evaluations).",
            "",
            "| n | " + " | ".join(f"{m} fit / predict" for m in report["tasks"][0]["res"]["fit_s"]) + " | evaluate "
            "| 200 resamples | peak RSS | load |",
            "|---|" + "---|" * (len(report["tasks"][0]["res"]["fit_s"]) + 4),
        ]
        for r in report["tasks"]:
            x = r["res"]
            cells = [f"{x['fit_s'][m]:.1f} / {x['predict_s'][m]:.1f} s" for m in x["fit_s"]]
            boot = f"{x['bootstrap_200_s']:.2f} s" if "bootstrap_200_s" in x else "—"
            lines.append(
                f"| {x['n']:,} | " + " | ".join(cells) + f" | {x['evaluate_s']:.2f} s | {boot} | {x['peak_mb']:.0f} MB "
                f"| {r['load']} |"
            )
        lines.append("")
    if report["train"]:
        lines += [
            "## Default training: local pool vs 2-worker Dask cluster",
            "",
            "`configs/default.toml` with `data.synthetic_n = n`; `local` = today's joblib pool (n_jobs = 2), `dask` = "
            "`nbrisk train --cluster local` (2 worker processes × 1 thread). Peak RSS sampled every 0.5 s: the "
            "training (client) process and the largest worker process. *CPU*: user + system seconds of the training "
            "process and every worker (load-independent work: on an idle 2-core machine the wall time cannot be "
            "below CPU / 2). MLflow writes: rows written to the tracking database (params + metrics + tags) and "
            "artifact files. Target (issue 14): n = 10,000 in ≤ 5 min wall and ≤ 2 GB peak RSS per process.",
            "",
            "| n | mode | wall time | train() | CPU | peak RSS main / largest worker | processes | Dask tasks "
            "| MLflow rows / artifacts | seconds per model | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in report["train"]:
            x = r["res"]
            if x is None:
                lines.append(f"| {r['n']:,} | {r['mode']} | failed after {r['wall'] / 60:.1f} min |" + " — |" * 8)
                continue
            w = r["writes"]
            rows = w.get("params", 0) + w.get("metrics", 0) + w.get("tags", 0)
            lines.append(
                f"| {r['n']:,} | {r['mode']} | {r['wall'] / 60:.1f} min | {x['train_s'] / 60:.1f} min | "
                f"{_cpu(r['mem'])} | "
                f"{r['mem']['main_mb']:.0f} / {r['mem']['worker_mb']:.0f} MB | {r['mem']['n_procs']} | "
                f"{x['tasks'] if x['tasks'] is not None else '—'} | {rows:,} / {w.get('artifact_files', 0)} | "
                f"{x['per_model_s']} | {r['load']} |"
            )
        lines.append("")
    lines += forest_cap_section(report)
    lines += where_time_goes(report)
    lines += capacity_model(report)
    write_results(out, "\n".join(lines) + "\n")


def _cpu(mem: dict) -> str:
    return f"{mem['cpu_s'] / 60:.1f} min" if mem.get("cpu_s") is not None else "—"


def forest_cap_section(report: dict) -> list[str]:
    rows = [r for r in report.get("forestcap", []) if r["res"]]
    if not rows:
        return []
    out = [
        "## The forest's rows per tree (`max_tree_samples`)",
        "",
        "Out-of-fold metrics at 24 months of the default forest (one 5-fold CV, the same folds) with each tree grown "
        "on at most `max_tree_samples` patients (the default config) and on all of them, and the paired bootstrap "
        "95% CI of the difference (capped − uncapped; the 200 shared resamples of the training job). At n ≤ the cap "
        "the two forests are identical draw for draw (tested), so the default training at n = 2,000 is unchanged.",
        "",
        "| n | cap | metric | capped | uncapped | difference (95% CI) | CV time capped / uncapped | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        x = r["res"]
        for k in sorted(x["capped"]):
            if not any(m in k for m in ("_cindex_", "_ipa_", "_auc_")):
                continue
            ci = x["difference_ci"].get(k)
            d = x["capped"][k] - x["uncapped"][k]
            out.append(
                f"| {x['n']:,} | {x['cap']:,} | {k} | {x['capped'][k]:.3f} | {x['uncapped'][k]:.3f} | {d:+.3f} "
                + (f"({ci[0]:+.3f} to {ci[1]:+.3f})" if ci else "")
                + f" | {x['capped_cv_s']:.0f} / {x['uncapped_cv_s']:.0f} s | {r['load']} |"
            )
    out.append("")
    return out


def where_time_goes(report: dict) -> list[str]:
    """Shares of the largest local training run by model, and the evaluation share implied by the task costs."""
    runs = [r for r in report["train"] if r["res"] and r["mode"] == "local"] or [r for r in report["train"] if r["res"]]
    if not runs:
        return []
    r = max(runs, key=lambda x: x["n"])
    total = r["res"]["train_s"]
    per = sorted(r["res"]["per_model_s"].items(), key=lambda kv: -kv[1])
    out = [
        f"## Where the time goes (n = {r['n']:,}, {r['mode']})",
        "",
        "Seconds per model (nested CV, bootstrap CIs of the pooled metrics, optimism and leave-center-out refits, "
        "final fit with interval refits) and share of train(): "
        + ", ".join(f"{m} {s:.0f} s ({s / total:.0%})" for m, s in per)
        + f"; the rest ({max(total - sum(s for _, s in per), 0):.0f} s) is data generation, MLflow logging and "
        "registration.",
    ]
    tasks = [t["res"] for t in report["tasks"] if t["res"] and t["n"] == r["n"]]
    if tasks:
        ev = tasks[0]["evaluate_s"]
        models = len(per)
        if "bootstrap_200_s" in tasks[0]:
            b200 = tasks[0]["bootstrap_200_s"]
            out.append(
                f"The CIs of the pooled metrics evaluate all 200 resamples at once: {b200:.2f} s per model at this n "
                f"({b200 * models:.0f} CPU-s for {models} models; 200 separate evaluations of {ev:.2f} s would be "
                f"{200 * ev * models:.0f} CPU-s). "
            )
        else:
            out.append(
                f"One evaluation of the bootstrap metric set costs {ev:.2f} s at this n; the config then paid it 200 "
                f"times per model for the CIs: ≥ {200 * ev * models:.0f} CPU-s for {models} models. "
            )
        out[-1] += "Fits by family: " + ", ".join(f"{m} {s:.1f} s" for m, s in tasks[0]["fit_s"].items()) + "."
    out.append("")
    return out


def _power_law(n1: float, t1: float, n2: float, t2: float, n: float) -> tuple[float, float]:
    """t(n) = t2 (n / n2)^b through two measurements; returns (t(n), b), b clipped to [1, 2]."""
    import math

    b = math.log(max(t2, 1e-9) / max(t1, 1e-9)) / math.log(n2 / n1) if n2 != n1 else 1.0
    b = min(max(b, 1.0), 2.0)
    return t2 * (n / n2) ** b, b


def _write_rate(report: dict) -> str:
    done = [r for r in report["train"] if r["res"] and r["writes"]]
    if not done:
        return ""
    r = max(done, key=lambda x: x["n"])
    rows = sum(r["writes"].get(t, 0) for t in ("params", "metrics", "tags"))
    return (
        f" (measured at n = {r['n']:,}: {rows:,} rows and {r['writes'].get('artifact_files', 0)} artifact files in "
        f"{r['res']['train_s'] / 60:.1f} min, {rows / r['res']['train_s']:.1f} rows/s averaged over the run)"
    )


def capacity_model(report: dict, n: int = 100_000, refits: int = 200) -> list[str]:
    """On paper: ``refits`` bootstrap refits (optimism or interval refits) of each family at ``n`` patients."""
    tasks = sorted((r["res"] for r in report["tasks"] if r["res"]), key=lambda x: x["n"])
    if len(tasks) < 2:
        return []
    lo, hi = tasks[-2], tasks[-1]  # the two largest sizes: fixed costs matter least there
    rows, total = [], 0.0
    for m in hi["fit_s"]:
        fit, b = _power_law(lo["n"], lo["fit_s"][m], hi["n"], hi["fit_s"][m], n)
        pred, _ = _power_law(lo["n"], lo["predict_s"][m], hi["n"], hi["predict_s"][m], n)
        ev, _ = _power_law(lo["n"], lo["evaluate_s"], hi["n"], hi["evaluate_s"], n)
        task = fit + pred + 2 * ev  # optimism refit: fit, predict the original cohort once, evaluate it twice
        core_h = refits * task / 3600
        total += core_h
        rows.append((m, b, task, core_h))
    data_mb = hi["data_mb"] * n / hi["n"]
    # peak RSS = interpreter and libraries + a part linear in n, through the two measured sizes
    slope = max((hi["peak_mb"] - lo["peak_mb"]) / (hi["n"] - lo["n"]), 0.0)
    task_mb = hi["peak_mb"] + slope * (n - hi["n"])
    out = [
        f"## Capacity model on paper: n = {n:,}, {refits} bootstrap refits, k nodes",
        "",
        f"Per-task costs measured above at n = {lo['n']:,} and {hi['n']:,} (the two largest sizes; this machine, "
        "the load of each measurement in its row) and "
        f"extrapolated as t(n) ∝ n^b, b from the two sizes (clipped to [1, 2]). One refit task = fit + prediction "
        "of the original cohort + its evaluation on the resample (counts as weights) and as is (Harrell's "
        "optimism; an interval refit is cheaper: fit only).",
        "",
        "| family | exponent b of the fit | one refit task at n = 100,000 | core-hours for 200 refits | wall, k nodes "
        "(k = 1 / 4 / 16) |",
        "|---|---|---|---|---|",
    ]
    for m, b, task, core_h in rows:
        walls = " / ".join(f"{refits * task / (k * 8) / 3600:.1f} h" for k in (1, 4, 16))
        out.append(f"| {m} | {b:.2f} | {task / 60:.1f} min | {core_h:.1f} | {walls} |")
    out += [
        f"| **all {len(rows)}** | | | **{total:.1f}** | "
        + " / ".join(f"{total / (k * 8):.1f} h" for k in (1, 4, 16))
        + " |",
        "",
        "Assumptions and consequences:",
        "",
        "- Tasks are independent and each takes one core (BLAS and tree learners single-threaded, as the workers "
        "run them); wall time on k nodes of c cores ≈ core-hours / (k·c) while refits ≥ k·c, i.e. linear scaling up "
        f"to {refits} cores; the Dask scheduler adds ~1 ms per task, negligible against minutes.",
        f"- Memory per task: the records at n = {n:,} take ≈ {data_mb:.0f} MB (scaled from "
        f"{hi['data_mb']:.0f} MB at {hi['n']:,}), scattered once per worker, not per task; one task's peak "
        f"(all families fitted in one process: {lo['peak_mb']:.0f} MB at n = {lo['n']:,}, {hi['peak_mb']:.0f} MB "
        f"at {hi['n']:,}, i.e. {slope * 1000:.0f} MB per 1,000 patients above a fixed part) extrapolates to "
        f"≈ {task_mb / 1024:.1f} GB at n = {n:,} — Fine–Gray is linear now "
        "(the former expansion was ~n × censoring times rows, 8.6 GB at n = 10,000).",
        "- Database writes do not grow with the refits: a training run writes its metrics, parameters and tags "
        "once per model and the bootstrap replicates as one JSON artifact per model, all from the client after the "
        f"tasks finish{_write_rate(report)}; k nodes change when these rows are written, not how many — one "
        "PostgreSQL server is ample.",
        "- Not modelled: the nested-CV tuning grid (multiplies the CV part, not the refits), stragglers (the "
        "last wave of tasks; ~1 task time at the end). Nodes of 8 cores in the wall-time columns.",
        "",
    ]
    return out


if __name__ == "__main__":  # Dask workers re-import __main__: nothing may run on import
    sys.exit(main())
