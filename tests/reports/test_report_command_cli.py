"""``nbrisk report``: the CLI shell over the patient and model reports.

Fast tests cover user mistakes that must fail before any model is loaded (one line, exit code ≠ 0, no
traceback). The end-to-end tests train the quick config into a temporary MLflow (the
``registered_champion`` fixture: a real registered pyfunc model, no mocks) and are marked slow.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from typer.testing import CliRunner

from nbrisk.cli import app
from nbrisk.core import SYNTHETIC_LABEL
from nbrisk.features.record import example_record, validate_record

runner = CliRunner()


def _write(tmp_path, obj, name="patient.json"):
    path = tmp_path / name
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def _one_line_error(result) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


def test_bad_output_suffix_is_refused(tmp_path):
    path = _write(tmp_path, example_record(with_outcomes=False))
    result = runner.invoke(app, ["report", str(path), "--out", str(tmp_path / "r.docx")])
    assert ".pdf or .html" in _one_line_error(result)


def test_missing_patient_file_is_one_clear_error(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path / "nope.json"), "--out", str(tmp_path / "r.html")])
    assert "not found" in _one_line_error(result)


def test_invalid_json_names_the_position(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"patient_id": "A1",', encoding="utf-8")
    result = runner.invoke(app, ["report", str(path), "--out", str(tmp_path / "r.html")])
    assert "not valid JSON" in _one_line_error(result)


def test_several_patients_are_refused(tmp_path):
    rec = example_record(with_outcomes=False)
    path = _write(tmp_path, [rec, rec])
    result = runner.invoke(app, ["report", str(path), "--out", str(tmp_path / "r.html")])
    assert "2 patients" in _one_line_error(result)


def test_neither_patient_nor_model_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["report", "--out", str(tmp_path / "r.html")])
    assert "--model" in _one_line_error(result)


# --------------------------------------------------------------------------------------------------------------
# end to end against a real registered model (slow: trains the quick config into a temporary MLflow)


@pytest.mark.slow
def test_patient_report_from_registered_champion(registered_champion, tmp_path):
    from pypdf import PdfReader

    from nbrisk.models.pyfunc import load_risk_model
    from nbrisk.reports.render import fmt_pct

    rec = example_record(with_outcomes=False)
    path = _write(tmp_path, {"patient": rec})  # the POST /v1/report body is accepted too
    out = tmp_path / "report.pdf"
    result = runner.invoke(app, ["report", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert SYNTHETIC_LABEL in result.output
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(out.read_bytes())).pages)
    # the numbers of the served model (same URI, same validated record, same predict call as /v1/risk)
    typed, _ = validate_record(rec)
    curves = load_risk_model(registered_champion).predict(typed, (12, 24, 36, 60))
    flat = re.sub(r"\s+", "", text)
    for j in range(4):
        assert fmt_pct(curves.relapse.estimate[0, j]) in flat
        assert fmt_pct(curves.os.estimate[0, j]) in flat


@pytest.mark.slow
def test_invalid_patient_lists_the_problems(registered_champion, tmp_path):
    rec = example_record(with_outcomes=False)
    rec.update({"lansky_score": 55, "inrg_stage": "L1"})
    path = _write(tmp_path, rec)
    result = runner.invoke(app, ["report", str(path), "--out", str(tmp_path / "r.pdf")])
    line = _one_line_error(result)
    assert "lansky_score" in line and "inrg_stage" in line and "intended use" in line
    assert result.exit_code == 1
    assert not (tmp_path / "r.pdf").exists()


@pytest.mark.slow
def test_model_report_for_a_registered_version(registered_champion, tmp_path):
    from nbrisk.reports import sources

    version = sources.resolve(registered_champion).version
    out = tmp_path / "model.html"
    result = runner.invoke(app, ["report", "--model", str(version), "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert SYNTHETIC_LABEL in html
    assert "TRIPOD+AI checklist" in html and "To be completed by the authors" in html
    # metrics with CIs from the MLflow run, calibration plot and decision curves as inline SVG
    assert re.search(r"0\.\d{3} <span class=\"ci\">\(0\.\d{3}–0\.\d{3}\)</span>", html)
    assert html.count("<svg") >= 3
    assert "aalen_johansen" in html  # the null model of the same training run, compared on the same folds
    pdf = tmp_path / "model.pdf"
    result = runner.invoke(app, ["report", "--model", registered_champion, "--out", str(pdf)])
    assert result.exit_code == 0, result.output
    assert pdf.read_bytes().startswith(b"%PDF-")


@pytest.mark.slow
def test_unknown_model_version_is_one_clear_error(registered_champion, tmp_path):
    result = runner.invoke(app, ["report", "--model", "999", "--out", str(tmp_path / "m.html")])
    assert "999" in _one_line_error(result)


@pytest.mark.slow
def test_report_from_the_shipped_request_body_and_example_patient(registered_champion, tmp_path):
    from pathlib import Path

    from pypdf import PdfReader

    docs = Path(__file__).resolve().parents[2] / "docs"
    for name in ("example_request.json", "example_patient.json"):  # a /v1/risk body with one patient; a record
        out = tmp_path / f"{name}.pdf"
        result = runner.invoke(app, ["report", str(docs / name), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert len(PdfReader(io.BytesIO(out.read_bytes())).pages) == 2
