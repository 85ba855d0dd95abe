"""The report's building blocks: SVG plots, metric-key parsing, warnings, the service's call path, the model report.

The model report is built here from hand-gathered sources shaped like an MLflow training run (metric keys and
validation tables exactly as the training jobs log them, computed with ``nbrisk.training.metrics`` on the
fixture model's own cohort) so that it is tested without a tracking server; the slow CLI test covers the real run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from nbrisk.core import SYNTHETIC_LABEL, months_to_days
from nbrisk.features.record import example_record, validate_record, validate_records
from nbrisk.models.risk_model import typed_metrics
from nbrisk.reports import plots
from nbrisk.reports.render import model_html, patient_html
from nbrisk.reports.summary import build_patient_summary

SVG_NS = "{http://www.w3.org/2000/svg}"


def _parse_svg(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    assert "viewBox" in root.attrib and "width" not in root.attrib  # scales with its column
    return root


def _texts(root: ET.Element) -> str:
    return " ".join("".join(t.itertext()) for t in root.iter(f"{SVG_NS}text"))


def test_stacked_incidence_svg_is_valid_text_searchable_and_deterministic():
    months = np.arange(0.0, 61.0)
    r = 0.6 * (1 - np.exp(-months / 12))
    t = 0.1 * (1 - np.exp(-months / 4))
    args = (months, (r, r * 0.8, r * 1.1), (t, t * 0.7, t * 1.3))
    a = plots.stacked_incidence_svg(*args)
    assert a == plots.stacked_incidence_svg(*args)  # same input, same bytes (no dates, fixed ids)
    text = _texts(_parse_svg(a))
    for label in (plots.AXIS_LABEL_MONTHS, "Relapse / progression", "Transplant-related death", "Alive, event-free"):
        assert label in text


def test_plots_without_intervals_draw_no_band():
    months = np.arange(0.0, 61.0)
    est = np.linspace(0, 0.5, months.size)
    with_band = plots.survival_svg(
        months, {"os": (1 - est, 1 - est * 1.2, 1 - est * 0.8), "efs": (1 - est, None, None)}
    )
    without = plots.survival_svg(months, {"os": (1 - est, None, None), "efs": (1 - est, None, None)})
    # a band is one extra filled polygon (a path) per curve that has an interval
    assert with_band.count("<path") > without.count("<path")
    assert "95% interval" in with_band and "(no interval)" in without


def test_model_report_plots_parse():
    x = np.linspace(0.05, 0.8, 10)
    _parse_svg(
        plots.calibration_svg(
            [("Relapse", x, x * 0.9, x * 0.7, x * 1.1), ("TRM", x / 4, x / 5, None, None)], "Calibration"
        )
    )
    _parse_svg(plots.decision_curve_svg(x, [("Model", 0.3 - x / 3)], 0.25 - x / 2, "Net benefit"))
    _parse_svg(plots.cohort_position_svg([("Relapse", 0.5, np.array([5, 50, 95.0]), np.array([0.2, 0.5, 0.8]))]))


def test_flat_metric_keys_as_the_training_jobs_name_them():
    flat = {
        "relapse_cindex_24m": 0.66,
        "relapse_cindex_24m_lower": 0.61,
        "relapse_cindex_24m_upper": 0.70,
        "trm.c_index.12m": 0.6,  # not a name the training jobs write: ignored, never guessed
        "trm.c_index.12m.lower": 0.5,
        "trm.c_index.12m.upper": 0.7,
        "relapse_cal_slope_24m": 0.9,
        "relapse_ibs": 0.2,
        "apparent_relapse_auc_24m": 0.9,
        "seconds_cv": 3.0,
        "trm_ici_24m": float("nan"),
    }
    got = {(m.outcome, m.name, m.horizon_months): (m.estimate, m.lower, m.upper) for m in typed_metrics(flat)}
    assert got == {
        ("relapse", "c_index", 24.0): (0.66, 0.61, 0.70),
        ("relapse", "calibration_slope", 24.0): (0.9, None, None),
        ("relapse", "ibs", None): (0.2, None, None),
    }


def test_service_call_path_with_a_typed_row_gives_the_same_report(risk_model):
    # the service's predictor validates the request first and passes typed.iloc[[0]]
    rec = example_record(with_outcomes=False)
    import pandas as pd

    typed, problems = validate_records(pd.DataFrame([rec]), require_outcomes=False, require_center=False, first_row=0)
    assert not problems
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    a = build_patient_summary(risk_model, typed.iloc[[0]], {"name": "nbrisk", "version": "1"}, generated_at=when)
    b = build_patient_summary(risk_model, rec, {"name": "nbrisk", "version": "1"}, generated_at=when)
    assert a.table == b.table and a.inputs_used == b.inputs_used and a.whatifs == b.whatifs


def test_out_of_range_inputs_are_warned(risk_model):
    _, hi = risk_model.training_summary["numeric_ranges"]["hsct_year"]
    rec = example_record(with_outcomes=False)
    rec["hsct_year"] = int(hi) + 5
    assert validate_record(rec)[1] == []
    s = build_patient_summary(risk_model, rec, {})
    assert any(w.startswith("Year of HSCT") and "range" in w for w in s.warnings), s.warnings  # label, not name
    html = patient_html(s)
    assert "Warnings about this patient" in html


def test_small_training_cohort_is_warned(risk_model):
    import copy

    small = copy.copy(risk_model)
    small.training_summary = dataclasses.replace(
        risk_model.training_summary, n=120, events={"relapse": 70, "trm": 12, "censored": 38}
    )
    s = build_patient_summary(small, example_record(with_outcomes=False), {})
    assert any("only 120 patients" in w for w in s.warnings)
    assert any("Only 12 transplant-related deaths" in w for w in s.warnings)


def test_real_training_data_has_no_synthetic_banner(risk_model):
    import copy

    real = copy.copy(risk_model)
    real.training_summary = dataclasses.replace(risk_model.training_summary, synthetic=False)
    html = patient_html(
        build_patient_summary(real, example_record(with_outcomes=False), {"synthetic_training_data": False})
    )
    assert SYNTHETIC_LABEL not in html
    html = patient_html(build_patient_summary(risk_model, example_record(with_outcomes=False), {}))
    assert html.count(SYNTHETIC_LABEL) >= 2  # banner and limitations


@pytest.fixture(scope="module")
def model_sources(risk_model, synthetic_cohort):
    """Sources shaped like a training run: pooled metrics and validation tables as the jobs log them."""
    from nbrisk.reports.sources import ModelSources, ResolvedModel
    from nbrisk.training import metrics as M

    y = synthetic_cohort.outcomes[["event", "time"]]
    curves = risk_model.predict(synthetic_cohort.records, [24])
    tables = {"calibration": {}, "net_benefit": {}}
    run_metrics = {}
    for cause, band, code in (("relapse", curves.relapse, 1), ("trm", curves.trm, 2)):
        pred = band.estimate[:, 0]
        tau = float(months_to_days(24))
        cal = M.calibration_table(*M.target(y), pred, tau, cause=code)
        nb = M.net_benefit(*M.target(y), pred, tau, cause=code, thresholds=np.round(np.arange(0.05, 0.81, 0.05), 2))
        tables["calibration"][f"{cause}_calibration_24m"] = {k: cal[k].tolist() for k in cal.columns}
        tables["net_benefit"][f"{cause}_net_benefit_24m"] = {k: nb[k].tolist() for k in nb.columns}
        run_metrics.update(
            {
                f"{cause}_cindex_24m": 0.65,
                f"{cause}_cindex_24m_lower": 0.6,
                f"{cause}_cindex_24m_upper": 0.7,
                f"{cause}_ici_24m": 0.05,
            }
        )
    siblings = [
        {"name": "cox", "family": "CauseSpecificCox", "metrics": run_metrics, "this": True},
        {
            "name": "aalen_johansen",
            "family": "AalenJohansen",
            "metrics": {"relapse_cindex_24m": 0.5, "trm_cindex_24m": 0.5},
            "this": False,
        },
    ]
    return ModelSources(
        ResolvedModel("models:/nbrisk/3", "nbrisk", "3", None),
        risk_model,
        run={"run_id": "abc123", "metrics": run_metrics, "fingerprint": {"source": "synthetic"}},
        tables=tables,
        siblings=siblings,
        parent_params={
            "config.validation.n_splits": "5",
            "config.validation.n_repeats": "2",
            "config.validation.n_bootstrap": "200",
            "config.validation.leave_center_out": "True",
        },
        parent_tags={"code.nbrisk_version": "0.1.0", "code.git_sha": "0123456789abcdef", "code.git_dirty": "false"},
        aliases=["champion"],
    )


def test_model_report_fills_tripod_items_from_the_run(model_sources):
    from nbrisk.reports.model_summary import build_model_summary
    from nbrisk.reports.tripod import CHECKLIST

    m = build_model_summary(model_sources)
    items = {f.item: f.text for f in m.filled}
    s = model_sources.risk_model.training_summary
    assert f"n = {s['n']}" in items["20b"]
    assert f"{s['events']['relapse']} relapses" in items["20b"]
    assert "5-fold cross-validation repeated 2 times" in items["12a"]
    assert "leave-one-center-out" in items["12a"]
    assert "0.650 (95% CI 0.600–0.700)" in items["23a"]
    assert "version 3 (run abc123); code nbrisk 0.1.0, git 01234567." in items["22"]
    assert [p.cause for p in m.calibration] == ["relapse", "trm"]
    assert [p.cause for p in m.decision] == ["relapse", "trm"]
    assert m.comparison[0].name == "cox"  # best first; the null model below
    html = model_html(m)
    assert html.count("<svg") == 3  # one calibration panel, two decision curves
    assert SYNTHETIC_LABEL in html
    for c in CHECKLIST:  # every item of the checklist, numbered and titled as in the table kept with its source
        assert f"<td>{c.item}</td><td>{c.topic}</td>" in html


def test_report_numbers_equal_the_v1_risk_answer(risk_model):
    """The report's table is what POST /v1/risk answers for the same patient (the service's Predictor, no HTTP)."""
    from nbrisk.serving.predictor import ANSWER_DECIMALS, Predictor

    rec = example_record(with_outcomes=False)
    predictor = Predictor.from_risk_model(risk_model, version="1")
    answer = predictor.risk([rec], [12, 24, 36, 60])["results"][0]
    s = build_patient_summary(risk_model, rec, predictor.model_info)
    for name in ("relapse", "trm", "efs", "os"):
        for j, row in enumerate(s.table):
            iv = getattr(row, name)
            # the API rounds to ANSWER_DECIMALS; the report keeps full precision: equal to half a unit of that place
            tol = 0.5 * 10.0**-ANSWER_DECIMALS + 1e-15
            assert abs(iv.estimate - answer[name]["estimate"][j]) <= tol
            if iv.lower is not None:
                assert abs(iv.lower - answer[name]["lower"][j]) <= tol
                assert abs(iv.upper - answer[name]["upper"][j]) <= tol
    assert s.risk_group == answer["risk_group"]
    # and the service's /v1/report goes through this renderer with its validated row
    html = predictor.report(rec, "html").decode()
    for row in s.table:
        assert f"{100 * row.relapse.estimate:.1f}%" in html


class _RefusesOneCategory:
    """The fixture model, except that its feature pipeline 'never saw' non-myeloablative conditioning (as a model
    trained on a cohort without it would refuse it); everything else is delegated to the real RiskModel."""

    def __init__(self, model):
        self._model = model
        self.training_summary = dataclasses.replace(
            model.training_summary, category_counts={}
        )  # no counts: exercise the fallback

    def __getattr__(self, name):
        return getattr(self._model, name)

    def predict(self, records, horizons_months):
        from nbrisk.features.pipeline import UnseenCategoryError

        pos = [i for i, v in enumerate(records["conditioning_intensity"]) if v == "non_myeloablative"]
        if pos:
            raise UnseenCategoryError([("conditioning_intensity", "non_myeloablative", pos)])
        return self._model.predict(records, horizons_months)


def test_whatif_option_the_model_cannot_score_is_dropped_with_a_note(risk_model):
    rec = example_record(with_outcomes=False)
    assert rec["conditioning_intensity"] != "non_myeloablative"
    s = build_patient_summary(_RefusesOneCategory(risk_model), rec, {})
    options = {(w.choice, w.option) for w in s.whatifs}
    assert ("Conditioning intensity", "non myeloablative") not in options
    assert ("Conditioning intensity", "myeloablative") in options  # the rest of the batch is still shown
    assert any("non myeloablative not shown" in n for n in s.whatif_notes)
    ref = build_patient_summary(risk_model, rec, {})
    same = {(w.choice, w.option): w for w in ref.whatifs}
    for w in s.whatifs:  # the kept rows are the same numbers as without the refusal (to round-off: the batch differs)
        a, b = w.relapse, same[(w.choice, w.option)].relapse
        assert (a.estimate, a.lower, a.upper) == pytest.approx((b.estimate, b.lower, b.upper), abs=1e-12)


def test_whatif_category_absent_from_training_counts_is_not_scored(risk_model):
    import copy

    m = copy.copy(risk_model)
    counts = {k: dict(v) for k, v in risk_model.training_summary["category_counts"].items()}
    counts["donor_type"].pop("cord_blood", None)
    m.training_summary = dataclasses.replace(risk_model.training_summary, category_counts=counts)
    s = build_patient_summary(m, example_record(with_outcomes=False), {})
    assert "cord blood" not in {w.option for w in s.whatifs if w.choice == "Donor type"}
    assert any("no training patient had Donor type → cord blood" in n for n in s.whatif_notes)


def test_whatif_variants_are_valid_for_every_training_patient(synthetic_cohort):
    """Every what-if copy of every synthetic patient (all donor types, graft sources, disease states) must pass the
    record contract: the report never shows a combination the contract forbids."""
    import pandas as pd

    from nbrisk.features.record import OUTCOME_FIELDS
    from nbrisk.reports.record import json_value
    from nbrisk.reports.whatif import _whatif_variants

    recs = synthetic_cohort.records.drop(columns=[c for c in OUTCOME_FIELDS if c in synthetic_cohort.records])
    variants, labels = [], []
    for _, row in recs.iterrows():
        base = {k: json_value(v) for k, v in row.to_dict().items()}
        for choice, option, _current, ch in _whatif_variants(base):
            if ch:
                variants.append({**base, **ch, "patient_id": f"V{len(variants)}"})
                labels.append((base["donor_type"], choice, option))
    # one vectorised validation of all variants (row = index in the list)
    _, problems = validate_records(pd.DataFrame(variants), require_outcomes=False, require_center=False, first_row=0)
    assert problems == [], [(labels[p.row], p.field, p.rule) for p in problems[:5]]
    assert len({d for d, _, _ in labels}) >= 5  # (almost) every donor type was a starting point
