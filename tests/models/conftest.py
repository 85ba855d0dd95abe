"""Fixtures shared by the model tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbrisk.core import Cause


def _simulate_exponential(n: int, seed: int, ties: bool = False):
    """Exponential cause-specific hazards; returns X, y and the true CIF function F(X, times) -> (n, 3, k)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    l1 = 0.002 * np.exp(1.0 * X[:, 0])
    l2 = 0.001 * np.exp(-0.8 * X[:, 0] + 1.0 * X[:, 1])
    t1, t2, c = rng.exponential(1 / l1), rng.exponential(1 / l2), rng.uniform(200, 2000, n)
    t = np.minimum.reduce([t1, t2, c])
    event = np.where(t == t1, Cause.RELAPSE, np.where(t == t2, Cause.TRM, Cause.CENSORED)).astype(int)
    if ties:
        t = np.ceil(t)
    y = pd.DataFrame({"event": event, "time": t})

    def truth(Xn, times):
        a = 0.002 * np.exp(1.0 * Xn[:, 0])
        b = 0.001 * np.exp(-0.8 * Xn[:, 0] + 1.0 * Xn[:, 1])
        lam = (a + b)[:, None]
        surv = np.exp(-lam * np.asarray(times)[None, :])
        f1, f2 = a[:, None] / lam * (1 - surv), b[:, None] / lam * (1 - surv)
        return np.stack([surv, f1, f2], axis=1)

    return pd.DataFrame(X, columns=["x0", "x1", "x2"]), y, truth


@pytest.fixture
def simulate():
    """The known-truth simulation (exponential cause-specific hazards) used by the tree-model tests."""
    return _simulate_exponential
