"""The tumour-board patient report: content, agreement with the predictor, HTML and PDF rendering.

The model is the session fixture ``risk_model`` (a real cause-specific Cox RiskModel fitted on the synthetic
cohort). Expected numbers are computed here independently of the report code, through the path of ``POST /v1/risk``:
``validate_record`` → ``RiskModel.predict(typed, (12, 24, 36, 60))``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import re

import numpy as np
import pytest

from nbrisk.core import RISK_GROUP_TITLES, SYNTHETIC_LABEL, NbriskError
from nbrisk.features.record import FIELDS, HLA_MISMATCH_RANGE, example_record, validate_record
from nbrisk.reports.cohort import cohort_positions
from nbrisk.reports.render import fmt_pct, render_patient_report
from nbrisk.reports.summary import PatientReportError, build_patient_summary

FIXED_TIME = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
MODEL_INFO = {"name": "nbrisk", "version": "7", "alias": "champion", "synthetic_training_data": True}
HORIZONS = (12, 24, 36, 60)


def _complete() -> dict:
    return example_record(with_outcomes=False)


def _with_missing() -> dict:
    rec = _complete()
    rec.update(
        {
            "patient_id": "MISS-01",
            "ldh_at_diagnosis_u_l": None,
            "curie_score_at_hsct": None,
            "bone_marrow_tumor_percent_at_hsct": None,
            "hct_ci": None,
            "cd34_dose_1e6_per_kg": None,
            "donor_age_years": None,
            "mycn_status": "unknown",
            "mrd_at_hsct": "unknown",
        }
    )
    return rec


def _extreme_from_cohort(risk_model, cohort) -> dict:
    """The training patient with the lowest predicted 2-year EFS (extreme risk as this model sees it), as JSON."""
    from nbrisk.features.record import OUTCOME_FIELDS
    from nbrisk.reports.record import json_value

    curves = risk_model.predict(cohort.records, [24])
    i = int(np.argmin(curves.efs.estimate[:, 0]))
    row = cohort.records.drop(columns=[c for c in OUTCOME_FIELDS if c in cohort.records.columns]).iloc[i]
    rec = {k: json_value(v) for k, v in row.to_dict().items()}
    rec["patient_id"] = "EXT-01"
    return rec


@pytest.fixture(scope="module")
def patients(risk_model, synthetic_cohort) -> dict[str, dict]:
    return {
        "complete": _complete(),
        "missing": _with_missing(),
        "extreme": _extreme_from_cohort(risk_model, synthetic_cohort),
    }


PATIENT_KINDS = ("complete", "missing", "extreme")


def _expected(risk_model, record):
    """The /v1/risk numbers for ``record``: validated with the record contract, predicted at 1/2/3/5 years."""
    typed, problems = validate_record(record)
    assert not problems, problems
    return risk_model.predict(typed, HORIZONS)


def _numbers_as_printed(curves) -> list[str]:
    out = []
    for band in curves.bands().values():
        for j in range(len(HORIZONS)):
            out.append(fmt_pct(band.estimate[0, j]))
            if band.lower is not None:
                out.append(f"({fmt_pct(band.lower[0, j])}–{fmt_pct(band.upper[0, j])})")
    return out


@pytest.mark.parametrize("which", PATIENT_KINDS)
def test_records_used_in_these_tests_are_valid(patients, which):
    _, problems = validate_record(patients[which])
    assert problems == []


@pytest.mark.parametrize("which", PATIENT_KINDS)
def test_html_report_shows_the_predictor_numbers(risk_model, patients, which):
    record = patients[which]
    html = render_patient_report(risk_model, record, "html", MODEL_INFO, generated_at=FIXED_TIME).decode()
    expected = _expected(risk_model, record)
    table = html[html.index("At 1, 2, 3 and 5 years") : html.index("How similar training patients fared")]
    for text in _numbers_as_printed(expected):
        assert text in table, text
    assert html.count("<svg") >= 2  # stacked incidence + survival (cohort plot when percentiles are stored)
    assert SYNTHETIC_LABEL in html
    assert record["patient_id"] in html
    group = str(risk_model.risk_groups(expected)[0])
    assert f">{RISK_GROUP_TITLES[group]}<" in html


def test_summary_table_is_exactly_the_predict_call(risk_model, patients):
    record = patients["extreme"]
    s = build_patient_summary(risk_model, record, MODEL_INFO, generated_at=FIXED_TIME)
    expected = _expected(risk_model, record)
    for name, band in expected.bands().items():
        got = np.array([getattr(row, name).estimate for row in s.table])
        np.testing.assert_array_equal(got, band.estimate[0])  # same call, so bit-identical
    # The plot's curves pass through the table's values at the table horizons (same model, finer grid).
    for name in ("relapse", "trm", "efs", "os"):
        est = s.plot[name][0]
        at = [est[int(np.flatnonzero(s.plot_months == h)[0])] for h in HORIZONS]
        np.testing.assert_allclose(at, expected.bands()[name].estimate[0], atol=1e-12)
    assert s.plot["relapse"][0][0] == 0.0 and s.plot["efs"][0][0] == 1.0  # day 0: alive and event-free


def test_extreme_patient_is_in_the_high_risk_group(risk_model, patients):
    ext = build_patient_summary(risk_model, patients["extreme"], MODEL_INFO)
    assert ext.risk_group == "high"
    # the lowest 2-year EFS of the training cohort is below every stored training percentile of EFS
    dist = risk_model.training_summary["predicted_2y_distribution"]["efs"]
    assert ext.table[1].efs.estimate <= min(dist.values()) + 1e-12


def test_missing_fields_are_marked(risk_model):
    html = render_patient_report(risk_model, _with_missing(), "html", MODEL_INFO).decode()
    s = build_patient_summary(risk_model, _with_missing(), MODEL_INFO)
    flagged = {r.field: r.status for g in (*s.inputs_used, *s.inputs_unused) for r in g.rows if r.status}
    for f in ("ldh_at_diagnosis_u_l", "curie_score_at_hsct", "hct_ci", "cd34_dose_1e6_per_kg", "donor_age_years"):
        assert flagged.get(f) == "imputed", f  # missing, and the report says what the model used instead
    # this all-column model has its own coefficient for MYCN 'unknown': scored as given, no reference warning
    assert "mycn_status" not in flagged
    assert html.count('flag-missing">missing') == 6  # the six nullable fields left empty above
    # every predictor of the contract is echoed, in its clinical group
    shown = {r.field for g in (*s.inputs_used, *s.inputs_unused) for r in g.rows}
    assert shown == {n for n, spec in FIELDS.items() if spec.is_predictor}


def test_whatif_rows_repredict_valid_modified_records(risk_model):
    record = _complete()
    s = build_patient_summary(risk_model, record, MODEL_INFO)
    assert s.whatif_notes == ()
    donors = [w for w in s.whatifs if w.choice == "Donor type"]
    assert len(donors) == len(FIELDS["donor_type"].allowed)
    assert sum(w.current for w in donors) == 1
    for w in s.whatifs:
        if w.current:
            # the unmodified row is the table's 2-year value
            assert w.relapse.estimate == s.table[1].relapse.estimate
            continue
        option = w.option.replace(" ", "_")
        if w.choice == "Donor type":
            variant = dict(record, donor_type=option)
            lo, hi = HLA_MISMATCH_RANGE[option]
            variant["hla_mismatches"] = min(max(record["hla_mismatches"], lo), hi)
            if option == "cord_blood":
                variant.update(graft_source="cord_blood", graft_manipulation="none")
            if (record["donor_type"] == "haploidentical") != (option == "haploidentical"):
                variant["kir_ligand_mismatch"] = "unknown"
        elif w.choice == "Conditioning intensity":
            variant = dict(record, conditioning_intensity=option)
        else:
            variant = dict(
                record,
                disease_status_at_hsct="CR",
                curie_score_at_hsct=0,
                bone_marrow_tumor_percent_at_hsct=0,
                mrd_at_hsct="negative",
            )
        t, problems = validate_record(variant)
        assert problems == [], (w, problems)
        # Batch vs single prediction of the same record: agreement to float round-off.
        assert math.isclose(
            w.relapse.estimate, float(risk_model.predict(t, [24]).relapse.estimate[0, 0]), abs_tol=1e-12
        )
    assert any(w.option.startswith("CR") for w in s.whatifs)


def test_invalid_record_lists_every_problem(risk_model):
    bad = _complete()
    bad.update({"lansky_score": 55, "donor_type": "cord_blood", "inrg_stage": "L2"})
    with pytest.raises(PatientReportError) as err:
        render_patient_report(risk_model, bad, "html", MODEL_INFO)
    fields = {p.field for p in err.value.problems}
    assert "lansky_score" in fields and "inrg_stage" in fields
    assert any("graft_source" in f for f in fields)
    assert isinstance(err.value, NbriskError) and "\n" not in str(err.value)


def test_unknown_format_is_a_user_error(risk_model):
    with pytest.raises(NbriskError, match="format"):
        render_patient_report(risk_model, _complete(), "docx", MODEL_INFO)


def test_one_row_dataframe_is_accepted(risk_model):
    import pandas as pd

    frame = pd.DataFrame([_complete()])
    a = build_patient_summary(risk_model, frame, MODEL_INFO, generated_at=FIXED_TIME)
    b = build_patient_summary(risk_model, _complete(), MODEL_INFO, generated_at=FIXED_TIME)
    assert a.table == b.table


def test_percentile_rank_against_stored_training_quantiles(risk_model):
    # Stored quantiles of a uniform(0, 1) distribution: the percentile rank of x is 100·x (linear interpolation
    # between stored quantiles is exact for a uniform CDF, so the tolerance is float round-off only).
    dist = {f"p{p}": p / 100 for p in (5, 25, 50, 75, 95)}
    summary = dataclasses.replace(risk_model.training_summary, predicted_2y_distribution={"relapse": dist, "trm": dist})
    pos = cohort_positions(summary, relapse_2y=0.6, trm_2y=0.3)
    assert pos[0].percentile == pytest.approx(60.0, abs=1e-9)
    assert pos[1].percentile == pytest.approx(30.0, abs=1e-9)
    # Outside the stored range the rank is clipped to the extreme stored level, never extrapolated.
    assert cohort_positions(summary, 0.99, 0.01)[0].percentile == pytest.approx(95.0)


def test_html_is_deterministic_and_self_contained(risk_model):
    a = render_patient_report(risk_model, _complete(), "html", MODEL_INFO, generated_at=FIXED_TIME)
    b = render_patient_report(risk_model, _complete(), "html", MODEL_INFO, generated_at=FIXED_TIME)
    assert a == b
    text = a.decode()
    # nothing fetched from elsewhere (the service must not leak a patient's report URL to third parties)
    assert not re.search(r"""(src|href)=["']https?://""", text)
    assert "<link" not in text


# --------------------------------------------------------------------------------------------------------------
# PDF (WeasyPrint): slower, so in the slow set


def _pdf_text(pdf: bytes) -> tuple[str, list]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(p.extract_text() for p in reader.pages), list(reader.pages)


@pytest.mark.slow
@pytest.mark.parametrize("which", PATIENT_KINDS)
def test_pdf_report_has_the_predictor_numbers_and_plots(risk_model, patients, which):
    record = patients[which]
    pdf = render_patient_report(risk_model, record, "pdf", MODEL_INFO, generated_at=FIXED_TIME)
    assert pdf.startswith(b"%PDF-")
    text, pages = _pdf_text(pdf)
    assert 1 <= len(pages) <= 2
    for p in pages:  # A4 portrait: 595.3 × 841.9 pt (± 1 pt for rounding)
        assert abs(float(p.mediabox.width) - 595.3) < 1 and abs(float(p.mediabox.height) - 841.9) < 1
    flat = re.sub(r"\s+", "", text)
    for number in _numbers_as_printed(_expected(risk_model, record)):
        assert re.sub(r"\s+", "", number) in flat, number
    # ... which are the numbers POST /v1/risk answers (the service's predictor, rounded to 6 decimals there)
    from nbrisk.serving.predictor import Predictor

    answer = Predictor.from_risk_model(risk_model).risk([record], list(HORIZONS))["results"][0]
    for name in ("relapse", "trm", "efs", "os"):
        for value in answer[name]["estimate"]:
            assert fmt_pct(value) in flat, (name, value)
    assert SYNTHETIC_LABEL.replace(" ", "") in flat
    # The plots are vector SVG drawn by WeasyPrint: their axis labels are real text in the PDF, and appear only
    # inside the figures (the stacked incidence, the patient-vs-cohort and the survival panel).
    assert text.count("Months after HSCT") == 3
    assert "Training cohort (observed)" in text  # the cohort's observed curves beside the patient's
