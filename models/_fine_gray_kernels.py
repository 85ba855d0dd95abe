"""Closed-form evaluation of Fine–Gray bootstrap replicates: the fast replicate hook of
:class:`~nbrisk.models.fine_gray.FineGray` (:meth:`nbrisk.models._base.CompetingRisksEstimator.replicate_stack`).

Each replicate's CIFs are 1 − exp(−Λ̃_k0(t) exp(γ_kᵀ(x − c_k))), so all replicates are evaluated for all patients
with a few array operations instead of one prediction call per replicate; the illness–death model uses this for its
bootstrap intervals.
"""

from __future__ import annotations

import numpy as np

from nbrisk.models._base import step_lookup
from nbrisk.models._cox_kernels import LP_CLIP


class FineGrayReplicateStack:
    """The main fit and the bootstrap replicates of a Fine–Gray model (fitted :class:`FineGray` members, the fit on
    all data first)."""

    def __init__(self, members: list):
        self.members = members
        self._cache: dict = {}

    def extra_edges(self, t_max: float) -> np.ndarray:
        """No bin edges beyond the caller's: the model has no time-varying effects."""
        return np.empty(0)

    def evaluate(self, X, Xa: np.ndarray, edges: np.ndarray, n_members: int):
        """The main fit's CIFs at ``edges`` (n, 3, E), and (when ``n_members`` > 1) a callable giving the first
        ``n_members − 1`` replicates' EFS and F1 at the edges chunk by chunk (:class:`_FineGrayReplicates`)."""
        main = self.members[0].predict_cumulative_incidence(X, edges)
        if n_members == 1:
            return main, None
        reps = self.members[1:n_members]
        key = (len(reps), edges.tobytes())
        if key not in self._cache:  # what depends on the replicates and the edges only: asked for again and again
            if len(self._cache) >= 16:
                self._cache.clear()
            self._cache[key] = _FineGrayReplicates.tables(reps, edges)
        return main, _FineGrayReplicates(self._cache[key], Xa)

    def __getstate__(self):
        return {**self.__dict__, "_cache": {}}  # derived, rebuilt on demand


class _FineGrayReplicates:
    """EFS and F1 of Fine–Gray bootstrap replicates at the bin edges, all replicates at once in closed form.

    F_k(t | x) = 1 − exp(−Λ̃_k0(t) exp(γ_kᵀ(x − c_k))) for every replicate and patient; the few (replicate, patient)
    pairs whose uncapped F1 + F2 exceeds 1 by the last edge are capped as the replicate itself caps them (the rule
    of :func:`nbrisk.models.fine_gray.coherent_cifs`: at the first event time where the sum exceeds 1 — found by
    bisection, the sum being monotone — the increments are scaled to reach 1, then both stay constant), so the
    result equals each replicate's ``predict_cumulative_incidence``. Returned in float32, (E, R, c), like
    :class:`nbrisk.models._cox_kernels._BinnedReplicates` (``small`` is accepted for the same call signature).
    """

    @staticmethod
    def tables(members: list, edges: np.ndarray) -> dict:
        """What depends on the replicates and the edges only (cached by the caller per set of edges)."""
        # every replicate's baselines on the union of their event times ≤ the last edge (for the capping: values
        # only change at a replicate's own event times, so its first crossing of 1 is the same on this grid)
        grid = np.unique(np.concatenate([m.event_times_ for m in members]))
        grid = grid[grid <= edges[-1]]
        coef = np.stack([m.coef_ for m in members])  # (R, 2, p)
        return dict(
            edges=edges,
            grid=grid,
            coef=coef,
            offset=np.einsum("rkp,rkp->rk", coef, np.stack([m.center_ for m in members])),
            cum=np.stack([step_lookup(m.event_times_, m.cumulative_baseline_, edges, 0.0) for m in members]),
            cum_grid=np.stack([step_lookup(m.event_times_, m.cumulative_baseline_, grid, 0.0) for m in members]),
            col=np.searchsorted(grid, edges, side="right") - 1,  # last grid time ≤ each edge
        )

    def __init__(self, tables: dict, Xa: np.ndarray):
        self.edges, self.grid, self.cum, self.cum_grid, self.col = (
            tables[k] for k in ("edges", "grid", "cum", "cum_grid", "col")
        )
        coef = tables["coef"]
        lp = (coef.reshape(-1, coef.shape[-1]) @ Xa.T).reshape(*coef.shape[:2], -1)
        self.risk = np.exp(np.clip(lp - tables["offset"][:, :, None], -LP_CLIP, LP_CLIP))

    def __call__(self, a: int, b: int, small: bool = False):
        f = -np.expm1(-self.cum[:, :, None, :] * self.risk[:, :, a:b, None])  # (R, 2, c, E)
        bad = f[:, 0, :, -1] + f[:, 1, :, -1] > 1.0  # (R, c): F1 + F2 only grows with time
        r, i = np.nonzero(bad)
        if len(r):  # the capped pairs: the rule of coherent_cifs, with the first crossing found by bisection
            r1, r2 = self.risk[r, 0, a + i], self.risk[r, 1, a + i]

            def raw(j):  # uncapped (F1, F2) of every pair at grid index j (pairs,)
                jj = np.maximum(j, 0)
                g1 = -np.expm1(-self.cum_grid[r, 0, jj] * r1)
                g2 = -np.expm1(-self.cum_grid[r, 1, jj] * r2)
                return np.where(j >= 0, g1, 0.0), np.where(j >= 0, g2, 0.0)

            lo, hi = np.zeros(len(r), dtype=int), np.full(len(r), len(self.grid) - 1)
            while np.any(lo < hi):  # F1 + F2 only grows: the first grid index where it exceeds 1
                mid = (lo + hi) // 2
                g1, g2 = raw(mid)
                over = g1 + g2 > 1.0
                hi, lo = np.where(over, mid, hi), np.where(over, lo, mid + 1)
            p1, p2 = raw(lo - 1)
            c1, c2 = raw(lo)
            d = (c1 - p1) + (c2 - p2)
            scale = np.divide(1.0 - p1 - p2, d, out=np.zeros_like(d), where=d > 0)
            after = self.col[None, :] >= lo[:, None]  # (pairs, E): from the crossing on, both CIFs stay constant
            f[r, 0, i] = np.where(after, (p1 + (c1 - p1) * scale)[:, None], f[r, 0, i])
            f[r, 1, i] = np.where(after, (p2 + (c2 - p2) * scale)[:, None], f[r, 1, i])
        efs = np.clip(1.0 - f[:, 0] - f[:, 1], 0.0, 1.0)
        return (
            np.ascontiguousarray(efs.transpose(2, 0, 1), dtype=np.float32),
            np.ascontiguousarray(f[:, 0].transpose(2, 0, 1), dtype=np.float32),
        )
