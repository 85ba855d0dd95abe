"""How long one patient's tumour-board PDF takes to render (target: median ≤ 3 s on a 2-core machine).

Usage (from the repository root)::

    uv run python benchmarks/report_speed.py                 # fit a model on the synthetic cohort, 7 repeats
    uv run python benchmarks/report_speed.py --repeats 15 --model models:/nbrisk@champion

Writes ``benchmarks/results/report_speed.md``. What is timed is :func:`nbrisk.reports.render.render_patient_report`
for one validated record, in a warm process (the first render, which imports matplotlib/WeasyPrint and loads fonts,
is reported separately), split into its three stages: summary (record validation and every model prediction:
table, 61-point curves, what-if batch), HTML (SVG plots + Jinja2) and PDF (WeasyPrint layout + font subsetting).
Wall-clock time depends on what else runs on the machine, so CPU time of the process and the load average are
reported next to it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from importlib.metadata import version
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "report_speed.md"
TARGET_SECONDS = 3.0


def _fit_model(n: int, seed: int):
    """The clinical cause-specific Cox RiskModel (the specification the configs ship) with bootstrap intervals,
    fitted on the synthetic cohort (as in training)."""
    from nbrisk.features.outcomes import derive_outcomes
    from nbrisk.features.pipeline import clinical_cox_params
    from nbrisk.features.record import validate_records
    from nbrisk.features.synthetic import make_synthetic_cohort
    from nbrisk.models.cox import CauseSpecificCox
    from nbrisk.models.risk_model import fit_risk_model

    raw = make_synthetic_cohort(n, seed=seed, preset="base")
    records, problems = validate_records(raw, require_outcomes=True, require_center=True)
    if problems:
        raise SystemExit(f"synthetic cohort invalid: {problems[:3]}")
    records = records.reset_index(drop=True)
    outcomes = derive_outcomes(records).reset_index(drop=True)
    return fit_risk_model(
        records,
        outcomes,
        CauseSpecificCox(alpha=10.0, **clinical_cox_params()),
        model_name="cox",
        family="CauseSpecificCox",
        synthetic=True,
        fingerprint="benchmark",
        n_interval_bootstrap=30,
        seed=seed,
    )


def _subsetter() -> str:
    """Which font subsetter WeasyPrint uses (HarfBuzz-Subset is several times faster than fontTools)."""
    try:
        from weasyprint.text.ffi import harfbuzz_subset
    except ImportError:
        return "unknown"
    return "HarfBuzz-Subset" if harfbuzz_subset else "fontTools (install libharfbuzz-subset0 for speed)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--model", default=None, help="MLflow model URI (default: fit on the synthetic cohort)")
    parser.add_argument("--n", type=int, default=600, help="synthetic training size when fitting")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from nbrisk.features.record import example_record

    t0 = time.perf_counter()
    if args.model:
        from nbrisk.reports.sources import load_model

        risk_model, info = load_model(args.model)
        source = args.model
    else:
        risk_model = _fit_model(args.n, seed=0)
        info = {"name": "nbrisk", "version": "benchmark", "synthetic_training_data": True}
        source = (
            f"clinical CauseSpecificCox fitted on the synthetic cohort (n = {args.n}, 30 bootstrap refits for "
            "intervals)"
        )
    setup = time.perf_counter() - t0
    record = example_record(with_outcomes=False)

    from nbrisk.reports.render import html_to_pdf, patient_html, render_patient_report
    from nbrisk.reports.summary import build_patient_summary

    load_before = os.getloadavg()
    t = time.perf_counter()
    first = render_patient_report(risk_model, record, "pdf", info)
    cold = time.perf_counter() - t

    total, cpu, stages = [], [], {"summary": [], "html": [], "pdf": []}
    for _ in range(args.repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        render_patient_report(risk_model, record, "pdf", info)
        total.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    for _ in range(args.repeats):
        w0 = time.perf_counter()
        s = build_patient_summary(risk_model, record, info)
        w1 = time.perf_counter()
        html = patient_html(s, inline_svg=False)  # the PDF path's HTML (figures as SVG images)
        w2 = time.perf_counter()
        html_to_pdf(html)
        w3 = time.perf_counter()
        stages["summary"].append(w1 - w0)
        stages["html"].append(w2 - w1)
        stages["pdf"].append(w3 - w2)
    load_after = os.getloadavg()

    import io

    from pypdf import PdfReader

    pages = len(PdfReader(io.BytesIO(first)).pages)
    med = statistics.median(total)
    verdict = "meets" if med <= TARGET_SECONDS else "misses"
    lines = [
        "# Patient report rendering speed",
        "",
        "Command: `uv run python benchmarks/report_speed.py"
        + (f" --repeats {args.repeats}" if args.repeats != 7 else "")
        + (f" --model {args.model}" if args.model else "")
        + "`",
        "",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}; "
        f"load average {load_before[0]:.2f} before / {load_after[0]:.2f} after the timed renders "
        "(other work shares the machine: wall-clock times are inflated by roughly load ÷ CPUs when that exceeds 1)",
        f"- Versions: WeasyPrint {version('weasyprint')}, matplotlib {version('matplotlib')}, "
        f"Jinja2 {version('jinja2')}; font subsetting: {_subsetter()}",
        f"- Model: {source} (set-up {setup:.1f} s, not timed)",
        f"- Output: {pages}-page A4 PDF, {len(first) / 1024:.0f} KiB",
        "",
        f"## One patient's PDF: median **{med:.2f} s** wall ({verdict} the {TARGET_SECONDS:g} s target), "
        f"median {statistics.median(cpu):.2f} s CPU",
        "",
        "| | median (s) | min (s) | max (s) |",
        "|---|---:|---:|---:|",
        f"| whole render, wall (n = {args.repeats}) | {med:.2f} | {min(total):.2f} | {max(total):.2f} |",
        f"| whole render, CPU of the process | {statistics.median(cpu):.2f} | {min(cpu):.2f} | {max(cpu):.2f} |",
    ]
    labels = {
        "summary": "summary: validation + all predictions (table, curves, what-if)",
        "html": "HTML: 4 SVG figures (curves, icon array) + template",
        "pdf": "PDF: WeasyPrint layout + fonts",
    }
    for k, v in stages.items():
        lines.append(f"| {labels[k]}, wall | {statistics.median(v):.2f} | {min(v):.2f} | {max(v):.2f} |")
    lines += [
        "",
        f"First render in a fresh process (imports, font configuration): {cold:.2f} s "
        "(a server should call `nbrisk.reports.render.warm_up()` at start-up).",
        "",
        "Reading: the render is single-threaded Python (WeasyPrint layout dominates), so with a free core the "
        "wall-clock time approaches the CPU time; the gap above is time spent waiting for a core while "
        f"the load average was {max(load_before[0], load_after[0]):.1f} on {os.cpu_count()} CPUs.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
