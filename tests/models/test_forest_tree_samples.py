"""CauseSpecificForest's ``max_tree_samples``: the cap on the rows each tree is grown on (large cohorts only)."""

from __future__ import annotations

import numpy as np
import pytest

from nbrisk.models.forest import CauseSpecificForest

TIMES = np.array([90.0, 365.0, 730.0])


def test_below_the_cap_the_forest_is_the_same_draw_for_draw(simulate):
    X, y, _ = simulate(300, seed=4)
    plain = CauseSpecificForest(n_estimators=5, min_samples_leaf=10, random_state=1).fit(X, y)
    capped = CauseSpecificForest(n_estimators=5, min_samples_leaf=10, random_state=1, max_tree_samples=300).fit(X, y)
    assert all(f.max_samples is None for f in capped.forests_)
    np.testing.assert_array_equal(
        capped.predict_cumulative_incidence(X, TIMES), plain.predict_cumulative_incidence(X, TIMES)
    )


def test_above_the_cap_each_tree_sees_at_most_the_cap(simulate):
    X, y, _ = simulate(300, seed=4)
    plain = CauseSpecificForest(n_estimators=5, min_samples_leaf=10, random_state=1).fit(X, y)
    capped = CauseSpecificForest(n_estimators=5, min_samples_leaf=10, random_state=1, max_tree_samples=120).fit(X, y)
    assert all(f.max_samples == 120 for f in capped.forests_)
    # a tree's root holds its bootstrap sample: 120 rows (with repeats), not 300
    roots = {int(t.tree_.weighted_n_node_samples[0]) for f in capped.forests_ for t in f.estimators_}
    assert roots == {120}
    pred = capped.predict_cumulative_incidence(X, TIMES)
    assert not np.allclose(pred, plain.predict_cumulative_incidence(X, TIMES))
    np.testing.assert_allclose(pred.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tree_samples": 1}, "integer >= 2"),
        ({"max_tree_samples": 0.5}, "integer >= 2"),
        ({"max_tree_samples": 100, "max_samples": 50}, "not both"),
        ({"max_tree_samples": 100, "bootstrap": False}, "bootstrap=True"),
    ],
)
def test_bad_caps_are_refused(simulate, kwargs, message):
    X, y, _ = simulate(150, seed=5)
    with pytest.raises(ValueError, match=message):
        CauseSpecificForest(n_estimators=2, **kwargs).fit(X, y)
