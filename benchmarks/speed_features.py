"""Speed of the record contract, the feature pipeline and the synthetic generator (not tests: timings live here).

    uv run python benchmarks/speed_features.py      # writes benchmarks/results/speed_features.md

Median of repeated runs, on this machine as it is (report its load: a shared machine inflates wall time).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pandas as pd
from _common import median_time, write_results

from nbrisk.core import DEFAULT_HORIZONS_MONTHS
from nbrisk.features.pipeline import RecordFeatures
from nbrisk.features.record import validate_records
from nbrisk.features.synthetic import make_synthetic_cohort, true_risk

OUT = Path(__file__).parent / "results" / "speed_features.md"


def main() -> None:
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, float]] = []
    rows.append(
        ("generate 20,000 synthetic patients", median_time(lambda: make_synthetic_cohort(20000, 1), 3, warmup=0))
    )
    cohort = make_synthetic_cohort(5000, 2)
    raw = cohort.astype(str).where(cohort.notna(), "")
    rows.append(
        (
            "true_risk, 5,000 patients × 4 horizons",
            median_time(lambda: true_risk(cohort, DEFAULT_HORIZONS_MONTHS), 5, warmup=0),
        )
    )
    one = raw.head(1)
    thousand = raw.head(1000)
    rows.append(
        (
            "validate 1 record",
            median_time(lambda: validate_records(one, require_outcomes=True, require_center=True), 50, warmup=0),
        )
    )
    rows.append(
        (
            "validate 1,000 records",
            median_time(lambda: validate_records(thousand, require_outcomes=True, require_center=True), 10, warmup=0),
        )
    )
    rows.append(
        (
            "validate 20,000 records",
            median_time(
                lambda: validate_records(
                    pd.concat([raw] * 4, ignore_index=True).assign(patient_id=[f"P{i}" for i in range(20000)]),
                    require_outcomes=True,
                    require_center=True,
                ),
                3,
                warmup=0,
            ),
        )
    )
    typed, _ = validate_records(raw, require_outcomes=True, require_center=True)
    feats = RecordFeatures().fit(typed)
    rows.append(
        ("feature pipeline, transform 1 record", median_time(lambda: feats.transform(typed.head(1)), 50, warmup=0))
    )
    big = pd.concat([typed] * 2, ignore_index=True)
    rows.append(("feature pipeline, transform 10,000 records", median_time(lambda: feats.transform(big), 5, warmup=0)))
    lines = [
        "# Features: speed (SYNTHETIC — not for clinical use)",
        "",
        "Command: `uv run python benchmarks/speed_features.py`. "
        f"Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}; "
        f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after.",
        "",
        "| operation | median (ms) |",
        "|---|---:|",
        *[f"| {name} | {sec * 1000:.1f} |" for name, sec in rows],
        "",
    ]
    write_results(OUT, "\n".join(lines))


if __name__ == "__main__":
    main()
