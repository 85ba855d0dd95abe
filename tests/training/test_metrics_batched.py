"""The fast metric paths equal the slow ones they replace, to 1e-12, on random data with ties and censoring.

* The C-index's pair sums (``_dominance_sums``, numpy by binary digits of the ranks) against the former Fenwick-tree
  sweep, kept here verbatim as the reference (``_fenwick_dominance_sums`` and ``_fenwick_cindex``).
* :func:`nbrisk.training.metrics.replicate_metrics` (every bootstrap resample at once, as frequency weights) against
  the scalar functions evaluated on each materialised resample — which is what the training job computed before —
  and ``pooled_metrics``' replicates against :func:`nbrisk.training.validation.evaluate` per resample.

The scalar functions themselves are checked against independent references in ``test_metrics_reference.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbrisk.training import metrics as M
from nbrisk.training import validation as V

TOL = 1e-12


# ----------------------------------------------------------------------------------------------------------------
# the former implementation (reference)


def _fenwick_dominance_sums(key_ins, rank_ins, w_ins, key_q, rank_q, greater):
    size = int(max(rank_ins.max(initial=0), rank_q.max(initial=0))) + 2
    tree = [0.0] * (size + 1)

    def add(pos, w):
        pos += 1
        while pos <= size:
            tree[pos] += w
            pos += pos & -pos

    def prefix(pos):
        total = 0.0
        while pos > 0:
            total += tree[pos]
            pos -= pos & -pos
        return total

    sign = -1.0 if greater else 1.0
    ins_order = np.argsort(sign * key_ins, kind="mergesort")
    q_order = np.argsort(sign * key_q, kind="mergesort")
    k_ins, r_ins, w_list = (sign * key_ins)[ins_order].tolist(), rank_ins[ins_order].tolist(), w_ins[ins_order].tolist()
    below = np.zeros(key_q.shape[0])
    tied = np.zeros(key_q.shape[0])
    ptr, n_ins = 0, len(k_ins)
    for q, kq, rq in zip(q_order.tolist(), (sign * key_q)[q_order].tolist(), rank_q[q_order].tolist(), strict=True):
        while ptr < n_ins and (k_ins[ptr] < kq if greater else k_ins[ptr] <= kq):
            add(r_ins[ptr], w_list[ptr])
            ptr += 1
        b = prefix(rq)
        below[q] = b
        tied[q] = prefix(rq + 1) - b
    return below, tied


def _fenwick_cindex(event, time, risk, tau, cause, ipcw=False):
    event, time = np.asarray(event).astype(int), np.asarray(time, dtype=float)
    n = time.shape[0]
    case = (time <= tau) & (event == cause)
    if not case.any():
        return float("nan")
    competing = (event != 0) & (event != cause)
    rank = np.unique(risk, return_inverse=True)[1].ravel()
    order = np.lexsort(((event == 0).astype(int), time))
    key = np.empty(n)
    pairs = np.stack([time[order], (event[order] == 0).astype(float)])
    first = np.concatenate([[True], np.any(pairs[:, 1:] != pairs[:, :-1], axis=0)])
    key[order] = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    ci = np.flatnonzero(case)
    below_a, tied_a = _fenwick_dominance_sums(key, rank, np.ones(n), key[ci], rank[ci], greater=True)
    n_later = (n - 1) - np.searchsorted(np.sort(key), key[ci], side="right") + 1
    comp_idx = np.flatnonzero(competing)
    if ipcw:
        g = M.censoring_survival(time, event)
        w_i = M._inv(g.left(time[ci]))
        w_a = w_i * M._inv(g.at(time[ci]))
        v = M._inv(g.left(time[comp_idx]))
    else:
        w_i, w_a, v = np.ones(ci.size), np.ones(ci.size), np.ones(comp_idx.size)
    num = np.sum(w_a * (below_a + 0.5 * tied_a))
    den = np.sum(w_a * n_later)
    if comp_idx.size:
        below_b, tied_b = _fenwick_dominance_sums(time[comp_idx], rank[comp_idx], v, time[ci], rank[ci], greater=False)
        t_sorted = np.argsort(time[comp_idx], kind="mergesort")
        cum_v = np.concatenate([[0.0], np.cumsum(v[t_sorted])])
        total_b = cum_v[np.searchsorted(time[comp_idx][t_sorted], time[ci], side="right")]
        num += np.sum(w_i * (below_b + 0.5 * tied_b))
        den += np.sum(w_i * total_b)
    return float(num / den) if den > 0 else float("nan")


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= TOL


def _random_data(rng, n, n_times, n_risks):
    """Coarse times and risks, so that ties in time, in risk and between events and censorings are common."""
    event = rng.integers(0, 3, n)
    time = rng.integers(1, n_times + 1, n).astype(float)
    risk = rng.integers(0, n_risks, n) / max(n_risks - 1, 1)
    return event, time, risk


# ----------------------------------------------------------------------------------------------------------------
# the C-index


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 90),
    n_times=st.integers(1, 25),
    n_risks=st.integers(1, 12),
    tau=st.sampled_from([3.0, 10.0, np.inf]),
    cause=st.sampled_from([1, 2]),
    ipcw=st.booleans(),
)
def test_cindex_equals_the_fenwick_sweep(seed, n, n_times, n_risks, tau, cause, ipcw):
    event, time, risk = _random_data(np.random.default_rng(seed), n, n_times, n_risks)
    ref = _fenwick_cindex(event, time, risk, tau, cause, ipcw=ipcw)
    assert _same(M.concordance_index_cr(event, time, risk, tau, cause, ipcw=ipcw), ref)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_ins=st.integers(0, 60), n_q=st.integers(0, 40), greater=st.booleans())
def test_dominance_sums_equal_the_fenwick_sweep_with_weights(seed, n_ins, n_q, greater):
    rng = np.random.default_rng(seed)
    key_ins, key_q = rng.integers(0, 8, n_ins).astype(float), rng.integers(0, 8, n_q).astype(float)
    rank_ins, rank_q = rng.integers(0, 10, n_ins), rng.integers(0, 10, n_q)
    w = rng.integers(0, 4, (3, n_ins)).astype(float)  # a batch of frequency weights, zeros included
    below, tied = M._dominance_sums(key_ins, rank_ins, w, key_q, rank_q, greater)
    assert below.shape == tied.shape == (3, n_q)
    for b in range(3):
        ref_below, ref_tied = _fenwick_dominance_sums(key_ins, rank_ins, w[b], key_q, rank_q, greater)
        np.testing.assert_allclose(below[b], ref_below, rtol=0, atol=TOL)
        np.testing.assert_allclose(tied[b], ref_tied, rtol=0, atol=TOL)
    one_below, one_tied = M._dominance_sums(key_ins, rank_ins, w[0], key_q, rank_q, greater)
    assert one_below.shape == (n_q,)
    np.testing.assert_array_equal(one_below, below[0])
    np.testing.assert_array_equal(one_tied, tied[0])


def test_cindex_on_a_large_continuous_sample_equals_the_fenwick_sweep():
    rng = np.random.default_rng(11)
    n = 3000
    event, time = rng.integers(0, 3, n), rng.exponential(600, n).round() + 1
    risk = rng.uniform(size=n)
    for cause in (1, 2):
        for ipcw in (False, True):
            ref = _fenwick_cindex(event, time, risk, 730.0, cause, ipcw=ipcw)
            assert M.concordance_index_cr(event, time, risk, 730.0, cause, ipcw=ipcw) == pytest.approx(ref, abs=TOL)


# ----------------------------------------------------------------------------------------------------------------
# every bootstrap resample at once


def _scalar_set(event, time, cif, horizons_days, labels):
    out = {}
    for cause, name in ((1, "relapse"), (2, "trm")):
        for j, (tau, lab) in enumerate(zip(horizons_days, labels, strict=True)):
            f = cif[:, cause, j]
            out[f"{name}_auc_{lab}"] = M.time_dependent_auc(event, time, f, tau, cause)
            out[f"{name}_cindex_{lab}"] = _fenwick_cindex(event, time, f, tau, cause)
            out[f"{name}_brier_{lab}"] = M.brier_score_cr(event, time, f, tau, cause)
            out[f"{name}_ipa_{lab}"] = M.ipa(event, time, f, tau, cause)
    return out


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 70),
    n_times=st.integers(1, 30),
    n_risks=st.integers(1, 8),
)
def test_replicate_metrics_equal_each_resample_evaluated_alone(seed, n, n_times, n_risks):
    rng = np.random.default_rng(seed)
    event, time, _ = _random_data(rng, n, n_times, n_risks)
    cif = rng.integers(0, n_risks, (n, 3, 3)) / max(n_risks - 1, 1)
    hd, labels = np.array([4.0, 12.0, 40.0]), ["a", "b", "c"]
    boot = rng.integers(0, n, (6, n))
    reps = M.replicate_metrics(event, time, cif, hd, labels, M.resample_counts(boot, n))
    for b, idx in enumerate(boot):
        ref = _scalar_set(event[idx], time[idx], cif[idx], hd, labels)
        assert set(ref) == set(reps)
        for name, value in ref.items():
            assert _same(reps[name][b], value), (name, b, reps[name][b], value)


def test_replicate_metrics_chunks_give_the_same_values():
    rng = np.random.default_rng(5)
    n = 300
    event, time = rng.integers(0, 3, n), rng.exponential(500, n).round() + 1
    cif = rng.uniform(0, 0.6, (n, 3, 2))
    counts = M.resample_counts(rng.integers(0, n, (9, n)), n)
    whole = M.replicate_metrics(event, time, cif, [365.0, 730.0], ["12m", "24m"], counts)
    chunked = M.replicate_metrics(event, time, cif, [365.0, 730.0], ["12m", "24m"], counts, chunk=2 * n)
    for name in whole:  # equal up to the order of floating-point sums
        np.testing.assert_allclose(whole[name], chunked[name], rtol=0, atol=TOL)


def test_resample_counts():
    counts = M.resample_counts(np.array([[0, 0, 2], [1, 2, 2]]), 4)
    np.testing.assert_array_equal(counts, [[2, 0, 1, 0], [0, 1, 2, 0]])
    with pytest.raises(ValueError, match="indices"):
        M.resample_counts(np.array([[0, 4]]), 4)


def test_pooled_metrics_replicates_equal_evaluate_on_each_resample(synthetic_cohort):
    """What the training job logs: the CI replicates of the pooled out-of-fold predictions, as the former
    per-resample ``evaluate`` calls computed them."""
    out = synthetic_cohort.outcomes
    n = len(out)
    rng = np.random.default_rng(3)
    f1 = rng.uniform(0.1, 0.7, (n, 1)) * np.array([0.6, 0.8, 0.9, 1.0])
    f2 = rng.uniform(0.0, 0.2, (n, 1)) * np.array([0.6, 0.8, 0.9, 1.0])
    cif = np.stack([1 - f1 - f2, f1, f2, 1 - 0.5 * f1 - f2], axis=1)
    horizons = [12.0, 24.0, 36.0, 60.0]
    boot = V.bootstrap_indices(out["event"].to_numpy(), 8, seed=1)
    metrics, replicates = V.pooled_metrics(out, cif, horizons, boot)
    for b, idx in enumerate(boot):
        ref = V.evaluate(out.iloc[idx].reset_index(drop=True), cif[idx], horizons)
        for name, value in ref.items():
            assert _same(replicates[name][b], value), (name, b)
    for name in ref:
        vals = np.asarray(replicates[name])
        lo, hi = np.percentile(vals[np.isfinite(vals)], [2.5, 97.5])
        assert metrics[f"{name}_lower"] == lo and metrics[f"{name}_upper"] == hi


def test_tuning_score_is_the_mean_brier_of_evaluate(synthetic_cohort):
    out = synthetic_cohort.outcomes
    n = len(out)
    rng = np.random.default_rng(4)
    f1, f2 = rng.uniform(0.1, 0.6, (n, 2)), rng.uniform(0.0, 0.2, (n, 2))
    cif = np.stack([1 - f1 - f2, f1, f2, 1 - f1 - f2], axis=1)
    m = V.evaluate(out, cif, [12.0, 24.0])
    expected = float(np.mean([v for k, v in m.items() if "_brier_" in k and np.isfinite(v)]))
    assert V.score_for_tuning(out, cif, [12.0, 24.0]) == expected


def test_calibration_without_table_has_the_same_measures():
    rng = np.random.default_rng(8)
    n = 500
    event, time = rng.integers(0, 3, n), rng.exponential(500, n).round() + 1
    pred = rng.uniform(0.05, 0.8, n)
    full = M.calibration_cr(event, time, pred, 600.0, 1)
    light = M.calibration_cr(event, time, pred, 600.0, 1, table=False)
    assert (light.ici, light.slope, light.intercept, light.e90) == (full.ici, full.slope, full.intercept, full.e90)
    assert light.table.empty and list(light.table.columns) == list(full.table.columns)
    assert isinstance(light.curve, pd.DataFrame)


def test_optimism_of_one_refit_equals_two_evaluations(synthetic_cohort):
    """One prediction of the original cohort, weighted by the resample's counts, gives the metrics of the
    resample's own prediction (as the optimism correction computed them before)."""
    from nbrisk.training.config import ModelSpec

    rec, out = synthetic_cohort.records, synthetic_cohort.outcomes
    spec = ModelSpec(name="cox", family="CauseSpecificCox", params={"alpha": 30.0})
    horizons = [12.0, 24.0, 60.0]
    idx = V.bootstrap_indices(out["event"].to_numpy(), 1, seed=2)[0]
    got = V._optimism(spec, spec.candidates()[0], rec, out, horizons, 0, idx)
    rec_b, out_b = rec.iloc[idx].reset_index(drop=True), out.iloc[idx].reset_index(drop=True)
    model_b = V.fit_candidate(spec, spec.candidates()[0], rec_b, out_b, 0, evaluate_on=[rec])
    m_boot = V.evaluate(out_b, V.predict_states(model_b, rec_b, horizons), horizons)
    m_orig = V.evaluate(out, V.predict_states(model_b, rec, horizons), horizons)
    assert set(got) == set(m_boot)
    for name in got:
        assert _same(got[name], m_boot[name] - m_orig[name]), name
