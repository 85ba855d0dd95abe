"""Closed-form kernels of the cause-specific Cox model: many fitted models × many patients at once.

The cause-specific Cox family (:mod:`nbrisk.models.cox`) predicts through these functions, and they are what makes
bootstrap intervals cheap: a fit and its bootstrap replicates share one grid of event times (a resample's event
times are a subset of the original ones), so their baselines stack into one array and every replicate is evaluated
for every patient with a few array operations instead of one prediction call per replicate.

* :func:`stacked_cause_specific_cif` — the exact product-limit CIFs (the point estimate);
* :func:`binned_cause_specific_cif` / :func:`binned_chunk` — the binned second-order approximation used for the
  replicates (their Monte-Carlo spread is far larger than its error);
* :class:`CoxReplicateStack` — the fast bootstrap-replicate hook of :class:`~nbrisk.models.cox.CauseSpecificCox`
  (:meth:`nbrisk.models._base.CompetingRisksEstimator.replicate_stack`), used by the illness–death model.
"""

from __future__ import annotations

import numpy as np

from nbrisk.models._base import cif_from_cause_specific_hazards

#: Linear predictors are clipped here before exp(): only reached by diverged fits (separation, β → ∞), where the
#: hazard increments are then > 1 and rescaled; it prevents overflow to inf (and inf × 0 = NaN).
LP_CLIP = 700.0
#: Patients × event times per chunk of the exact CIF (~2 MB per array: stays in cache).
_CHUNK_CELLS = 250_000
_BINNED_CHUNK_CELLS = 200_000


def cox_linear_predictors(coef: np.ndarray, intercept: np.ndarray, X: np.ndarray) -> np.ndarray:
    """(R, P, 2, n) linear predictors β_rqkᵀ x_i − c_rk of R fitted models, P periods, 2 causes, n patients.

    ``coef`` (R, P, 2, p): each model's log hazard ratios in each period of time (P = 1 without time-varying effects);
    ``intercept`` (R, 2): the part of the linear predictor of the baseline's reference point (β·centre).
    """
    R, P, K, p = coef.shape
    lp = (coef.reshape(R * P * K, p) @ X.T).reshape(R, P, K, X.shape[0])  # BLAS (einsum here is ~10× slower)
    return lp - intercept[:, None, :, None]


def periods_of(times: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Period index of each time: period q covers (knot_{q−1}, knot_q] (knot_{−1} = −∞, knot_P = ∞)."""
    return np.searchsorted(np.asarray(knots, dtype=float), np.asarray(times, dtype=float), side="left")


def stacked_cause_specific_cif(
    grid: np.ndarray,
    baseline: np.ndarray,
    lp: np.ndarray,
    times: np.ndarray,
    strata_index: np.ndarray | None = None,
    knots: np.ndarray | None = None,
) -> np.ndarray:
    """CIFs of R fitted cause-specific Cox models for n patients at once, exact product-limit form.

    Parameters
    ----------
    grid : (m,) sorted distinct event times shared by all replicates.
    baseline : (R, S, 2, m) baseline hazard increments per replicate, stratum and cause on ``grid``.
    lp : (R, P, 2, n) linear predictors per replicate, period, cause and patient (:func:`cox_linear_predictors`).
    times : (k,) evaluation times (same unit as ``grid``).
    strata_index : (n,) stratum index of each patient (0 if unstratified).
    knots : (P − 1,) times at which time-varying effects change (:func:`periods_of`); None when P = 1.

    Returns
    -------
    (R, n, 3, k): event-free, cause 1, cause 2. Only event times ≤ max(times) are used (later ones cannot matter).

    The result is that of :func:`nbrisk.models._base.cif_from_cause_specific_hazards` on the increments
    ΔΛ_k(u | x) = h_k(u) r_k(x, u), r_k = exp(lp of the period of u), computed with fewer passes over the
    (patients × event times) array: with the hazards factorised, F_k(t | x) = Σ_q r_kq(x) Σ_{u ≤ t, u in q}
    EFS(u− | x) h_k(u) is one matrix product of the EFS matrix with the masked baselines (BLAS), instead of a
    cumulative sum per patient and cause. A chunk in which a patient's total increment exceeds 1 (diverged fits
    only) falls back to the general function, which rescales and warns.
    """
    times = np.asarray(times, dtype=float)
    R, P, _, n = lp.shape
    sidx = np.zeros(n, dtype=int) if strata_index is None else np.asarray(strata_index, dtype=int)
    out = np.empty((R, n, 3, len(times)))
    risk = None
    for s in np.unique(sidx):
        rows = np.flatnonzero(sidx == s)
        for r in range(R):
            plan = ExactCifPlan(grid, baseline[r, s], times, knots, P)
            if plan.m == 0:
                out[r, rows, 0], out[r, rows, 1:] = 1.0, 0.0
                continue
            if risk is None:
                risk = np.exp(np.clip(lp, -LP_CLIP, LP_CLIP))
            for a in range(0, len(rows), plan.step):
                ids = rows[a : a + plan.step]
                out[r, ids] = plan(risk[r, :, 0, ids].T, risk[r, :, 1, ids].T)
    return out


class ExactCifPlan:
    """The part of :func:`stacked_cause_specific_cif` that does not depend on the patients, for one fitted model
    (one replicate, one stratum) and one set of evaluation times; calling it on the hazard ratios of a chunk of
    patients gives their CIFs.

    Built once per call of that function, or once per set of times and kept by :class:`CoxReplicateStack`: the
    service asks for the same horizons again and again, and for one patient building these masks and segments is
    most of the exact product-limit's cost. Read-only once built (shared by the service's threads).

    Parameters
    ----------
    grid : (m,) sorted event times. baseline : (2, m) baseline hazard increments of the two causes on ``grid``.
    times : (k,) evaluation times. knots : (P − 1,) knots of time-varying effects (None when P = 1).
    """

    def __init__(self, grid: np.ndarray, baseline: np.ndarray, times: np.ndarray, knots, P: int):
        times = np.asarray(times, dtype=float)
        keep = int(np.searchsorted(grid, times.max(), side="right")) if len(times) else 0
        grid = grid[:keep]
        m, k = keep, len(times)
        self.m, self.k, self.P = m, k, P
        if m == 0:
            return
        per = np.zeros(m, dtype=int) if P == 1 else periods_of(grid, np.asarray(knots, dtype=float))
        self.seg = seg = [
            slice(int(a), int(b))
            for a, b in zip(
                np.searchsorted(per, np.arange(P), side="left"),
                np.searchsorted(per, np.arange(P), side="right"),
                strict=True,
            )
        ]
        col = np.searchsorted(grid, times, side="right") - 1  # last event time ≤ t
        self.before = col < 0
        self.any_before = bool(self.before.any())
        upto = grid[:, None] <= times[None, :]  # (m, k)
        h1, h2 = baseline[0, :keep], baseline[1, :keep]
        self.grid, self.times, self.h1, self.h2 = grid, times, h1, h2
        self.h1_seg = [h1[sl] for sl in seg]
        self.h2_seg = [h2[sl] for sl in seg]
        # Σ_{u ≤ t, u in q} EFS(u−) h(u) = Σ_j EFS(u_{j−1}) h(u_j) 1{u_j ≤ t, u_j in q}  (EFS(u_{−1}) = 1)
        by_period = np.zeros((m, P, 2, k))
        for q in range(P):
            by_period[seg[q], q, 0] = h1[seg[q], None] * upto[seg[q]]
            by_period[seg[q], q, 1] = h2[seg[q], None] * upto[seg[q]]
        masked = by_period.reshape(m, P * 2 * k)
        self.masked_first, self.masked_rest = masked[0], masked[1:]
        self.step = max(1, _CHUNK_CELLS // m)  # patients per call that keep the (c, m) array in cache

    def __call__(self, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
        """(c, 3, k) event-free, cause 1, cause 2 for hazard ratios ``r1``, ``r2`` (P, c) per period and patient."""
        P, k, seg = self.P, self.k, self.seg
        c = r1.shape[1]
        out = np.empty((c, 3, k))
        if self.m == 0:
            out[:, 0], out[:, 1:] = 1.0, 0.0
            return out
        efs = np.empty((c, self.m))
        for q in range(P):
            np.multiply.outer(r1[q], self.h1_seg[q], out=efs[:, seg[q]])
            efs[:, seg[q]] += np.multiply.outer(r2[q], self.h2_seg[q])
        if efs.max(initial=0.0) > 1.0:
            dh1 = np.concatenate([np.multiply.outer(r1[q], self.h1_seg[q]) for q in range(P)], axis=1)
            dh2 = np.concatenate([np.multiply.outer(r2[q], self.h2_seg[q]) for q in range(P)], axis=1)
            return cif_from_cause_specific_hazards(self.grid, dh1, dh2, self.times)
        np.subtract(1.0, efs, out=efs)
        np.cumprod(efs, axis=1, out=efs)
        g = (efs[:, :-1] @ self.masked_rest + self.masked_first).reshape(c, P, 2, k)
        f1 = np.clip(np.einsum("qc,cqk->ck", r1, g[:, :, 0]), 0.0, 1.0)
        f2 = np.clip(np.einsum("qc,cqk->ck", r2, g[:, :, 1]), 0.0, 1.0)
        if self.any_before:
            f1[:, self.before], f2[:, self.before] = 0.0, 0.0
        out[:, 1], out[:, 2] = f1, f2
        out[:, 0] = np.clip(1.0 - f1 - f2, 0.0, 1.0)
        return out


def binned_hazard_moments(grid: np.ndarray, baseline: np.ndarray, edges: np.ndarray) -> dict:
    """Per-bin sums of baseline hazard increments for :func:`binned_cause_specific_cif`.

    ``edges`` (nb,) sorted bin right-ends; bin b = (edges[b−1], edges[b]] (bin 0 starts at −∞); event times after
    edges[-1] are ignored. ``baseline`` (R, S, 2, m) on ``grid`` (m,). Returns dict of (R, S, nb) arrays H1, H2 (sums
    of h1, h2) and Q11, Q12, Q22 (sums of h1², h1·h2, h2²).
    """
    keep = int(np.searchsorted(grid, edges[-1], side="right"))
    grid, baseline = grid[:keep], baseline[..., :keep]
    nb = len(edges)
    if keep == 0:
        z = np.zeros((*baseline.shape[:2], nb))
        return dict(H1=z, H2=z, Q11=z, Q12=z, Q22=z)
    bin_of = np.searchsorted(edges, grid, side="left")  # event time u → bin (e_{b-1}, e_b]
    starts = np.searchsorted(bin_of, np.arange(nb), side="left")
    nonempty = starts < np.append(starts[1:], keep)  # (reduceat returns v[start] for an empty segment)
    seg = np.minimum(starts, keep - 1)

    def per_bin(v):
        return np.where(nonempty, np.add.reduceat(v, seg, axis=-1), 0.0)

    h1, h2 = baseline[..., 0, :], baseline[..., 1, :]
    return dict(H1=per_bin(h1), H2=per_bin(h2), Q11=per_bin(h1 * h1), Q12=per_bin(h1 * h2), Q22=per_bin(h2 * h2))


def binned_chunk(moments: dict, lp1: np.ndarray, lp2: np.ndarray, sidx: np.ndarray | None = None):
    """EFS, F1, F2 at every bin edge for a chunk of patients: (R, c, nb) each, from linear predictors (R, c, nb)
    per bin (or (R, c) when constant over time)."""
    if lp1.ndim == 2:
        lp1, lp2 = lp1[..., None], lp2[..., None]
    # clipped so that r² stays finite (diverged replicates only)
    r1 = np.exp(np.clip(lp1, -LP_CLIP / 2, LP_CLIP / 2))
    r2 = np.exp(np.clip(lp2, -LP_CLIP / 2, LP_CLIP / 2))

    def g(name):  # (R, S, nb) → broadcastable to (R, c, nb)
        v = moments[name]
        if v.shape[1] == 1:
            return v
        return v[np.arange(v.shape[0])[:, None], sidx]

    z1, z2 = g("H1") * r1, g("H2") * r2
    tot = z1 + z2
    log_s = -tot - 0.5 * (r1 * r1 * g("Q11") + 2.0 * r1 * r2 * g("Q12") + r2 * r2 * g("Q22"))
    efs = np.exp(np.cumsum(np.minimum(log_s, 0.0), axis=-1))
    # −diff(efs) with EFS = 1 before the first bin, in float64 as np.diff(..., prepend=1.0) computes it
    e64 = efs.astype(np.float64)
    mass = np.empty(e64.shape)
    np.subtract(e64[..., :1], 1.0, out=mass[..., :1])
    np.subtract(e64[..., 1:], e64[..., :-1], out=mass[..., 1:])
    np.negative(mass, out=mass)
    share1 = np.divide(z1, tot, out=np.zeros_like(tot), where=tot > 0)
    f1 = np.cumsum(mass * share1, axis=-1)
    f1 = np.minimum(f1, 1.0 - efs)  # round-off guard: F2 = 1 − EFS − F1 ≥ 0
    return efs, f1, 1.0 - efs - f1


def binned_cause_specific_cif(
    grid: np.ndarray,
    baseline: np.ndarray,
    lp: np.ndarray,
    times: np.ndarray,
    strata_index: np.ndarray | None = None,
    knots: np.ndarray | None = None,
    n_bins: int = 100,
) -> np.ndarray:
    """Fast approximation of :func:`stacked_cause_specific_cif` on bins of event times (for bootstrap replicates).

    The event times ≤ max(times) are grouped into bins whose edges are the requested times, the knots of
    time-varying effects (so that a bin lies in one period) plus, if ``n_bins`` > 0, every ⌈m / n_bins⌉-th event
    time. Within a bin b with baseline increments h_k(u):

    * the event-free factor Π_u (1 − r1 h1(u) − r2 h2(u)) is evaluated as exp(Σ_u log(1 − z_u)) with the log expanded
      to second order: −(r1 H1 + r2 H2) − ½ (r1² Q11 + 2 r1 r2 Q12 + r2² Q22), where H_k = Σ_u h_k(u) and
      Q_ab = Σ_u h_a(u) h_b(u) are per-bin sums computed once for all patients (error ~ ⅓ Σ_u z_u³);
    * the bin's event mass 1 − factor is split between the causes in proportion r_k H_k (exact when the two
      baseline hazards have the same shape within the bin).

    So every patient costs O(bins) instead of O(m) per replicate, and F1 + F2 + EFS = 1 still holds exactly.
    Measured against the exact form (n = 1,000, ~700 distinct event times, horizons 1–5 years): max abs error
    1.3e-3 with 100 bins, 4e-4 with one event time per bin. The point estimate keeps the exact product-limit
    (:func:`stacked_cause_specific_cif`); this is for the bootstrap replicates, whose Monte-Carlo spread (B ≈ 50) is
    far larger than the approximation.

    ``lp`` (R, P, 2, n) as in :func:`stacked_cause_specific_cif`. Returns (R, n, 3, k).
    """
    times = np.asarray(times, dtype=float)
    R, P, _, n = lp.shape
    k = len(times)
    out = np.empty((R, n, 3, k))
    keep = int(np.searchsorted(grid, times.max(), side="right")) if k else 0
    if keep == 0:
        out[:, :, 0], out[:, :, 1:] = 1.0, 0.0
        return out
    edges = times[times >= grid[0]]
    if n_bins > 0:
        step = max(1, int(np.ceil(keep / n_bins)))
        edges = np.union1d(grid[:keep][step - 1 :: step], edges)
    if P > 1:
        knots = np.asarray(knots, dtype=float)
        edges = np.union1d(edges, knots[(knots >= grid[0]) & (knots < times.max())])
    edges = np.unique(edges)
    per_bin = np.zeros(len(edges), dtype=int) if P == 1 else periods_of(edges, np.asarray(knots, dtype=float))
    moments = binned_hazard_moments(grid, baseline, edges)
    sidx = np.zeros(n, dtype=int) if strata_index is None else np.asarray(strata_index, dtype=int)
    col = np.searchsorted(edges, times, side="right") - 1  # last bin edge ≤ t
    before = col < 0
    c = np.clip(col, 0, None)
    # small chunks keep the (R, chunk, bins) temporaries in cache
    step = max(1, _BINNED_CHUNK_CELLS // max(1, R * len(edges)))
    for a in range(0, n, step):
        b = min(n, a + step)
        if P == 1:
            lp1, lp2 = lp[:, 0, 0, a:b], lp[:, 0, 1, a:b]
        else:  # (R, c, nb): the linear predictor of each bin's period
            lp1 = np.moveaxis(lp[:, per_bin, 0, a:b], 1, 2)
            lp2 = np.moveaxis(lp[:, per_bin, 1, a:b], 1, 2)
        efs, f1, f2 = binned_chunk(moments, lp1, lp2, sidx[a:b])
        out[:, a:b, 0] = np.where(before, 1.0, efs[..., c])
        out[:, a:b, 1] = np.where(before, 0.0, f1[..., c])
        out[:, a:b, 2] = np.where(before, 0.0, f2[..., c])
    return out


class CoxReplicateStack:
    """The main fit and the bootstrap replicates of a cause-specific Cox model, stacked for closed-form evaluation.

    ``members``: fitted :class:`~nbrisk.models.cox.CauseSpecificCox` models, the fit on all data first, unstratified
    and with the same knots of time-varying effects (what :meth:`CauseSpecificCox.replicate_stack` checks). Their
    baselines are put on the main fit's grid of event times, shape (R, 1, 2, m).
    """

    def __init__(self, members: list):
        grid = members[0].event_times_
        base = np.zeros((len(members), 1, 2, len(grid)))
        for r, cr in enumerate(members):
            base[r, :, :, np.searchsorted(grid, cr.event_times_)] = np.moveaxis(cr.baseline_hazard_, -1, 0)
        self.grid, self.baseline = grid, base
        self.coef = np.stack([cr.coef_by_period_ for cr in members])  # (R, P, 2, p)
        self.intercept = np.stack([cr.intercept_ for cr in members])  # (R, 2)
        self.knots = members[0].knots_
        self._cache: dict = {}

    def extra_edges(self, t_max: float) -> np.ndarray:
        """Bin edges the caller must add below ``t_max``: the knots, so that a bin lies within one period."""
        return self.knots[self.knots < t_max]

    def evaluate(self, X, Xa: np.ndarray, edges: np.ndarray, n_members: int):
        """The main fit's exact CIFs at ``edges`` (n, 3, E), and (when ``n_members`` > 1) a callable giving the first
        ``n_members − 1`` replicates' EFS and F1 at the edges chunk by chunk (:class:`_BinnedReplicates`)."""
        lp = cox_linear_predictors(self.coef[:n_members], self.intercept[:n_members], Xa)  # (R, P, 2, n)
        plan = self.plan(edges)
        n = Xa.shape[0]
        main = np.empty((n, 3, len(edges)))
        exact = plan.exact
        if exact.m == 0:
            main[:, 0], main[:, 1:] = 1.0, 0.0
        else:
            risk = np.exp(np.clip(lp[0], -LP_CLIP, LP_CLIP))  # (P, 2, n)
            for a in range(0, n, exact.step):
                b = min(n, a + exact.step)
                main[a:b] = exact(risk[:, 0, a:b], risk[:, 1, a:b])
        if n_members == 1:
            return main, None
        return main, _BinnedReplicates(plan, lp[1:])

    def plan(self, edges: np.ndarray) -> _EdgesPlan:
        """What does not depend on the patients for one set of bin edges, cached per set of edges (the same horizons
        are asked for again and again): the main fit's :class:`ExactCifPlan` and the replicates' per-bin baseline
        sums (float32)."""
        key = edges.tobytes()
        plan = self._cache.get(key)
        if plan is None:
            if len(self._cache) >= 16:
                self._cache.clear()
            plan = _EdgesPlan(
                exact=ExactCifPlan(self.grid, self.baseline[0, 0], edges, self.knots, self.coef.shape[1]),
                moments=self.binned_moments(edges) if len(self.baseline) > 1 else {},
                per_bin=periods_of(edges, self.knots),
            )
            self._cache[key] = plan
        return plan

    def binned_moments(self, edges: np.ndarray) -> dict:
        """Per-bin baseline sums of the replicates on ``edges``, as (E, R − 1, 1) float32 arrays."""
        moments = binned_hazard_moments(self.grid, self.baseline[1:], edges)
        return {
            name: np.ascontiguousarray(np.moveaxis(v[:, 0, :], -1, 0)[:, :, None], dtype=np.float32)
            for name, v in moments.items()
        }

    def __getstate__(self):
        return {**self.__dict__, "_cache": {}}  # derived, rebuilt on demand


class _EdgesPlan:
    """Patient-independent arrays of :meth:`CoxReplicateStack.evaluate` for one set of bin edges (read-only)."""

    def __init__(self, exact: ExactCifPlan, moments: dict, per_bin: np.ndarray):
        self.exact, self.moments, self.per_bin = exact, moments, per_bin
        self.small_moments = {key: v.transpose(1, 2, 0) for key, v in moments.items()}


class _BinnedReplicates:
    """EFS and F1 of the Cox bootstrap replicates at the bin edges, one chunk of patients at a time, in float32.

    The binned closed form of :func:`binned_chunk` (second-order expansion of the log event-free
    factor within a bin, the bin's event mass shared in proportion r_k H_k). For a few patients it calls that
    function; for many it is written as a loop over the bins on (replicates × patients) arrays, which stay in cache,
    instead of cumulative sums along a short last axis.
    Linear predictors are clipped to ±40 (hazard ratio e⁴⁰: only diverged replicates) so that r² stays finite in
    float32.
    """

    def __init__(self, plan: _EdgesPlan, lp: np.ndarray):
        self.m = plan.moments  # per-bin sums, (E, R, 1) float32 (CoxReplicateStack.binned_moments)
        self.small_moments = plan.small_moments  # the same as (R, 1, E) views, for binned_chunk
        self.lp = np.clip(lp, -40.0, 40.0).astype(np.float32)  # (R, P, 2, n)
        self.per_bin = plan.per_bin  # (E,) period of each bin
        # output arrays reused from chunk to chunk (same shape but the last): no fresh pages to fault in every time
        self._buffers: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, a: int, b: int, small: bool):
        m = self.m
        if small:  # few patients: binned_chunk on whole arrays
            lp = np.moveaxis(self.lp[:, self.per_bin, :, a:b], 1, -1)  # (R, 2, c, E): each bin's period
            efs, f1, _ = binned_chunk(self.small_moments, lp[:, 0], lp[:, 1])
            return efs.transpose(2, 0, 1), f1.transpose(2, 0, 1)
        R1 = np.exp(self.lp[:, :, 0, a:b]).swapaxes(0, 1)  # (P, R, c)
        R2 = np.exp(self.lp[:, :, 1, a:b]).swapaxes(0, 1)
        E = m["H1"].shape[0]
        # minus the second-order terms of the log event-free factor: −½ r1², −r1 r2, −½ r2² (times Q11, Q12, Q22)
        N11, N12, N22 = -0.5 * R1 * R1, -R1 * R2, -0.5 * R2 * R2
        shape = (E, *R1.shape[1:])
        if self._buffers is None or self._buffers[0].shape != shape:
            self._buffers = (np.empty(shape, dtype=np.float32), np.empty(shape, dtype=np.float32))
        efs_out, f1_out = self._buffers
        efs = np.ones_like(R1[0])
        f1 = np.zeros_like(efs)
        z1, tot, ls, tmp = (np.empty_like(efs) for _ in range(4))
        for e in range(E):
            q = self.per_bin[e]
            np.multiply(m["H1"][e], R1[q], out=z1)
            np.multiply(m["H2"][e], R2[q], out=tot)
            tot += z1
            # log event-free factor of the bin: −(r1 H1 + r2 H2) − ½ (r1² Q11 + 2 r1 r2 Q12 + r2² Q22) (every term ≤ 0)
            np.multiply(m["Q11"][e], N11[q], out=ls)
            ls += np.multiply(m["Q12"][e], N12[q], out=tmp)
            ls += np.multiply(m["Q22"][e], N22[q], out=tmp)
            ls -= tot
            np.exp(ls, out=ls)
            new = efs_out[e]
            np.multiply(ls, efs, out=new)  # EFS at the bin's end
            np.subtract(efs, new, out=tmp)  # the bin's event mass, shared in proportion r1 H1 : r2 H2
            np.maximum(tot, 1e-30, out=tot)  # tot = 0 only where z1 = 0
            np.divide(z1, tot, out=z1)
            tmp *= z1
            f1 += tmp
            f1_out[e] = f1  # (F2 = 1 − EFS − F1 is clipped at 0 by the caller: round-off only)
            efs = new
        return efs_out, f1_out
