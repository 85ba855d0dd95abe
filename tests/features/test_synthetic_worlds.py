"""Worlds of the synthetic generator (``features/synthetic.py`` :data:`WORLDS`): each knows its own truth.

The check is the same one the presets pass: the Aalen–Johansen estimate of the relapse and TRM cumulative incidence
on a censored cohort drawn from the world estimates the cohort's mean *true* CIF (:func:`true_risk` with the world's
name), because censoring is independent of the event process given the covariates. If the world's outcome sampler
and its ``true_risk`` disagreed (a term used in one and not the other), the two would drift apart by far more than
sampling error.

Also here: the realism check of the ``base`` preset against published subgroup figures (Flaadt 2023, JCO 41:3135:
5-year EFS 52% in CR vs 13% in MR/NR/PD at HSCT, in haploidentical + anti-GD2 recipients) — met in the base cohort's
patients treated that way; the whole cohort's CR figure is a documented compromise (:func:`flaadt_realism`) — and the
spread of the true 5-year EFS across patients.
"""

from __future__ import annotations

import numpy as np
import pytest

from nbrisk.core import months_to_days
from nbrisk.features.outcomes import derive_outcomes
from nbrisk.features.synthetic import (
    FLAADT_2023_EFS_5Y,
    WORLDS,
    flaadt_realism,
    make_synthetic_cohort,
    true_linear_predictors,
    true_risk,
)
from nbrisk.models.nonparametric import aalen_johansen

HORIZONS = np.array([12.0, 24.0, 60.0])
N = 4000


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_world_aalen_johansen_matches_its_mean_true_cif(world):
    df = make_synthetic_cohort(N, seed=11, preset=world)
    y = derive_outcomes(df)
    event, time = y["event"].to_numpy().astype(int), y["time"].to_numpy(dtype=float)
    truth = true_risk(df, HORIZONS, world)
    for cause, name in ((1, "relapse"), (2, "trm")):
        observed = aalen_johansen(time, event, cause).at(months_to_days(HORIZONS))
        expected = truth[name].mean(axis=0)
        # Sampling error: the AJ estimate has SE ≈ sqrt(F(1 − F)/n) inflated by censoring (≈ 35% of the cohort is
        # censored before 5 years, so by at most ≈ 1/sqrt(0.65)); 4.5 such SEs make a false alarm rarer than 1e-4
        # per comparison. Relapse at 24 months: ≈ 3.4 points at n = 4,000.
        se = np.sqrt(expected * (1 - expected) / N) / np.sqrt(0.65)
        np.testing.assert_array_less(np.abs(observed - expected), 4.5 * se + 1e-9, err_msg=f"{world} {name}")


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_world_truth_differs_from_the_table(world):
    # A world whose truth equalled the literature table (up to a constant) would make the benchmark circular again.
    df = make_synthetic_cohort(1500, seed=12, preset=world)
    table, own = true_linear_predictors(df, "base"), true_linear_predictors(df, world)
    for col in ("relapse_6_12m", "trm"):
        diff = own[col] - table[col]
        if world in ("weak", "strong"):  # a rescaled table: correlated, but the spread of the log hazards differs
            ratio = own[col].std() / table[col].std()
            assert abs(ratio - WORLDS[world].scale) < 0.05, (world, col, ratio)
        else:  # every other world changes both the relapse and the TRM hazards beyond a constant
            assert diff.std() > 0.1, (world, col, diff.std())


def test_world_is_reproducible_and_base_is_unchanged():
    a = make_synthetic_cohort(300, seed=4, preset="offtable")
    b = make_synthetic_cohort(300, seed=4, preset="offtable")
    assert a.equals(b)
    assert a.attrs["preset"] == "offtable"
    # the centre world changes the centre mix (the largest centre is C10 there, C01 in base)
    c = make_synthetic_cohort(3000, seed=4, preset="centers")["center_id"].value_counts()
    assert c.idxmax() == "C10"


def _efs_5y_by_status(preset: str, n: int = 20_000):
    df = make_synthetic_cohort(n, seed=3, preset=preset)
    efs = true_risk(df, [60.0], preset)["efs"][:, 0]
    status = df["disease_status_at_hsct"].to_numpy()
    return efs, status


def test_base_spread_of_true_5y_efs_is_reported_and_bounded():
    # The spread of true 5-year EFS across patients: with PD at HSCT (a third of the cohort) carrying a relapse
    # hazard ratio of 4^1.6 ≈ 9 in the first 6 months, a quarter of the patients have a true 5-year EFS below 2%
    # (measured 25.5% at n = 20,000; benchmarks/results/worlds.md). The bound guards against the generator drifting
    # to an even more extreme spread (binomial SE at n = 20,000 ≈ 0.3 points).
    efs, status = _efs_5y_by_status("base")
    share = float(np.mean(efs < 0.02))
    assert 0.20 < share < 0.30
    assert np.mean(efs[status == "PD"] < 0.02) > np.mean(efs[status == "CR"] < 0.02)


def test_base_non_cr_5y_efs_matches_flaadt_2023():
    # Flaadt 2023: 5-year EFS 13% in MR/NR/PD at HSCT; the base preset's mean true EFS there must be within ±8 points.
    efs, status = _efs_5y_by_status("base")
    poor = np.isin(status, ["MR", "SD", "PD"])
    assert abs(100 * efs[poor].mean() - 13.0) <= 8.0


@pytest.fixture(scope="module")
def realism():
    return flaadt_realism()


def test_flaadt_like_patients_of_base_match_flaadt_2023(realism):
    # Flaadt 2023 reports 5-year EFS by status at HSCT in patients who had a haploidentical graft and post-HSCT
    # anti-GD2: the base cohort's patients with both (≈ 3,600 of 20,000; ≈ 780 in CR) must be within ±8 points in
    # both groups (measured 45% vs 52% and 10% vs 13%). SE of a group's mean true EFS ≈ 0.6 points (CR), so the
    # fixed-seed figure is not at the mercy of the draw.
    sub = realism["haplo_anti_gd2"]
    assert sub["n"] > 3000
    for group, published in FLAADT_2023_EFS_5Y.items():
        assert abs(sub[group] - published) <= 8.0, (group, sub[group], published)
    # the ordering Flaadt reports, with VGPR/PR between
    assert sub["CR"] > sub["VGPR/PR"] > sub["MR/SD/PD"]


def test_whole_base_cohort_cr_figure_is_the_documented_compromise(realism):
    # The whole base cohort (5-year EFS pinned at the 16% target) cannot also put CR within ±8 of 52% and MR/SD/PD
    # within ±8 of 13% unless VGPR/PR fell to ≤ vp_max (≈ 14%, Flaadt's non-response level), far below what the
    # literature's VGPR/PR hazard ratio of 1.8 gives (≈ 20%). If a change of the generator dissolves this conflict,
    # this test fails and the whole-cohort check should replace it (flaadt_realism's docstring).
    whole, spread = realism["all"], realism["spread"]
    assert abs(whole["overall"] - 16.0) <= 2.5
    assert whole["CR"] < FLAADT_2023_EFS_5Y["CR"] - 8.0
    assert spread["vp_max"] < whole["VGPR/PR"] - 3.0
