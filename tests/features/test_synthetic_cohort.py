"""Tests of the synthetic cohort generator (features/synthetic.py): contract, determinism, missingness, truth.

Statistical checks use explicit seeds and tolerances derived from the sampling error at the n used (each tolerance is
justified where it is asserted). The n = 20,000 calibration checks live in test_synthetic_calibration.py (slow).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sksurv.nonparametric import cumulative_incidence_competing_risks, kaplan_meier_estimator

from nbrisk.core import DAYS_PER_MONTH, Cause, NbriskError, RiskCurves, months_to_days
from nbrisk.core import Band as _Band
from nbrisk.features import synthetic as syn
from nbrisk.features.outcomes import derive_outcomes
from nbrisk.features.record import FIELDS, validate_records
from nbrisk.features.synthetic import (
    PRESETS,
    TARGETS,
    make_synthetic_cohort,
    true_linear_predictors,
    true_risk,
)

HORIZONS = np.array([12.0, 24.0, 36.0, 60.0])
OPTIONAL_NUMBERS = (
    "ldh_at_diagnosis_u_l",
    "curie_score_at_hsct",
    "bone_marrow_tumor_percent_at_hsct",
    "hct_ci",
    "cd34_dose_1e6_per_kg",
    "donor_age_years",
)


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return make_synthetic_cohort(4000, seed=20261129, preset="base")


@pytest.fixture(scope="module")
def truth(cohort) -> dict[str, np.ndarray]:
    return true_risk(cohort, HORIZONS, "base")


def _contract_problems(df: pd.DataFrame) -> dict[str, int]:
    """Count violations of the consistency rules (docs/patient-record.md), written apart from features/record.py."""
    age_y = (df["age_at_diagnosis_months"] + df["months_diagnosis_to_hsct"]) / 12
    hla = df["hla_mismatches"]
    dt = df["donor_type"]
    ranges = {
        "matched_sibling": (0, 0),
        "matched_related": (0, 0),
        "matched_unrelated": (0, 0),
        "mismatched_unrelated": (1, 2),
        "haploidentical": (2, 5),
        "cord_blood": (0, 3),
    }
    lo = dt.map(lambda d: ranges[d][0])
    hi = dt.map(lambda d: ranges[d][1])
    cr = df["disease_status_at_hsct"] == "CR"
    curie = df["curie_score_at_hsct"].astype("Float64")
    marrow = df["bone_marrow_tumor_percent_at_hsct"]
    d = {c: pd.to_datetime(df[c]) for c in ("date_hsct", "date_relapse", "date_death", "date_last_followup")}
    dead = d["date_death"].notna()
    return {
        "age at HSCT 0.5–25 y": int(((age_y < 0.5) | (age_y > 25)).sum()),
        "hla range by donor": int(((hla < lo) | (hla > hi)).sum()),
        "cord donor iff cord graft": int(((dt == "cord_blood") != (df["graft_source"] == "cord_blood")).sum()),
        "upfront requires prior_auto ≤ 1": int(
            ((df["disease_phase"] == "upfront_consolidation") & (df["prior_auto_hsct"] > 1)).sum()
        ),
        "CR: curie missing or 0": int((cr & curie.notna() & (curie != 0)).fillna(False).sum()),
        "CR: marrow missing or 0": int((cr & marrow.notna() & (marrow != 0)).sum()),
        "lansky multiple of 10": int((df["lansky_score"] % 10 != 0).sum()),
        "year of date_hsct": int((d["date_hsct"].dt.year != df["hsct_year"]).sum()),
        "relapse after hsct": int((d["date_relapse"] <= d["date_hsct"]).sum()),
        "death after relapse": int((d["date_death"] < d["date_relapse"]).sum()),
        "last fu ≥ every date": int(sum((d["date_last_followup"] < d[c]).sum() for c in d)),
        "last fu == death date": int((dead & (d["date_last_followup"] != d["date_death"])).sum()),
        "cause iff death": int((df["cause_of_death"].notna() != dead).sum()),
        "relapse cause needs relapse": int(
            ((df["cause_of_death"] == "relapse_progression") & d["date_relapse"].isna()).sum()
        ),
    }


def _wolbers_cindex(event: np.ndarray, time_: np.ndarray, risk: np.ndarray, tau: float, cause: int) -> float:
    """Wolbers et al. 2009 C-index, straight from the definition in docs/statistics.md (O(cases × n), vectorised).

    Pairs (i, j): T_i ≤ τ, δ_i = k, and T_j > T_i or δ_j ∉ {0, k}; concordant if risk_i > risk_j, ties ½.
    """
    num = den = 0.0
    competing = (event != 0) & (event != cause)
    for i in np.flatnonzero((time_ <= tau) & (event == cause)):
        comparable = (time_ > time_[i]) | competing
        den += comparable.sum()
        num += (risk[i] > risk[comparable]).sum() + 0.5 * (risk[i] == risk[comparable]).sum()
    return num / den


# ------------------------------------------------------------------------------------------------- the contract
def test_columns_ids_and_centers(cohort):
    # Exactly the contract's fields, in the contract's order (features/record.py FIELDS, docs/patient-record.md).
    assert list(cohort.columns) == list(FIELDS)
    assert cohort["patient_id"].iloc[0] == "SYN-000001"
    assert cohort["patient_id"].iloc[-1] == "SYN-004000"
    assert cohort["patient_id"].is_unique
    assert cohort["center_id"].nunique() >= 8
    assert set(cohort["center_id"]) <= {f"C{i:02d}" for i in range(1, 11)}
    assert (cohort["inrg_stage"] == "M").all()
    assert cohort.attrs["label"] == syn.SYNTHETIC_LABEL


def test_every_record_satisfies_the_consistency_rules(cohort):
    assert _contract_problems(cohort) == dict.fromkeys(_contract_problems(cohort.head(0)), 0)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_record_passes_the_validator(preset):
    df = make_synthetic_cohort(3000, seed=3, preset=preset)
    _, problems = validate_records(df, require_outcomes=True, require_center=True)
    assert problems == []
    assert all(v == 0 for v in _contract_problems(df).values())


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 120), preset=st.sampled_from(PRESETS))
def test_validator_accepts_any_seed_and_preset(seed, n, preset):
    df = make_synthetic_cohort(n, seed=seed, preset=preset)
    # Through CSV, as a user would read the file back: every value must survive the round trip.
    raw = pd.read_csv(io.StringIO(df.to_csv(index=False)), dtype=str, keep_default_na=False)
    for frame in (df, raw):
        _, problems = validate_records(frame, require_outcomes=True, require_center=True)
        assert problems == []


def test_bad_arguments_raise_nbrisk_errors():
    with pytest.raises(NbriskError, match="preset"):
        make_synthetic_cohort(10, seed=0, preset="modern")
    with pytest.raises(NbriskError, match="positive integer"):
        make_synthetic_cohort(0, seed=0)
    with pytest.raises(NbriskError, match="seed"):
        make_synthetic_cohort(10, seed=-1)
    with pytest.raises(NbriskError, match="preset"):
        true_risk(make_synthetic_cohort(5, seed=0), [12], preset="modern")
    with pytest.raises(NbriskError, match="lack the fields"):
        true_risk(make_synthetic_cohort(5, seed=0).drop(columns="hct_ci"), [12])
    with pytest.raises(NbriskError, match="horizons"):
        true_risk(make_synthetic_cohort(5, seed=0), [-1.0])


# ------------------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("preset", PRESETS)
def test_same_seed_gives_byte_identical_csv(preset):
    a = make_synthetic_cohort(300, seed=7, preset=preset).to_csv(index=False).encode()
    b = make_synthetic_cohort(300, seed=7, preset=preset).to_csv(index=False).encode()
    c = make_synthetic_cohort(300, seed=8, preset=preset).to_csv(index=False).encode()
    assert a == b
    assert a != c


def test_same_seed_gives_equal_frames():
    a = make_synthetic_cohort(50, seed=1)
    b = make_synthetic_cohort(50, seed=1)
    pd.testing.assert_frame_equal(a, b)


# ------------------------------------------------------------------------------------------------- covariates
def test_missingness_is_10_to_30_percent_and_informative(cohort):
    miss = cohort[list(OPTIONAL_NUMBERS)].isna().mean()
    # Rates are 13–22% by design; at n = 4000 the binomial SE is ≤ 0.7 pp, so [10%, 30%] cannot fail by chance.
    assert ((miss >= 0.10) & (miss <= 0.30)).all(), miss.to_dict()
    required = [c for c, f in FIELDS.items() if not f.nullable and c in cohort.columns]
    assert not cohort[required].isna().any().any()
    # Not MCAR: the Curie score is missing more often in CR/VGPR (designed odds ratio e ≈ 2.7; the difference in
    # rates is ≈ 14 pp with SE ≈ 1.3 pp), and HCT-CI more often with Lansky < 90 (≈ 8 pp, SE ≈ 1.5 pp).
    good = cohort["disease_status_at_hsct"].isin(["CR", "VGPR"])
    curie_na = cohort["curie_score_at_hsct"].isna()
    assert curie_na[good].mean() - curie_na[~good].mean() > 0.07
    low = cohort["lansky_score"] < 90
    hct_na = cohort["hct_ci"].isna()
    assert hct_na[low].mean() - hct_na[~low].mean() > 0.03
    # Cord blood grafts more often lack a donor age (designed ≈ 60% vs ≈ 11%).
    cord = cohort["donor_type"] == "cord_blood"
    assert cohort["donor_age_years"][cord].isna().mean() > 0.4 > cohort["donor_age_years"][~cord].isna().mean()


def test_covariate_dependence_follows_the_spec(cohort):
    prior = cohort["prior_auto_hsct"] >= 1
    med = cohort.groupby(prior)["months_diagnosis_to_hsct"].median()
    # Spec: median ≈ 27 months with a prior auto-HSCT, ≈ 9 without (n ≈ 1200 / 2800: medians known to ± ~1 month).
    assert 22 <= med[True] <= 32 and 6 <= med[False] <= 12
    assert 0.62 <= prior.mean() <= 0.78
    # Status ↔ Curie ↔ marrow: PD has higher Curie scores and marrow involvement than PR.
    by = cohort.groupby("disease_status_at_hsct")
    assert by["curie_score_at_hsct"].mean()["PD"] > by["curie_score_at_hsct"].mean()["PR"] + 3
    assert by["bone_marrow_tumor_percent_at_hsct"].mean()["PD"] > by["bone_marrow_tumor_percent_at_hsct"].mean()["PR"]
    # Donor mix and its trend over hsct_year: haploidentical grafts become more common later.
    mix = cohort["donor_type"].value_counts(normalize=True)
    assert 0.25 <= mix["haploidentical"] <= 0.45 and 0.15 <= mix["cord_blood"] <= 0.35
    late = cohort["hsct_year"] >= 2016
    haplo = cohort["donor_type"] == "haploidentical"
    assert haplo[late].mean() > haplo[~late].mean() + 0.1
    mycn = (cohort["mycn_status"] == "amplified").mean()
    assert 0.25 <= mycn <= 0.37
    age_hsct = (cohort["age_at_diagnosis_months"] + cohort["months_diagnosis_to_hsct"]) / 12
    assert 4.5 <= age_hsct.median() <= 7.5
    assert 0.15 <= (cohort["lansky_score"] < 90).mean() <= 0.35
    assert 0.12 <= (cohort["hct_ci"] >= 3).mean() <= 0.28


# ------------------------------------------------------------------------------------------------- the truth
def test_true_risk_shapes_and_invariants(cohort, truth):
    n = len(cohort)
    for k in ("relapse", "trm", "efs", "os"):
        assert truth[k].shape == (n, len(HORIZONS))
        assert np.all((truth[k] >= 0) & (truth[k] <= 1))
    np.testing.assert_allclose(truth["relapse"] + truth["trm"] + truth["efs"], 1.0, atol=1e-12)
    curves = RiskCurves(HORIZONS, *(_Band(truth[k]) for k in ("relapse", "trm", "efs", "os")))
    curves.check()  # monotone in time, OS ≥ EFS, 1 − OS ≥ TRM
    assert np.all(truth["os"] > truth["efs"])  # deaths after relapse take time: strictly more alive than event-free
    at0 = true_risk(cohort.head(5), [0.0, 12.0, 6.0])
    np.testing.assert_array_equal(at0["relapse"][:, 0], 0.0)
    np.testing.assert_array_equal(at0["os"][:, 0], 1.0)
    # Unsorted horizons give the same values as sorted ones.
    np.testing.assert_allclose(at0["relapse"][:, 1], truth["relapse"][:5, 0], rtol=1e-12)


def test_true_risk_accepts_raw_csv_and_validated_records(cohort, truth):
    raw = pd.read_csv(io.StringIO(cohort.head(300).to_csv(index=False)), dtype=str, keep_default_na=False)
    typed, problems = validate_records(raw, require_outcomes=True, require_center=True)
    assert problems == []
    for frame in (raw, typed):
        other = true_risk(frame, HORIZONS)
        for k in truth:
            np.testing.assert_array_equal(other[k], truth[k][:300])
    # Prediction requests may lack center_id: no center effect, so the truth changes but stays valid.
    no_center = true_risk(cohort.head(300).drop(columns="center_id"), HORIZONS)
    assert not np.allclose(no_center["relapse"], truth["relapse"][:300])


def test_os_quadrature_error_is_negligible(cohort, monkeypatch):
    coarse = true_risk(cohort.head(400), HORIZONS)["os"]
    monkeypatch.setattr(syn, "OS_GRID_STEP_MONTHS", 0.05)
    fine = true_risk(cohort.head(400), HORIZONS)["os"]
    # Midpoint rule in the relapse time: error O(step²); documented below 0.1 percentage point (measured 0.055).
    assert np.max(np.abs(coarse - fine)) < 1e-3


def test_outcome_simulation_matches_the_integrated_truth():
    """Known truth for one covariate profile: simulate 8,000 copies of a record with the generator's outcome code
    (inverse cumulative hazard) and compare Aalen–Johansen / Kaplan–Meier with the closed-form truth."""
    rec = make_synthetic_cohort(1, seed=5).iloc[[0] * 8000].reset_index(drop=True)
    rec["disease_status_at_hsct"] = "PR"  # a profile with sizeable relapse and TRM
    rec["hsct_year"] = 2010  # entry long before the study close, so that 5-year follow-up exists for everyone
    rng = np.random.Generator(np.random.PCG64(99))
    out = pd.DataFrame(syn._outcomes(rec, rng, "base"))
    y = derive_outcomes(pd.concat([rec.drop(columns=list(out.columns)), out], axis=1))
    x, cif = cumulative_incidence_competing_risks(y["event"].to_numpy(), y["time"].to_numpy())
    idx = np.searchsorted(x, months_to_days(HORIZONS), side="right") - 1
    tr = true_risk(rec.head(1), HORIZONS)
    # AJ / KM SE ≤ sqrt(.25/n_eff) ≈ 0.6 pp at n = 8,000 with ~10% censored before 5 years; 2.5 pp > 4 SE (event
    # dates are rounded up to whole days: < 0.05 pp).
    np.testing.assert_allclose(cif[int(Cause.RELAPSE)][idx], tr["relapse"][0], atol=0.025)
    np.testing.assert_allclose(cif[int(Cause.TRM)][idx], tr["trm"][0], atol=0.025)
    t_os, s_os = kaplan_meier_estimator(y["os_event"].astype(bool).to_numpy(), y["os_time"].to_numpy())
    os_km = s_os[np.searchsorted(t_os, months_to_days(HORIZONS), side="right") - 1]
    np.testing.assert_allclose(os_km, tr["os"][0], atol=0.025)


def test_aalen_johansen_of_a_cohort_agrees_with_the_mean_truth(cohort, truth):
    y = derive_outcomes(cohort)
    x, cif = cumulative_incidence_competing_risks(y["event"].to_numpy(), y["time"].to_numpy())
    idx = np.searchsorted(x, months_to_days(HORIZONS), side="right") - 1
    # n = 4000 with ~17% censored (staggered entry): AJ SE ≈ sqrt(p(1−p)/n) inflated ≈ 1.2× ≤ 1.0 pp; the mean of the
    # true CIFs varies by ≤ 0.2 pp around the AJ target. 4 pp ≈ 4 SE: cannot fail by chance, catches a real bias.
    np.testing.assert_allclose(cif[int(Cause.RELAPSE)][idx], truth["relapse"].mean(0), atol=0.04)
    np.testing.assert_allclose(cif[int(Cause.TRM)][idx], truth["trm"].mean(0), atol=0.04)
    t_os, s_os = kaplan_meier_estimator(y["os_event"].astype(bool).to_numpy(), y["os_time"].to_numpy())
    os_km = s_os[np.searchsorted(t_os, months_to_days(HORIZONS), side="right") - 1]
    np.testing.assert_allclose(os_km, truth["os"].mean(0), atol=0.04)


def test_mean_truth_hits_the_base_targets(truth):
    # The targets are marginal in the absence of censoring = the mean true CIF. Calibration error ≤ 1 pp (n = 8000
    # calibration sample); between-patient SD of the true CIFs ≤ 0.3, so the SE of the mean at n = 4000 is ≤ 0.5 pp.
    # ±3 pp ≈ calibration + 4 SE (docs/synthetic-cohort.md allows ±5 pp at n = 20,000).
    for k in ("relapse", "trm", "efs", "os"):
        np.testing.assert_allclose(truth[k].mean(0) * 100, TARGETS["base"][k], atol=3.0, err_msg=k)


def test_true_relapse_discrimination_is_realistic(cohort, truth):
    y = derive_outcomes(cohort)
    tau = float(months_to_days(24))
    c_rel = _wolbers_cindex(y["event"].to_numpy(), y["time"].to_numpy(), truth["relapse"][:, 1], tau, 1)
    c_trm = _wolbers_cindex(y["event"].to_numpy(), y["time"].to_numpy(), truth["trm"][:, 1], tau, 2)
    # Spec: C of the true 2-year relapse CIF in 0.60–0.80 (measured ≈ 0.73; SE ≈ 0.01 at n = 4000).
    assert 0.60 <= c_rel <= 0.80
    assert 0.60 <= c_trm <= 0.85


def test_relapse_is_front_loaded_and_trm_early(cohort):
    tr = true_risk(cohort, [6.0, 12.0, 24.0, 60.0])
    pd_ = (cohort["disease_status_at_hsct"] == "PD").to_numpy()
    # Patients in PD at HSCT: most relapse within a year (≈ 75%), far more than in CR (≈ 14%).
    assert tr["relapse"][pd_, 1].mean() > 0.65
    assert tr["relapse"][pd_, 1].mean() > 4 * tr["relapse"][~pd_ & (cohort["disease_status_at_hsct"] == "CR"), 1].mean()
    # Most relapses within 2 years and most TRM within the first year.
    assert tr["relapse"][:, 2].mean() > 0.85 * tr["relapse"][:, 3].mean()
    assert tr["trm"][:, 1].mean() > 0.65 * tr["trm"][:, 3].mean()


# ------------------------------------------------------------------------------------------------- effects
def _set(records: pd.DataFrame, **fields) -> pd.DataFrame:
    out = records.copy()
    for k, v in fields.items():
        out[k] = v
    return out


def test_effect_directions(cohort):
    recs = cohort.head(500)
    pd_ = true_risk(_set(recs, disease_status_at_hsct="PD"), HORIZONS)
    cr = true_risk(
        _set(recs, disease_status_at_hsct="CR", curie_score_at_hsct=0, bone_marrow_tumor_percent_at_hsct=0.0), HORIZONS
    )
    assert np.all(pd_["relapse"] > cr["relapse"])
    high = true_risk(_set(recs, hct_ci=4), HORIZONS)
    low = true_risk(_set(recs, hct_ci=0), HORIZONS)
    assert np.all(high["trm"] > low["trm"])
    unrelated = dict(graft_source="peripheral_blood", graft_manipulation="none", gvhd_prophylaxis="calcineurin_based")
    mm = true_risk(_set(recs, donor_type="mismatched_unrelated", hla_mismatches=1, **unrelated), HORIZONS)
    mu = true_risk(_set(recs, donor_type="matched_unrelated", hla_mismatches=0, **unrelated), HORIZONS)
    assert np.all(mm["trm"] > mu["trm"])
    gd2 = true_risk(_set(recs, planned_post_hsct_immunotherapy="anti_gd2"), HORIZONS)
    none = true_risk(_set(recs, planned_post_hsct_immunotherapy="none"), HORIZONS)
    assert np.all(gd2["relapse"] < none["relapse"])


def test_time_varying_and_non_linear_effects(cohort):
    recs = cohort.head(200)
    pd_ = true_linear_predictors(_set(recs, disease_status_at_hsct="PD", curie_score_at_hsct=10))
    cr = true_linear_predictors(_set(recs, disease_status_at_hsct="CR", curie_score_at_hsct=0))
    hr = {c: np.exp(pd_[c] - cr[c]).to_numpy() for c in syn.RELAPSE_LP_COLUMNS}
    # The PD hazard ratio (Curie > 2 included: 1.8) is 4^w · 1.8 with weights 1.6 / 1.0 / 0.5 by period.
    for c, w in zip(syn.RELAPSE_LP_COLUMNS, syn.STATUS_WEIGHTS, strict=True):
        np.testing.assert_allclose(hr[c], 4.0**w * 1.8, rtol=1e-12)
    # Non-linear: months diagnosis → HSCT in relapsed disease has a plateau (HR 2 up to 18 months, 1 after 30).
    rel = _set(recs, disease_phase="first_relapse", age_at_diagnosis_months=40.0)
    lp = {
        m: true_linear_predictors(_set(rel, months_diagnosis_to_hsct=m))["relapse_6_12m"] for m in (6, 18, 24, 30, 60)
    }
    np.testing.assert_allclose(np.exp(lp[6] - lp[60]), 2.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(lp[18] - lp[60]), 2.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(lp[24] - lp[60]), np.sqrt(2.0), rtol=1e-12)
    np.testing.assert_allclose(lp[30], lp[60], rtol=0, atol=1e-12)


def test_dates_and_censoring():
    df = make_synthetic_cohort(2000, seed=4)
    y = derive_outcomes(df)
    assert (y["time"] > 0).all()
    close = pd.Timestamp(syn._ERAS["base"].close)
    fu = pd.to_datetime(df["date_last_followup"])
    alive = df["date_death"].isna()
    # Administrative censoring at the study close for most of the living; some are lost to follow-up earlier.
    at_close = (fu[alive] == close).mean()
    assert 0.5 < at_close < 0.98
    assert (fu <= close).all()
    # Post-relapse survival is short: median a few months (spec: "short median (months)").
    rel = y["relapse_time"].notna()
    t, s = kaplan_meier_estimator(
        y.loc[rel, "post_relapse_event"].astype(bool).to_numpy(), y.loc[rel, "post_relapse_time"].to_numpy()
    )
    median_months = t[np.argmax(s <= 0.5)] / DAYS_PER_MONTH
    assert 4 <= median_months <= 18


# ------------------------------------------------------------------------------------------------- presets
def test_presets_move_the_way_the_spec_says():
    mean = {}
    for p in PRESETS:
        recs = make_synthetic_cohort(2500, seed=17, preset=p)
        mean[p] = {k: v.mean(0) for k, v in true_risk(recs, HORIZONS, p).items()}
    # Tolerances: SE of a mean true CIF at n = 2500 ≤ 0.6 pp; calibration error ≤ 1.5 pp.
    assert mean["historical"]["trm"][0] > mean["base"]["trm"][0] > mean["optimistic"]["trm"][0]
    assert abs(mean["historical"]["trm"][0] - 0.20) < 0.03  # 1-year TRM ≈ 20%
    assert 0.06 <= mean["historical"]["os"][3] <= 0.11  # 5-year OS 7–10%
    assert mean["historical"]["os"][3] < mean["base"]["os"][3] < mean["optimistic"]["os"][3]
    assert abs(mean["optimistic"]["efs"][3] - 0.43) < 0.03  # 5-year EFS ≈ 43%
    assert abs(mean["optimistic"]["os"][3] - 0.53) < 0.03  # 5-year OS ≈ 53%
    assert mean["optimistic"]["trm"][3] <= 0.05 + 0.01  # TRM ≤ 5%


def test_preset_covariates_reflect_the_era():
    opt = make_synthetic_cohort(1500, seed=2, preset="optimistic")
    hist = make_synthetic_cohort(1500, seed=2, preset="historical")
    assert (opt["donor_type"] == "haploidentical").mean() > 0.7
    assert (opt["planned_post_hsct_immunotherapy"] == "anti_gd2").mean() > 0.7
    assert (hist["planned_post_hsct_immunotherapy"] == "anti_gd2").mean() < 0.05
    assert hist["hsct_year"].max() <= 2005 < opt["hsct_year"].min()
