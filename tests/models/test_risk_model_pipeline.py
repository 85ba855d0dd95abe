"""The whole fitted pipeline (RiskModel): contract of predict / risk_groups / input_warnings / contributions.

Uses the shared session fixtures ``synthetic_cohort`` (n = 400) and ``risk_model`` (cause-specific Cox, 10
bootstrap refits for intervals) from tests/conftest.py.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from nbrisk.core import SYNTHETIC_LABEL, NbriskError, RiskCurves
from nbrisk.models.pyfunc import OUTPUT_COLUMNS
from nbrisk.models.risk_model import curves_to_frame, validate_for_prediction


def test_predict_returns_coherent_curves_with_intervals(risk_model, synthetic_cohort):
    rec = synthetic_cohort.records.iloc[:50]
    curves = risk_model.predict(rec, [12, 24, 36, 60])
    assert isinstance(curves, RiskCurves)
    assert curves.relapse.estimate.shape == (50, 4)
    curves.check()  # [0, 1], monotone, efs = 1 - relapse - trm, os >= efs, 1 - os >= trm, lower <= est <= upper
    for band in curves.bands().values():
        assert band.lower is not None and band.upper is not None
        # a real interval, not a zero-width fake one, for most patient-times
        assert np.mean(band.upper - band.lower > 1e-6) > 0.9


def test_horizons_are_sorted_and_unique(risk_model, synthetic_cohort):
    rec = synthetic_cohort.records.iloc[:3]
    a = risk_model.predict(rec, [60, 12, 24, 12])
    b = risk_model.predict(rec, [12, 24, 60])
    assert np.array_equal(a.horizons_months, [12, 24, 60])
    np.testing.assert_allclose(a.os.estimate, b.os.estimate, rtol=0, atol=1e-12)  # round-off only
    with pytest.raises(NbriskError):
        risk_model.predict(rec, [0, 12])


def test_risk_groups_are_training_tertiles(risk_model, synthetic_cohort):
    curves = risk_model.predict(synthetic_cohort.records, [24])
    groups = risk_model.risk_groups(curves)
    assert set(groups) == {"low", "intermediate", "high"}
    shares = pd.Series(groups).value_counts(normalize=True)
    # cut-offs are the tertiles of the same cohort's 2-year EFS: each group holds a third (± ties)
    assert shares.between(0.30, 0.37).all(), shares
    efs = curves.efs.estimate[:, 0]
    assert efs[groups == "high"].max() <= efs[groups == "intermediate"].min()
    assert efs[groups == "intermediate"].max() <= efs[groups == "low"].min()
    with pytest.raises(NbriskError, match="24-month"):
        risk_model.risk_groups(risk_model.predict(synthetic_cohort.records.iloc[:2], [12]))


def test_cutoffs_fixed_at_training_not_request_time(risk_model, synthetic_cohort):
    one = synthetic_cohort.records.iloc[[0]]
    g1 = risk_model.risk_groups(risk_model.predict(one, [24]))
    g_all = risk_model.risk_groups(risk_model.predict(synthetic_cohort.records, [24]))
    assert g1[0] == g_all[0]  # a patient's group does not depend on who else is in the request


def test_input_warnings_name_imputed_and_out_of_range_fields(risk_model, synthetic_cohort):
    rec = synthetic_cohort.records.iloc[:2].copy()
    rec.loc[rec.index[0], "ldh_at_diagnosis_u_l"] = np.nan
    hi = risk_model.training_summary["numeric_ranges"]["cd34_dose_1e6_per_kg"][1]
    rec.loc[rec.index[1], "cd34_dose_1e6_per_kg"] = min(60.0, hi + 10)
    warns = risk_model.input_warnings(rec)
    assert len(warns) == 2
    assert any("ldh_at_diagnosis_u_l" in w and "imputed" in w for w in warns[0])
    assert any("cd34_dose_1e6_per_kg" in w and "range" in w for w in warns[1])
    # never identifiers in the messages
    assert not any(str(rec["patient_id"].iloc[i]) in w for i in range(2) for w in warns[i])


def test_contributions_sum_to_the_linear_predictor(risk_model, synthetic_cohort):
    rec = synthetic_cohort.records.iloc[:5]
    contrib = risk_model.contributions(rec)
    assert len(contrib) == 5 and contrib[0]["available"]
    cr = risk_model.illness_death.cr_model_
    lp = cr.predict_linear_predictor(risk_model.transform(rec))  # (2, n) log-HR vs the average patient
    for i, row in enumerate(contrib):
        for k, cause in enumerate(("relapse", "trm")):
            fields = [f for f, _ in row[cause]]
            assert len(fields) == len(set(fields))  # aggregated per record field
            # exact decomposition up to float round-off
            assert sum(v for _, v in row[cause]) == pytest.approx(lp[k, i], abs=1e-9)
            vals = [abs(v) for _, v in row[cause]]
            assert vals == sorted(vals, reverse=True)
    known = set(synthetic_cohort.records.columns)
    assert all(f in known or "+" in f for f, _ in contrib[0]["relapse"])


def test_predict_frame_has_contract_columns(risk_model, synthetic_cohort):
    rec = synthetic_cohort.records.iloc[:4]
    frame = risk_model.predict_frame(rec, [12, 36])  # no 24 requested: groups still from 2-year EFS
    assert tuple(frame.columns) == OUTPUT_COLUMNS
    assert len(frame) == 8
    assert frame["horizon_months"].tolist() == [12.0, 36.0] * 4
    curves = risk_model.predict(rec, [24])
    expected = np.repeat(risk_model.risk_groups(curves), 2)
    assert frame["risk_group"].tolist() == list(expected)
    assert (frame["efs"] <= frame["os"] + 1e-12).all()


def test_curves_to_frame_without_intervals_gives_nan():
    from nbrisk.core import Band

    b = Band(np.array([[0.1, 0.2]]))
    curves = RiskCurves(np.array([12.0, 24.0]), b, b, Band(np.array([[0.8, 0.6]])), Band(np.array([[0.9, 0.7]])))
    frame = curves_to_frame(["P1"], curves, ["low"])
    assert frame["relapse_lower"].isna().all() and frame["os_upper"].isna().all()


def test_summary_is_aggregate_labelled_and_pickle_round_trips(risk_model, synthetic_cohort):
    s = risk_model.training_summary
    assert s["n"] == 400 and s["synthetic"] and s["label"] == SYNTHETIC_LABEL
    assert sum(s["events"].values()) == 400
    assert set(s["predicted_2y_distribution"]) == {"relapse", "trm", "efs", "os"}
    blob = pickle.dumps(risk_model)
    ids = synthetic_cohort.records["patient_id"].astype(str)
    assert not any(pid.encode() in blob for pid in ids.iloc[:20])  # no identifiers stored in the artefact
    again = pickle.loads(blob)
    rec = synthetic_cohort.records.iloc[:3]
    # same numbers up to float round-off (BLAS/einsum summation order may differ with memory alignment: ~1e-16)
    np.testing.assert_allclose(
        again.predict(rec, [24]).os.estimate, risk_model.predict(rec, [24]).os.estimate, rtol=0, atol=1e-12
    )


def test_validate_for_prediction_ignores_outcomes_and_rejects_bad_rows(synthetic_cohort):
    from nbrisk.features.record import CohortValidationError

    typed = validate_for_prediction(synthetic_cohort.raw.iloc[:3])
    assert "date_hsct" not in typed.columns
    bad = synthetic_cohort.raw.iloc[:2].copy()
    bad.loc[bad.index[0], "inrg_stage"] = "L2"
    with pytest.raises(CohortValidationError):
        validate_for_prediction(bad)


def test_tree_model_without_bootstrap_says_no_interval_and_no_contributions(synthetic_cohort):
    from nbrisk.models.boosting import CauseSpecificBoosting
    from nbrisk.models.risk_model import fit_risk_model

    rm = fit_risk_model(
        synthetic_cohort.records,
        synthetic_cohort.outcomes,
        CauseSpecificBoosting(n_estimators=20, random_state=0),
        model_name="boosting",
        synthetic=True,
        n_interval_bootstrap=0,
        seed=0,
    )
    rec = synthetic_cohort.records.iloc[:3]
    curves = rm.predict(rec, [12, 24])
    curves.check()
    assert all(b.lower is None and b.upper is None for b in curves.bands().values())  # never a fake interval
    assert not rm.supports_intervals and rm.training_summary["interval_method"] == "none"
    assert not rm.contributions_available
    assert rm.contributions(rec) == [{"relapse": [], "trm": [], "available": False}] * 3
    frame = rm.predict_frame(rec, [12])
    assert frame["relapse_lower"].isna().all() and frame["relapse"].notna().all()
