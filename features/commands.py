"""``nbrisk data synth | validate | describe``: the cohort-file commands (called lazily by :mod:`nbrisk.cli`).

Each command is a thin shell: the computing is done by pure functions (:func:`describe_cohort` returns a plain
dict; the printing only formats it), so tests can check numbers without parsing terminal output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from nbrisk.core import SYNTHETIC_LABEL, Cause, NbriskError, months_to_days
from nbrisk.features.io import (
    NO_RECORDS,
    is_synthetic,
    merge_problems,
    read_cohort,
    read_json_records,
    read_table,
    write_table,
)
from nbrisk.features.record import FIELDS, OUTCOME_FIELDS, PREDICTOR_FIELDS, Problem, validate_records

#: Horizons (years) of the Aalen–Johansen table of ``describe``.
DESCRIBE_YEARS = (1, 2, 3, 5)
_GROUP_TITLES = {
    "disease": "Disease at diagnosis",
    "pre_transplant_status": "Status before HSCT",
    "donor_graft": "Donor and graft",
    "conditioning": "Conditioning and plan",
}


def _console() -> Console:
    # Wide when not a terminal (pipes, CliRunner) so that problem tables are never truncated.
    console = Console()
    if console.is_terminal:
        return console
    columns = os.environ.get("COLUMNS", "")
    return Console(width=max(160, int(columns) if columns.isdigit() else 0))


# --------------------------------------------------------------------------------------------------------------
# synth
# --------------------------------------------------------------------------------------------------------------


def synth(n: int, seed: int, preset: str, out: Path) -> None:
    """Generate a synthetic cohort (:func:`nbrisk.features.synthetic.make_synthetic_cohort`) and write it to ``out``
    (CSV or Parquet by extension). The records are validated before writing: a generator bug must not leave an
    invalid file behind."""
    from nbrisk.features.synthetic import make_synthetic_cohort

    out = Path(out)
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise NbriskError(f"unsupported output type {out.suffix or '(none)'!r} for {out}: use .csv or .parquet")
    if n < 1:
        raise NbriskError("--n must be at least 1")
    df = make_synthetic_cohort(n, seed=seed, preset=preset)
    _, problems = validate_records(df, require_outcomes=True, require_center=True)
    if problems:  # pragma: no cover - a generator bug, tested by the generator's own tests
        raise NbriskError(f"the generator produced {len(problems)} invalid value(s); first: {problems[0]}")
    write_table(df, out)
    _console().print(
        f"[bold]{SYNTHETIC_LABEL}[/bold] — wrote {n} synthetic patients (preset {preset}, seed {seed}) to {out}",
        highlight=False,
    )


# --------------------------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------------------------


def validate(path: Path) -> int:
    """Validate every row of a cohort or prediction file (CSV, Parquet or JSON); print a table of every problem.

    Rows are 1-based data rows of a CSV/Parquet file, 0-based indices of a JSON list. A file with any outcome
    column is checked as a **training cohort** (outcomes and ``center_id`` required);
    otherwise as **prediction records**. Returns the exit code: 0 all valid, 1 otherwise.
    """
    pre: list[Problem] = []
    if Path(path).suffix.lower() == ".json":  # patient objects, e.g. the PATIENT.json of `nbrisk report`
        raw, pre = read_json_records(path)
        first_row = 0
    else:
        raw = read_table(path)
        first_row = 1
    training = any(str(c) in OUTCOME_FIELDS for c in raw.columns)
    _, found = validate_records(raw, require_outcomes=training, require_center=training, first_row=first_row)
    problems = merge_problems(pre, found)
    if len(raw) == 0:
        problems.append(NO_RECORDS)
    kind = "training cohort (with outcomes)" if training else "prediction records (no outcome fields)"
    console = _console()
    label = (
        f" [bold]{SYNTHETIC_LABEL}[/bold]" if "patient_id" in raw.columns and is_synthetic(raw["patient_id"]) else ""
    )
    if not problems:
        console.print(f"OK: {len(raw)} record(s) in {path} are valid as a {kind}.{label}", highlight=False)
        return 0
    console.print(problem_table(problems, title=f"Problems in {path} (checked as a {kind})"))
    n_rows = len({p.row for p in problems if p.row is not None})
    console.print(
        f"{len(problems)} problem(s) in {n_rows} row(s) of {len(raw)}; nothing was loaded. "
        "Fix them and run the command again.",
        highlight=False,
    )
    return 1


def problem_table(problems: list[Problem], title: str | None = None) -> Table:
    """A rich table of problems: row, patient_id, field, value, rule (every problem, none folded away)."""
    table = Table(title=title, show_lines=False)
    for name in ("row", "patient_id", "field", "value", "rule"):
        table.add_column(name, overflow="fold")
    for p in problems:
        table.add_row("(file)" if p.row is None else str(p.row), p.patient_id or "", p.field, p.value, p.rule)
    return table


# --------------------------------------------------------------------------------------------------------------
# describe
# --------------------------------------------------------------------------------------------------------------


def _fmt_num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def describe_cohort(records: pd.DataFrame, outcomes: pd.DataFrame) -> dict[str, Any]:
    """Table 1, event counts and non-parametric CIFs of a validated cohort (plain dict, no patient-level values).

    Returns
    -------
    dict with
    * ``n``;
    * ``table1``: list of rows ``{"group", "field", "label", "level" (None for numbers), "summary", "missing"}`` —
      ``n (%)`` per level for enums/booleans, ``median [Q1–Q3]`` for numbers;
    * ``events``: counts by cause (``censored``, ``relapse``, ``trm``) and ``deaths``;
    * ``median_followup_months``: reverse Kaplan–Meier median follow-up (Schemper & Smith 1996) or None;
    * ``cif``: ``{"relapse"|"trm": [{"years", "estimate", "lower", "upper"}]}`` — Aalen–Johansen cumulative
      incidence with 95% log(−log) intervals (:func:`nbrisk.models.nonparametric.cumulative_incidence`).
    """
    n = len(records)
    rows: list[dict[str, Any]] = []
    for name in PREDICTOR_FIELDS:
        spec = FIELDS[name]
        if name not in records.columns or spec.kind == "string":
            continue
        col = records[name]
        missing = int(col.isna().sum())
        if spec.kind in ("enum", "boolean"):
            if spec.kind == "boolean":
                levels: list[Any] = [1.0, 0.0]
                shown = {1.0: "yes", 0.0: "no"}
            else:
                levels = list(spec.allowed or ())
                shown = {lv: lv for lv in levels}
            counts = col.value_counts(dropna=True)
            for lv in levels:
                c = int(counts.get(lv, 0))
                rows.append(
                    {
                        "group": spec.group,
                        "field": name,
                        "label": spec.label,
                        "level": shown[lv],
                        "summary": f"{c} ({100 * c / n:.1f}%)" if n else "0",
                        "count": c,
                        "missing": missing,
                    }
                )
        else:
            vals = col.to_numpy(dtype=float)
            vals = vals[np.isfinite(vals)]
            if vals.size:
                q1, med, q3 = np.percentile(vals, [25, 50, 75])
                summary = f"{_fmt_num(med)} [{_fmt_num(q1)}–{_fmt_num(q3)}]"
            else:
                summary = "—"
            unit = f" ({spec.unit})" if spec.unit and spec.unit not in spec.label.lower() else ""
            rows.append(
                {
                    "group": spec.group,
                    "field": name,
                    "label": spec.label + unit,
                    "level": None,
                    "summary": summary,
                    "missing": missing,
                }
            )

    event = outcomes["event"].to_numpy(dtype=int)
    time = outcomes["time"].to_numpy(dtype=float)
    events = {
        "censored": int((event == Cause.CENSORED).sum()),
        "relapse": int((event == Cause.RELAPSE).sum()),
        "trm": int((event == Cause.TRM).sum()),
        "deaths": int(outcomes["os_event"].sum()),
    }
    from nbrisk.models.nonparametric import cumulative_incidence, kaplan_meier

    cif: dict[str, list[dict[str, float]]] = {}
    eval_days = months_to_days(np.asarray(DESCRIBE_YEARS, dtype=float) * 12)
    for name, cause in (("relapse", Cause.RELAPSE), ("trm", Cause.TRM)):
        est, lo, hi = cumulative_incidence(time, event, cause, eval_days)
        beyond = eval_days > time.max()  # no one followed that long: the estimate is not defined there
        cif[name] = [
            {"years": y, "estimate": _nan_if(e, b), "lower": _nan_if(lo_, b), "upper": _nan_if(hi_, b)}
            for y, e, lo_, hi_, b in zip(DESCRIBE_YEARS, est, lo, hi, beyond, strict=True)
        ]
    # Reverse Kaplan–Meier: censoring is the "event", any failure censors follow-up.
    os_time = outcomes["os_time"].to_numpy(dtype=float)
    t_km, s_km = kaplan_meier(os_time, outcomes["os_event"].to_numpy() == 0)
    below = np.flatnonzero(s_km <= 0.5)
    median_fu = float(t_km[below[0]] / months_to_days(1.0)) if below.size else None
    return {"n": n, "table1": rows, "events": events, "median_followup_months": median_fu, "cif": cif}


def _nan_if(x: float, condition: bool) -> float:
    return float("nan") if condition else float(x)


def _pct(x: float) -> str:
    return "—" if not np.isfinite(x) else f"{100 * x:.1f}%"


def describe(path: Path) -> None:
    """Print Table 1 of the predictors, event counts by cause and Aalen–Johansen CIFs of relapse and TRM at
    1/2/3/5 years with 95% CIs for a cohort file (validated first: a bad file is refused with every problem)."""
    cohort = read_cohort(path, require_center=False)
    summary = describe_cohort(cohort.records, cohort.outcomes)
    console = _console()
    if cohort.synthetic:
        console.print(f"[bold]{SYNTHETIC_LABEL}[/bold]", highlight=False)
    console.print(f"Cohort {path}: {summary['n']} patients (sha256 {cohort.fingerprint[:12]}…)", highlight=False)

    table = Table(title="Table 1 — baseline predictors", show_lines=False)
    table.add_column("characteristic", overflow="fold")
    table.add_column("level", overflow="fold")
    table.add_column("n (%) / median [IQR]", justify="right")
    table.add_column("missing", justify="right")
    group = None
    for row in summary["table1"]:
        if row["group"] != group:
            group = row["group"]
            table.add_row(f"[bold]{_GROUP_TITLES.get(group, group)}[/bold]", "", "", "")
        table.add_row(row["label"], row["level"] or "", row["summary"], str(row["missing"]) if row["missing"] else "")
    console.print(table)

    ev = summary["events"]
    n = max(summary["n"], 1)
    events = Table(title="Events (competing risks)")
    for c in ("first event", "n", "%"):
        events.add_column(c, justify="right" if c != "first event" else "left")
    for name, key in (
        ("relapse / progression", "relapse"),
        ("transplant-related mortality", "trm"),
        ("censored (alive, event-free)", "censored"),
    ):
        events.add_row(name, str(ev[key]), f"{100 * ev[key] / n:.1f}")
    events.add_row("deaths (any cause)", str(ev["deaths"]), f"{100 * ev['deaths'] / n:.1f}")
    console.print(events)
    if summary["median_followup_months"] is not None:
        console.print(
            f"Median follow-up (reverse Kaplan–Meier): {summary['median_followup_months']:.1f} months", highlight=False
        )

    cif = Table(title="Cumulative incidence (Aalen–Johansen, 95% CI)")
    cif.add_column("years", justify="right")
    cif.add_column("relapse / progression", justify="right")
    cif.add_column("TRM", justify="right")
    for r, t in zip(summary["cif"]["relapse"], summary["cif"]["trm"], strict=True):
        cif.add_row(
            str(r["years"]),
            f"{_pct(r['estimate'])} ({_pct(r['lower'])}–{_pct(r['upper'])})",
            f"{_pct(t['estimate'])} ({_pct(t['lower'])}–{_pct(t['upper'])})",
        )
    console.print(cif)
    if cohort.synthetic:
        console.print(f"[bold]{SYNTHETIC_LABEL}[/bold]", highlight=False)
