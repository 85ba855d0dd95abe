"""Fold and resample machinery: fixed by the seed, stratified by cause, identical across models; paired CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbrisk.core import Cause
from nbrisk.training.validation import (
    bootstrap_indices,
    center_groups,
    make_folds,
    paired_difference,
)


@pytest.fixture
def events():
    rng = np.random.default_rng(0)
    return rng.choice([int(Cause.CENSORED), int(Cause.RELAPSE), int(Cause.TRM)], size=300, p=[0.2, 0.6, 0.2])


def test_folds_partition_each_repeat_and_are_stratified(events):
    folds = make_folds(events, n_splits=5, n_repeats=2, seed=1)
    assert len(folds) == 10
    for r in range(2):
        tests = np.concatenate([f.test for f in folds if f.repeat == r])
        assert np.array_equal(np.sort(tests), np.arange(len(events)))  # every patient tested once per repeat
    share = np.mean(events == Cause.TRM)
    for f in folds:
        assert not set(f.train) & set(f.test)
        # stratification keeps each fold's TRM share within one patient of the overall share
        assert abs(np.mean(events[f.test] == Cause.TRM) - share) <= 1.0 / len(f.test) + 1e-12


def test_folds_fixed_by_seed(events):
    a, b, c = (make_folds(events, 3, 2, s) for s in (7, 7, 8))
    assert all(np.array_equal(x.test, y.test) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x.test, y.test) for x, y in zip(a, c, strict=True))


def test_folds_shrink_when_a_cause_is_rare():
    ev = np.array([1] * 50 + [2] * 3 + [0] * 10)
    folds = make_folds(ev, n_splits=5, n_repeats=1, seed=0)
    assert len(folds) == 3  # only 3 TRM events: 3-fold so each fold has one


def test_bootstrap_indices_stratified_and_reproducible(events):
    boot = bootstrap_indices(events, 50, seed=3)
    assert boot.shape == (50, len(events))
    assert np.array_equal(boot, bootstrap_indices(events, 50, seed=3))
    assert not np.array_equal(boot, bootstrap_indices(events, 50, seed=4))
    for b in boot[:5]:
        # stratified resampling keeps the number of each cause exactly
        assert np.array_equal(np.bincount(events[b], minlength=3), np.bincount(events, minlength=3))


def test_paired_difference_detects_a_shift_and_needs_shared_resamples():
    rng = np.random.default_rng(0)
    base = rng.normal(0.65, 0.02, 200)
    mean, _lo, hi = paired_difference(base - 0.03 + rng.normal(0, 0.002, 200), base)
    assert hi < 0 and mean == pytest.approx(-0.03, abs=0.002)
    assert paired_difference(base[:10], base) is None
    assert paired_difference([], []) is None


def test_center_groups_pool_small_centers():
    rec = pd.DataFrame({"center_id": ["A"] * 40 + ["B"] * 40 + ["C"] * 35 + ["D"] * 5 + ["E"] * 3})
    g = center_groups(rec, min_size=30)
    assert sorted(g.unique()) == ["A", "B", "C", "other"]
    assert center_groups(rec.iloc[:80], min_size=30) is None  # fewer than 3 centers: no LOCO
