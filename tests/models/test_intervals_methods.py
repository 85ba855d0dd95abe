"""The alternative interval methods of ``models/intervals_methods.py`` and the gated recalibration (fast checks).

Each method is checked against a property that identifies it: the BC interval equals the percentile interval when
the estimate is the replicates' median and moves towards the side the median bias points to; the logit-Wald interval
is symmetric on the logit scale; the disagreement scale κ is ≈ 1 when the reference is the truth and ≈ 0 when it is
noise; the infinitesimal-jackknife variance of a forest is close to the variance of the forest's predictions over
independent training cohorts (the quantity it estimates); the gated recalibration leaves a model within noise alone.
Coverage of the true CIF on the worlds is measured in ``benchmarks/worlds.py`` and, on a small world, in the slow
``test_interval_coverage_worlds.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from nbrisk.core import months_to_days
from nbrisk.features.outcomes import derive_outcomes
from nbrisk.features.pipeline import make_feature_pipeline
from nbrisk.features.synthetic import make_synthetic_cohort
from nbrisk.models import CauseSpecificForest
from nbrisk.models._base import CIFCoherenceWarning, percentile_interval
from nbrisk.models.intervals_methods import (
    bias_corrected_interval,
    calibrated_half_width,
    fit_disagreement_scale,
    forest_ij_variance,
    logit_wald_interval,
)
from nbrisk.models.recalibration import LogitShiftRecalibration


def test_bc_equals_percentile_without_median_bias_and_shifts_with_it():
    rng = np.random.default_rng(0)
    reps = np.sort(rng.normal(0.3, 0.05, size=(40, 999)), axis=-1)
    median = np.median(reps, axis=-1)
    lo_bc, hi_bc = bias_corrected_interval(reps, median)
    lo_p, hi_p = percentile_interval(reps, median, replicates_last=True)
    # z0 = 0 exactly at the median: the BC bounds are the 2.5% and 97.5% percentiles (up to one replicate's spacing)
    np.testing.assert_allclose(lo_bc, lo_p, atol=2e-3)
    np.testing.assert_allclose(hi_bc, hi_p, atol=2e-3)
    # an estimate above most replicates (the bootstrap distribution is biased low) moves both bounds up
    high = np.quantile(reps, 0.8, axis=-1)
    lo_h, hi_h = bias_corrected_interval(reps, high)
    assert np.all(lo_h > lo_p) and np.all(hi_h > hi_p)
    assert np.all((lo_h <= high) & (high <= hi_h))


def test_logit_wald_is_symmetric_on_the_logit_scale():
    rng = np.random.default_rng(1)
    est = np.array([0.05, 0.3, 0.7])
    reps = expit(logit(est)[:, None] + rng.normal(0, 0.4, size=(3, 500)))
    lo, hi = logit_wald_interval(reps, est)
    np.testing.assert_allclose(logit(hi) - logit(est), logit(est) - logit(lo), rtol=1e-9)
    sd = np.std(logit(reps), axis=-1, ddof=1)
    np.testing.assert_allclose(logit(hi) - logit(est), 1.959964 * sd, rtol=1e-5)


def _held_out(n=3000, seed=2):
    """A held-out cohort with its true CIF of cause 1 at one horizon: exponential times, no censoring."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    rate1, rate2 = 0.02 * np.exp(0.8 * x), 0.005
    t = rng.exponential(1 / (rate1 + rate2))
    event = np.where(rng.random(n) < rate1 / (rate1 + rate2), 1, 2)
    h = 24.0
    true = rate1 / (rate1 + rate2) * (1 - np.exp(-(rate1 + rate2) * h))
    return event, t, true, h


def test_disagreement_scale_is_one_for_a_true_reference_and_zero_for_noise():
    event, t, true, h = _held_out()
    pred = np.full_like(true, true.mean())[:, None, None]  # a covariate-free model: its error is true − mean
    kappa, _ = fit_disagreement_scale(event, t, pred, true[:, None, None], [h])
    # AJ error per group of 300 ≈ 2.7 points against group errors up to ≈ 30 points: κ within ±0.2 of 1
    assert abs(kappa[0, 0] - 1.0) < 0.2, kappa
    noise = pred + np.random.default_rng(3).normal(0, 0.1, size=pred.shape)
    kappa0, _ = fit_disagreement_scale(event, t, pred, noise, [h])
    assert kappa0[0, 0] < 0.2, kappa0
    half = calibrated_half_width(np.zeros_like(pred), pred, true[:, None, None], kappa, np.zeros((1, 1)))
    inside = np.abs(true[:, None, None] - pred) <= half + 1e-12
    assert inside.mean() > 0.95  # the allowance 1.96 κ |d| covers the model's error where d is that error


def test_gated_recalibration_leaves_a_model_within_noise_alone():
    event, t, true, h = _held_out(n=1000, seed=4)
    right = np.stack([true, 0.2 * np.ones_like(true)], axis=1)[:, :, None]
    gated = LogitShiftRecalibration(min_gap=0.02, z=1.96).fit(event, t, right, [h])
    ungated = LogitShiftRecalibration().fit(event, t, right, [h])
    assert not gated.shifted_[0, 0] and gated.shifts_[0, 0] == 0.0
    assert ungated.shifts_[0, 0] != 0.0  # the old rule shifts by the held-out cohort's own noise
    off = np.clip(right + np.array([0.10, 0.0])[None, :, None], 0, 1)  # relapse over-predicted by 10 points
    fixed = LogitShiftRecalibration(min_gap=0.02, z=1.96).fit(event, t, off, [h])
    assert fixed.shifted_[0, 0] and fixed.shifts_[0, 0] < 0


@pytest.fixture(scope="module")
def forests():
    test = make_synthetic_cohort(300, seed=41)
    days = months_to_days([12.0, 24.0])
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CIFCoherenceWarning)
        for s in range(4):
            train = make_synthetic_cohort(500, seed=50 + s)
            # covariates only (no outcome): the test cohort's rare categories get their columns
            pipe = make_feature_pipeline().fit(pd.concat([train, test], ignore_index=True))
            f = CauseSpecificForest(n_estimators=120, min_samples_leaf=15, random_state=s)
            f.fit(pipe.transform(train), derive_outcomes(train))
            out.append(forest_ij_variance(f, pipe.transform(test), days, len(train)))
    return out


def test_forest_ij_variance_matches_the_spread_over_training_cohorts(forests):
    est = np.stack([e for e, _ in forests])  # (4, n, 2, k)
    ij_sd = np.mean([np.sqrt(v) for _, v in forests], axis=0).mean(axis=0)  # (2, k), averaged over patients
    spread = np.std(est, axis=0, ddof=1).mean(axis=0)  # between-cohort SD per patient, averaged
    # 4 cohorts give the SD to about ±40% per patient, far less on the average over 300 patients; the IJ is
    # unbiased after its Monte-Carlo correction (Wager et al. 2014), so the ratio should be near 1
    ratio = ij_sd / spread
    assert np.all((ratio > 0.6) & (ratio < 1.6)), ratio
    assert all(np.all(v >= 0) for _, v in forests)
