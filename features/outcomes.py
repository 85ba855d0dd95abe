"""Outcome derivation: from the outcome dates of the record contract to competing-risks targets.

Day 0 is ``date_hsct`` (the allogeneic graft infusion); every time is in **days** from day 0.

* Competing risks (primary endpoints): ``event`` = :attr:`Cause.RELAPSE` at ``date_relapse`` when present;
  otherwise :attr:`Cause.TRM` at ``date_death`` (transplant-related mortality = death without prior relapse or
  progression); otherwise :attr:`Cause.CENSORED` at ``date_last_followup``.
* Event-free survival: first of relapse or death. Overall survival: death from any cause.
* Post-relapse survival (the second transition of the illness–death model, relapse → death): from ``date_relapse``
  to ``date_death`` or last follow-up.

Every time is made strictly positive: an event or censoring on day 0 (or a death on the day of relapse for
post-relapse survival) counts as 0.5 days, the usual convention so that estimators requiring ``time > 0`` keep the
patient at risk for half a day rather than dropping them.

Impossible sequences (relapse at or before day 0, death before relapse, follow-up ending before an event, ...) are
reported as :class:`~nbrisk.features.record.Problem` by :func:`outcome_problems`, which the validator calls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nbrisk.core import Cause
from nbrisk.features.record import CohortValidationError, Problem, display_value

#: Time (days) given to an event or censoring on day 0 (and to a death on the day of relapse, post-relapse).
DAY_ZERO_TIME = 0.5
_DATE_FIELDS = ("date_hsct", "date_relapse", "date_death", "date_last_followup")

OUTCOME_COLUMNS = (
    "event",
    "time",
    "efs_event",
    "efs_time",
    "os_event",
    "os_time",
    "relapse_time",
    "post_relapse_time",
    "post_relapse_event",
)


def _as_dates(df: pd.DataFrame, name: str) -> np.ndarray:
    """``datetime64[ns]`` values of a date column (NaT where missing); raw ISO strings are parsed."""
    if name not in df.columns:
        return np.full(len(df), np.datetime64("NaT"), dtype="datetime64[ns]")
    col = df[name]
    if not pd.api.types.is_datetime64_any_dtype(col.dtype):
        col = pd.to_datetime(
            col.astype(object).where(col.notna() & (col.astype(str).str.strip() != ""), None),
            format="%Y-%m-%d",
            errors="coerce",
        )
    return col.to_numpy(dtype="datetime64[ns]")


def _days(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """Whole days between two date arrays (NaN where either is missing)."""
    d = (later - earlier).astype("timedelta64[D]").astype(float)
    d[np.isnat(later) | np.isnat(earlier)] = np.nan
    return d


def outcome_problems(df: pd.DataFrame, *, first_row: int = 1, check_missing: bool = False) -> list[Problem]:
    """Impossible or incomplete outcome sequences in ``df`` (typed by the validator, or raw ISO date strings).

    Rules (from the record contract): ``date_hsct`` year equals ``hsct_year``; ``date_relapse`` > ``date_hsct``;
    ``date_death`` ≥ ``date_hsct`` and ≥ ``date_relapse``; ``cause_of_death`` set iff ``date_death`` set;
    ``cause_of_death`` = ``relapse_progression`` requires ``date_relapse``; ``date_last_followup`` ≥ every other
    date and equals ``date_death`` when the patient died. With ``check_missing`` the required ``date_hsct`` and
    ``date_last_followup`` are also checked for presence (the validator reports those itself).

    Returns problems in row order; ``row`` = position + ``first_row``.
    """
    n = len(df)
    hsct, rel, death, fu = (_as_dates(df, f) for f in _DATE_FIELDS)
    cause = (
        df["cause_of_death"].to_numpy(dtype=object)
        if "cause_of_death" in df.columns
        else np.full(n, None, dtype=object)
    )
    cause = np.array(
        [None if (c is None or (isinstance(c, float) and np.isnan(c)) or c == "") else c for c in cause], dtype=object
    )
    ids = df["patient_id"].to_numpy(dtype=object) if "patient_id" in df.columns else np.full(n, None)
    found: list[tuple[int, int, Problem]] = []

    def add(mask: np.ndarray, fields: tuple[str, ...], rule: str) -> None:
        for pos in np.flatnonzero(mask):
            value = ", ".join(f"{f}={display_value(df[f].iat[pos]) if f in df.columns else ''}" for f in fields)
            pid = ids[pos] if isinstance(ids[pos], str) else None
            found.append((int(pos), len(found), Problem(int(pos) + first_row, pid, ",".join(fields), value, rule)))

    has_h, has_r, has_d, has_f = (~np.isnat(a) for a in (hsct, rel, death, fu))
    has_c = np.array([c is not None for c in cause], dtype=bool)
    if check_missing:
        add(~has_h, ("date_hsct",), "required value missing")
        add(~has_f, ("date_last_followup",), "required value missing")

    if "hsct_year" in df.columns:
        year = pd.to_numeric(df["hsct_year"], errors="coerce").to_numpy(dtype=float)
        hsct_year = hsct.astype("datetime64[Y]").astype(int).astype(float) + 1970.0
        add(
            has_h & np.isfinite(year) & (hsct_year != year),
            ("date_hsct", "hsct_year"),
            "the year of date_hsct must equal hsct_year",
        )
    add(
        has_h & has_r & (rel <= hsct),
        ("date_hsct", "date_relapse"),
        "date_relapse must be after date_hsct (relapse/progression after day 0)",
    )
    add(has_h & has_d & (death < hsct), ("date_hsct", "date_death"), "date_death must be on or after date_hsct")
    add(
        has_r & has_d & (death < rel),
        ("date_relapse", "date_death"),
        "date_death must be on or after date_relapse (death before relapse is impossible)",
    )
    add(has_c & ~has_d, ("cause_of_death", "date_death"), "cause_of_death is set but date_death is missing")
    add(
        has_d & ~has_c,
        ("date_death", "cause_of_death"),
        "date_death is set but cause_of_death is missing (use 'unknown' if not known)",
    )
    add(
        (cause == "relapse_progression") & ~has_r,
        ("cause_of_death", "date_relapse"),
        "cause_of_death relapse_progression requires a date_relapse",
    )
    add(
        has_f & has_h & (fu < hsct),
        ("date_last_followup", "date_hsct"),
        "date_last_followup must be on or after date_hsct",
    )
    add(
        has_f & has_r & (fu < rel),
        ("date_last_followup", "date_relapse"),
        "date_last_followup must be on or after date_relapse",
    )
    add(
        has_f & has_d & (fu != death),
        ("date_last_followup", "date_death"),
        "date_last_followup must equal date_death when the patient died",
    )

    found.sort(key=lambda t: (t[0], t[1]))
    return [p for _, _, p in found]


def derive_outcomes(df: pd.DataFrame) -> pd.DataFrame:
    """Derive the competing-risks, EFS, OS and post-relapse targets from the outcome dates.

    Parameters
    ----------
    df : records with ``date_hsct``, ``date_last_followup`` and optionally ``date_relapse``, ``date_death``,
        ``cause_of_death`` (typed by :func:`~nbrisk.features.record.validate_records`, or raw ISO strings).

    Returns
    -------
    DataFrame with the same index and columns

    * ``event`` (int, :class:`~nbrisk.core.Cause` codes), ``time`` (days, float, > 0): the competing-risks target
      ``y`` every estimator takes (``y = outcomes[["event", "time"]]``);
    * ``efs_event`` (1 relapse or death), ``efs_time``; ``os_event`` (1 death), ``os_time`` (days, > 0);
    * ``relapse_time`` (days from HSCT to relapse, NaN without relapse);
    * ``post_relapse_time`` (days from relapse to death or last follow-up, > 0; NaN without relapse) and
      ``post_relapse_event`` (1 death after relapse, else 0).

    Raises
    ------
    CohortValidationError : listing every impossible or incomplete sequence (see :func:`outcome_problems`).
    """
    problems = outcome_problems(df, check_missing=True)
    if problems:
        raise CohortValidationError(problems)
    hsct, rel, death, fu = (_as_dates(df, f) for f in _DATE_FIELDS)
    t_rel, t_death, t_fu = _days(rel, hsct), _days(death, hsct), _days(fu, hsct)
    has_r, has_d = ~np.isnan(t_rel), ~np.isnan(t_death)

    event = np.where(has_r, int(Cause.RELAPSE), np.where(has_d, int(Cause.TRM), int(Cause.CENSORED)))
    time = np.where(has_r, t_rel, np.where(has_d, t_death, t_fu))
    efs_time = np.where(has_r | has_d, np.fmin(t_rel, t_death), t_fu)
    os_time = np.where(has_d, t_death, t_fu)
    post_time = np.where(has_r, np.where(has_d, t_death, t_fu) - t_rel, np.nan)

    def positive(t: np.ndarray) -> np.ndarray:
        return np.where(t <= 0, DAY_ZERO_TIME, t)

    return pd.DataFrame(
        {
            "event": event.astype(int),
            "time": positive(time),
            "efs_event": (has_r | has_d).astype(int),
            "efs_time": positive(efs_time),
            "os_event": has_d.astype(int),
            "os_time": positive(os_time),
            "relapse_time": t_rel,
            "post_relapse_time": np.where(has_r, positive(post_time), np.nan),
            "post_relapse_event": (has_r & has_d).astype(int),
        },
        index=df.index,
    )
