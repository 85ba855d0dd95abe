"""CLI commands of the training package: ``train``, ``compare``, ``promote``, ``predict`` (printing only).

The work is done in :mod:`nbrisk.training.jobs`; here results become tables (rich) and user mistakes become
:class:`nbrisk.core.NbriskError` (one line, non-zero exit code). A bad training file prints every problem before
exiting with code 1.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from nbrisk.core import DEFAULT_HORIZONS_MONTHS, SYNTHETIC_LABEL, NbriskError

#: ``--horizons`` default of ``nbrisk predict``: the default horizons as comma-separated months.
DEFAULT_HORIZONS_TEXT = ",".join(str(h) for h in DEFAULT_HORIZONS_MONTHS)


def _console() -> Console:
    # Wide enough for the leaderboard when stdout is not a terminal (CliRunner, CI logs).
    return Console(width=160, highlight=False)


def _ci(row: dict[str, Any], key: str) -> str:
    v, lo, hi = row.get(key), row.get(f"{key}_lower"), row.get(f"{key}_upper")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if lo is None or hi is None or any(isinstance(x, float) and math.isnan(x) for x in (lo, hi)):
        return f"{v:.3f}"
    return f"{v:.3f} ({lo:.3f}–{hi:.3f})"


def _short_inputs(text: str) -> str:
    """The leaderboard's one-word summary of a model's inputs (the model card carries the full sentence)."""
    if not text:
        return "—"
    if text.startswith("pre-specified"):
        short = "clinical"
    elif text.startswith("none"):
        short = "none"
    elif text.startswith("all"):
        short = "all"
    else:
        short = "selected"
    return short + ("+splines" if "splines" in text else "") + ("+tv" if "time-varying" in text else "")


def leaderboard_table(rows: list[dict[str, Any]], horizon: float, title: str) -> Table:
    from nbrisk.training.validation import metric_key

    h = f"{float(horizon):g}m"
    t = Table(title=title, title_justify="left")
    for col in (
        "#",
        "model",
        "inputs",
        "version",
        f"relapse C {h}",
        f"relapse IPA {h}",
        f"TRM C {h}",
        f"TRM IPA {h}",
        f"ICI rel/TRM {h}",
    ):
        t.add_column(col, no_wrap=True)
    for r in rows:
        icis = [r.get(metric_key(c, "ici", horizon)) for c in ("relapse", "trm")]
        ici = "/".join("—" if v is None or math.isnan(v) else f"{v:.3f}" for v in icis)
        t.add_row(
            str(r["rank"]),
            r["model"],
            _short_inputs(r.get("inputs", "")),
            str(r.get("version") or "—"),
            _ci(r, metric_key("relapse", "cindex", horizon)),
            _ci(r, metric_key("relapse", "ipa", horizon)),
            _ci(r, metric_key("trm", "cindex", horizon)),
            _ci(r, metric_key("trm", "ipa", horizon)),
            ici,
        )
    return t


def train(
    data: Path | None = None, config: Path | None = None, experiment: str = "nbrisk", cluster: str | None = None
) -> int:
    """``nbrisk train``: fit, validate, log and register; print the leaderboard.

    ``cluster``: Dask scheduler address or ``local`` (overrides the config's ``cluster``); a second bar then shows
    the cluster's tasks done / submitted and the workers in use.
    """
    from nbrisk.training.cluster import check_address

    if cluster is not None:
        try:
            cluster = check_address(cluster)
        except ValueError as exc:
            raise NbriskError(str(exc)) from None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from nbrisk.features.record import CohortValidationError
    from nbrisk.training import jobs

    console = _console()
    err = Console(stderr=True, width=160, highlight=False)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("training", total=None)

        def progress(name: str, done: int, total: int) -> None:
            bar.update(task, description=f"training {name}", completed=done, total=total)

        tasks = None

        def cluster_progress(p) -> None:
            nonlocal tasks
            if tasks is None:
                tasks = bar.add_task("cluster tasks", total=None)
            bar.update(
                tasks,
                description=f"cluster tasks (workers in use {p.workers_busy}/{p.workers})",
                completed=p.done,
                total=max(p.total, 1),
            )

        try:
            result = jobs.train(
                data=data,
                config=config,
                experiment=experiment,
                progress=progress,
                log=lambda m: console.print(m),
                cluster=cluster,
                cluster_progress=cluster_progress,
            )
        except CohortValidationError as exc:
            bar.stop()
            print_problems(exc, err)
            raise
    horizon = _primary_horizon(config)
    console.print(
        leaderboard_table(
            result.leaderboard, horizon, f"Leaderboard (out-of-fold, 95% bootstrap CIs), experiment {experiment!r}"
        )
    )
    if result.synthetic:
        console.print(f"[bold]{SYNTHETIC_LABEL}[/bold]")
    console.print(
        f"registered: candidate → version {result.candidate_version}, "
        f"champion → version {result.champion_version}; parent run {result.parent_run_id}; "
        f"{result.seconds:.1f} s"
    )
    return 0


def _primary_horizon(config: Path | None) -> float:
    from nbrisk.training.config import load_config

    return load_config(config).validation.primary_horizon_months


def print_problems(exc, console: Console, limit: int = 200) -> None:
    """The validation report of a bad file: row, patient_id, field, value, rule (every problem, capped)."""
    t = Table(title=str(exc), title_justify="left")
    for col in ("row", "patient_id", "field", "value", "rule"):
        t.add_column(col)
    for p in exc.problems[:limit]:
        t.add_row("" if p.row is None else str(p.row), p.patient_id or "", p.field, p.value, p.rule)
    console.print(t)
    if len(exc.problems) > limit:
        console.print(f"… and {len(exc.problems) - limit} more problem(s)")


def compare(experiment: str = "nbrisk") -> int:
    """``nbrisk compare``: the leaderboard of the latest training run, from MLflow."""
    from nbrisk.training import jobs

    board = jobs.compare(experiment)
    console = _console()
    console.print(
        leaderboard_table(
            board["rows"],
            board["horizon"],
            f"Leaderboard of run {board['parent_run_id']} (same folds, 95% bootstrap CIs)",
        )
    )
    if board["synthetic"]:
        console.print(f"[bold]{SYNTHETIC_LABEL}[/bold]")
    return 0


def promote(name: str, version: str, alias: str = "champion") -> int:
    """``nbrisk promote``: check the gates, print the comparison, move the alias or refuse (exit 1)."""
    from nbrisk.training import jobs

    result = jobs.promote(name, version, alias)
    console = _console()
    champ = result["champion"]
    t = Table(
        title=f"Promotion of {name} version {version} → @{alias}"
        + (f" (current: version {champ['version']})" if champ else " (no current holder)"),
        title_justify="left",
    )
    for col in ("gate", "result", "detail"):
        t.add_column(col)
    for c in result["checks"]:
        t.add_row(c.gate, "pass" if c.passed else "FAIL", c.detail)
    console.print(t)
    if not result["promoted"]:
        raise NbriskError(f"promotion refused: {'; '.join(result['reasons'])}", exit_code=1)
    console.print(f"{name}@{alias} → version {version}")
    return 0


def predict(file: Path, out: Path, model: str | None = None, horizons: str = DEFAULT_HORIZONS_TEXT) -> int:
    """``nbrisk predict``: long CSV of estimates and 95% intervals per patient and horizon."""
    from nbrisk.features.record import CohortValidationError
    from nbrisk.training import jobs

    try:
        frame = jobs.predict(file, out, model=model, horizons=horizons)
    except CohortValidationError as exc:
        print_problems(exc, Console(stderr=True, width=160, highlight=False))
        raise
    n = frame["patient_id"].nunique()
    _console().print(f"wrote {len(frame)} rows ({n} patient(s)) to {out}")
    return 0
