"""Real-data benchmark: every model family vs the EBMT risk score alone on EBMT registry data (mstate::ebmt1/ebmt4).

Run from the repository root::

    uv run python benchmarks/ebmt.py                 # ebmt1 and ebmt4, 5-fold x 2 repeats, 200 bootstrap resamples
    uv run python benchmarks/ebmt.py --quick         # ebmt1 only, 3-fold x 1, 50 resamples (a smoke run)

It writes ``benchmarks/results/ebmt.md`` and logs one MLflow run per data set and model to the experiment
``benchmark-ebmt`` (the configured tracking store: ``MLFLOW_TRACKING_URI`` or ``<NBRISK_HOME>/mlruns``).

What it does (same machinery as ``nbrisk train``, on the loaders' numeric predictors instead of records):

* the data: :func:`nbrisk.features.load_ebmt1` (CML; predictors age and the EBMT/Gratwohl risk score) and
  :func:`nbrisk.features.load_ebmt4` (transplant era, age class, GvHD prophylaxis, gender mismatch); relapse vs
  death without relapse (NRM), times in days;
* every model family wrapped in the illness–death model (so OS is predicted too), and for ebmt1 the **EBMT score
  alone**: a cause-specific Cox model whose only predictors are the two score indicators — the clinical baseline;
* repeated K-fold stratified by cause, identical folds for every model (:func:`nbrisk.training.validation.make_folds`),
  hyper-parameters fixed (no tuning: the point is the family, not the grid);
* pooled out-of-fold metrics at 12/24/36/60 months from :mod:`nbrisk.training.metrics` (Wolbers C-index, Blanche
  AUC, IPCW Brier, IPA, calibration ICI/slope) with percentile 95% CIs over the **same** 200 patient resamples for
  every model, and paired differences vs the score-alone model.

The EBMT data are simplified registry extracts distributed for illustrating methods (mstate); no clinical
conclusions.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ebmt.md"
HORIZONS = [12.0, 24.0, 36.0, 60.0]


def _families(data_name: str) -> dict[str, tuple[str, dict]]:
    fam = {
        "aalen_johansen (null)": ("AalenJohansen", {}),
        "cause-specific Cox": ("CauseSpecificCox", {"alpha": 1.0}),
        "Fine–Gray": ("FineGray", {"alpha": 1.0}),
        "random survival forest": ("CauseSpecificForest", {"n_estimators": 200, "min_samples_leaf": 30}),
        "xgboost Cox": ("CauseSpecificBoosting", {"n_estimators": 150, "learning_rate": 0.05}),
    }
    if data_name == "ebmt1":
        fam["EBMT score alone (Cox)"] = ("CauseSpecificCox", {"alpha": 0.0})
    return fam


def _columns(data_name: str, label: str, X: pd.DataFrame) -> list[str]:
    if label.startswith("EBMT score alone"):
        return [c for c in X.columns if c.startswith("score_")]
    return list(X.columns)


def _fit_predict(family: str, params: dict, X_tr, y_tr, post_tr, X_te, times_days, seed: int) -> np.ndarray:
    """(n_test, 4, k): event-free, relapse, NRM (CIF) and OS from the illness–death model."""
    from nbrisk.models import CIFCoherenceWarning
    from nbrisk.models.illness_death import IllnessDeathModel
    from nbrisk.training.config import ModelSpec

    spec = ModelSpec(name="m", family=family, params=params)
    model = IllnessDeathModel(spec.make_estimator(random_state=seed), n_bootstrap=0, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CIFCoherenceWarning)  # tail rescaling: part of the estimators' definition
        model.fit(X_tr, pd.concat([y_tr.reset_index(drop=True), post_tr.reset_index(drop=True)], axis=1))
        return model.predict_states(X_te, times_days)  # axis 1 in State order (EFS, relapse, TRM, OS)


def run_dataset(ds, n_splits: int, n_repeats: int, n_boot: int, seed: int, log) -> dict:
    from nbrisk.core import months_to_days
    from nbrisk.training import validation as V

    X = ds.X.astype(float)
    if X.isna().any().any():
        X = X.fillna(X.median())
    y = ds.y.reset_index(drop=True)
    extra = ds.extra.reset_index(drop=True)
    post = extra[["relapse_time", "post_relapse_time", "post_relapse_event"]].copy()
    # a death on the day of relapse (post-relapse time 0) counts as half a day, as derive_outcomes does
    post.loc[post["post_relapse_time"] <= 0, "post_relapse_time"] = 0.5
    outcomes = pd.concat([y, extra[["os_time", "os_event"]]], axis=1)
    outcomes.loc[outcomes["os_time"] <= 0, "os_time"] = 0.5
    event = y["event"].to_numpy()
    folds = V.make_folds(event, n_splits, n_repeats, seed)
    boot = V.bootstrap_indices(event, n_boot, seed)
    times = months_to_days(HORIZONS)
    n_rep = max(f.repeat for f in folds) + 1
    out = {}
    for label, (family, params) in _families(ds.name).items():
        cols = _columns(ds.name, label, X)
        t0 = time.perf_counter()
        oof = np.full((n_rep, len(y), 4, len(HORIZONS)), np.nan)
        for f in folds:
            oof[f.repeat, f.test] = _fit_predict(
                family,
                params,
                X.iloc[f.train][cols].reset_index(drop=True),
                y.iloc[f.train].reset_index(drop=True),
                post.iloc[f.train].reset_index(drop=True),
                X.iloc[f.test][cols].reset_index(drop=True),
                times,
                seed,
            )
        pred = oof.mean(axis=0)
        metrics, reps = V.pooled_metrics(outcomes, pred, HORIZONS, boot)
        seconds = time.perf_counter() - t0
        out[label] = {
            "family": family,
            "params": params,
            "columns": cols,
            "metrics": metrics,
            "replicates": reps,
            "seconds": seconds,
        }
        log(
            f"  {ds.name} / {label}: {seconds:.1f} s; relapse C24 {metrics['relapse_cindex_24m']:.3f}, "
            f"NRM C24 {metrics['trm_cindex_24m']:.3f}"
        )
    return out


def _ci(m: dict, key: str) -> str:
    v = m.get(key)
    if v is None or not np.isfinite(v):
        return "—"
    lo, hi = m.get(f"{key}_lower"), m.get(f"{key}_upper")
    if lo is None or hi is None:
        return f"{v:.3f}"
    return f"{v:.3f} ({lo:.3f}–{hi:.3f})"


def render(results: dict, args, seconds: float) -> str:
    from nbrisk.training.validation import paired_difference

    lines = [
        "# EBMT real-data benchmark (relapse vs non-relapse mortality after allo-HSCT)",
        "",
        f"Generated by `benchmarks/ebmt.py` ({'--quick' if args.quick else 'full'}), "
        f"{args.splits}-fold × {args.repeats} repeats stratified by cause, identical folds for every model, "
        f"{args.boot} patient bootstrap resamples shared by all models (percentile 95% CIs); seed {args.seed}. "
        f"Python {platform.python_version()}, total {seconds / 60:.1f} min on this machine.",
        "",
        "Metrics of the pooled out-of-fold predictions (averaged over repeats): Wolbers' C-index (not IPCW), "
        "Blanche's IPCW time-dependent AUC, IPA (1 − Brier / Brier of the Aalen–Johansen null) and the calibration "
        'ICI / slope (pseudo-observations, Austin 2020). "TRM" here is death without relapse (NRM).',
        "Data: mstate's simplified EBMT registry extracts, for illustrating methods only — no clinical conclusions.",
        "",
    ]
    for name, res in results.items():
        lines += [f"## {name}", ""]
        for cause, title in (("relapse", "Relapse"), ("trm", "Non-relapse mortality")):
            lines += [
                f"### {title}",
                "",
                "| model | C 12 m | C 24 m | C 60 m | AUC 24 m | IPA 24 m | ICI 24 m | slope 24 m |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for label, r in res.items():
                m = r["metrics"]
                lines.append(
                    f"| {label} | {_ci(m, f'{cause}_cindex_12m')} | {_ci(m, f'{cause}_cindex_24m')} | "
                    f"{_ci(m, f'{cause}_cindex_60m')} | {_ci(m, f'{cause}_auc_24m')} | {_ci(m, f'{cause}_ipa_24m')} | "
                    f"{_ci(m, f'{cause}_ici_24m')} | {_ci(m, f'{cause}_cal_slope_24m')} |"
                )
            lines.append("")
        ref_label = "EBMT score alone (Cox)" if "EBMT score alone (Cox)" in res else "cause-specific Cox"
        ref = res[ref_label]
        lines += [f"Paired differences vs **{ref_label}** (same resamples; C-index at 24 months, 95% CI):", ""]
        for label, r in res.items():
            if label == ref_label:
                continue
            parts = []
            for cause in ("relapse", "trm"):
                key = f"{cause}_cindex_24m"
                d = paired_difference(r["replicates"].get(key, []), ref["replicates"].get(key, []))
                parts.append(f"{cause} {d[0]:+.3f} ({d[1]:+.3f} to {d[2]:+.3f})" if d else f"{cause} —")
            lines.append(f"- {label}: " + "; ".join(parts))
        lines.append("")
        lines.append(
            "Fit + predict time over all folds: "
            + ", ".join(f"{label} {r['seconds']:.0f} s" for label, r in res.items())
            + "."
        )
        lines.append("")
    lines += ["## Reading", "", "<!-- READING -->", ""]
    return "\n".join(lines)


def log_to_mlflow(results: dict, args) -> None:
    from nbrisk.training import tracking

    for name, res in results.items():
        for label, r in res.items():
            tracking.log_benchmark_run(
                "benchmark-ebmt",
                f"{name} / {label}",
                params={
                    "dataset": name,
                    "family": r["family"],
                    **r["params"],
                    "columns": ",".join(r["columns"]),
                    "splits": args.splits,
                    "repeats": args.repeats,
                    "bootstrap": args.boot,
                    "seed": args.seed,
                },
                metrics=r["metrics"],
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="ebmt1 only, 3-fold x 1, 50 resamples")
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.quick:
        args.splits, args.repeats, args.boot = 3, 1, 50
    from nbrisk.features.public import load_ebmt1, load_ebmt4

    loaders = [load_ebmt1] if args.quick else [load_ebmt1, load_ebmt4]
    t0 = time.perf_counter()
    results = {}
    for load in loaders:
        ds = load()
        print(f"{ds.name}: n={ds.n}, events {ds.y['event'].value_counts().sort_index().to_dict()}", flush=True)
        results[ds.name] = run_dataset(
            ds, args.splits, args.repeats, args.boot, args.seed, log=lambda m: print(m, flush=True)
        )
    text = render(results, args, time.perf_counter() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    old = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
    reading = old.split("## Reading", 1)[1].strip() if "## Reading" in old else "<!-- READING -->"
    args.out.write_text(text.replace("<!-- READING -->", reading), encoding="utf-8")
    print(f"wrote {args.out}")
    if not args.no_mlflow:
        log_to_mlflow(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
