"""Reference tests of the non-parametric estimators against published numbers and scikit-survival.

Published values (docs/statistics.md, "Reference values"; CAMIS: R cmprsk/tidycmprsk = SAS PROC LIFETEST on KMsurv::bmt;
R survival "compete" vignette on mgus2).
"""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.nonparametric import cumulative_incidence_competing_risks, kaplan_meier_estimator

from nbrisk.features.public import bmt_group, load_kmsurv_bmt, load_mgus2, load_sksurv_bmt
from nbrisk.models.nonparametric import (
    aalen_johansen,
    cumulative_incidence,
    gray_test,
    kaplan_meier,
    restricted_mean_cif,
)


@pytest.fixture(scope="module")
def bmt():
    ds = load_kmsurv_bmt()
    return ds.y["time"].to_numpy() / 365.25, ds.y["event"].to_numpy(), bmt_group(ds)


def test_aml_low_cif_and_loglog_ci_match_published(bmt):
    time, event, group = bmt
    low = group == "AML low risk"
    est, lower, upper = cumulative_incidence(time[low], event[low], 1, [0.5, 1.0, 1.5, 2.0, 3.0])
    # Published to 4 decimals, so any correct implementation is within the rounding half-unit 5e-5.
    np.testing.assert_allclose(est, [0.0, 0.0741, 0.1296, 0.1481, 0.1667], atol=5e-5)
    np.testing.assert_allclose(lower[1:], [0.0234, 0.0563, 0.0685, 0.0813], atol=5e-5)
    np.testing.assert_allclose(upper[1:], [0.1646, 0.2344, 0.2565, 0.2783], atol=5e-5)
    # At 0.5 years there is no event yet: the interval collapses to the estimate 0 (no fake width).
    assert lower[0] == 0.0 and upper[0] == 0.0


@pytest.mark.parametrize(
    ("cause", "statistic", "p_value"),
    [(1, 11.9228820, 0.0025762), (2, 0.1374108, 0.9336017)],
)
def test_gray_test_matches_published(bmt, cause, statistic, p_value):
    time, event, group = bmt
    stat, dof, p = gray_test(time, event, group, cause)
    assert dof == 2
    # statistic published to 7 decimals (rounding error <= 5e-8); 1e-6 leaves room for float summation order
    assert stat == pytest.approx(statistic, abs=1e-6)
    assert p == pytest.approx(p_value, abs=1e-7)


def test_gray_test_invariant_to_group_labels_and_order(bmt):
    time, event, group = bmt
    rng = np.random.default_rng(3)
    perm = rng.permutation(time.shape[0])
    relabel = np.array([{"ALL": "z", "AML low risk": "a", "AML high risk": "m"}[g] for g in group])
    s1 = gray_test(time, event, group, 1)[0]
    s2 = gray_test(time[perm], event[perm], relabel[perm], 1)[0]
    # which K-1 groups enter the quadratic form does not matter (rows of the covariance sum to zero)
    assert s2 == pytest.approx(s1, rel=1e-9)


def test_gray_test_identical_groups_gives_zero():
    # two copies of the same sample: the CIFs are identical, so the score is exactly 0
    rng = np.random.default_rng(0)
    t = rng.exponential(1.0, 40)
    e = rng.integers(0, 3, 40)
    stat, dof, p = gray_test(np.r_[t, t], np.r_[e, e], np.r_[np.zeros(40), np.ones(40)], 1)
    assert stat == pytest.approx(0.0, abs=1e-12) and dof == 1 and p == pytest.approx(1.0)


def test_mgus2_restricted_means_match_published():
    ds = load_mgus2()
    women = ds.extra["sex"].to_numpy() == "F"
    rm = restricted_mean_cif(ds.y["time"].to_numpy()[women], ds.y["event"].to_numpy()[women], tau=240.0)
    # published in years to 6 decimals (R survival vignette "compete"); rounding error <= 5e-7 years
    assert rm[1] / 12 == pytest.approx(1.323284, abs=1e-6)
    assert rm[2] / 12 == pytest.approx(8.823108, abs=1e-6)
    assert rm["event_free"] / 12 == pytest.approx(9.853608, abs=1e-6)
    # the three add up to tau
    assert rm[1] + rm[2] + rm["event_free"] == pytest.approx(240.0, rel=1e-12)


@pytest.mark.parametrize("loader", [load_kmsurv_bmt, load_sksurv_bmt])
def test_aalen_johansen_matches_sksurv(loader):
    ds = loader()
    time, event = ds.y["time"].to_numpy(), ds.y["event"].to_numpy()
    times, cif, ci = cumulative_incidence_competing_risks(event, time, conf_type="log-log")
    for cause in (1, 2):
        res = aalen_johansen(time, event, cause)
        np.testing.assert_array_equal(res.times, times)
        # same estimator and same Aalen variance: only floating-point summation order differs (claimed 1e-8)
        np.testing.assert_allclose(res.cif, cif[cause], atol=1e-10)
        _, lower, upper = cumulative_incidence(time, event, cause, times)
        np.testing.assert_allclose(lower, ci[cause, 0], atol=1e-8)
        np.testing.assert_allclose(upper, ci[cause, 1], atol=1e-8)


def test_kaplan_meier_matches_sksurv():
    ds = load_kmsurv_bmt()
    time, dead = ds.y["time"].to_numpy(), ds.y["event"].to_numpy() > 0
    t_ref, s_ref = kaplan_meier_estimator(dead, time)
    t, s = kaplan_meier(time, dead)
    np.testing.assert_array_equal(t, t_ref)
    np.testing.assert_allclose(s, s_ref, atol=1e-12)  # identical product, summation order only
