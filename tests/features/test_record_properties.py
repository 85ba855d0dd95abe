"""Property tests (hypothesis): any record built within the contract validates, as JSON or as CSV text, and the
derived outcomes are always consistent."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from nbrisk.core import Cause
from nbrisk.features.outcomes import derive_outcomes
from nbrisk.features.record import FIELDS, HLA_MISMATCH_RANGE, validate_records

# derandomize: the same examples on every run (no flaky tests); deadline off: the shared 2-core machine is noisy.
PROPS = settings(derandomize=True, deadline=None, max_examples=30)


def enum(name: str):
    return st.sampled_from(FIELDS[name].allowed)


def maybe(strategy):
    return st.one_of(st.none(), strategy)


@st.composite
def valid_records(draw) -> dict:
    """One record satisfying every field and consistency rule of the contract (outcomes included)."""
    age_dx = draw(st.integers(0, 216))
    # age at HSCT (age_dx + gap) / 12 must be 0.5–25 y, i.e. age_dx + gap in 6–300 months.
    gap = draw(st.integers(max(1, 6 - age_dx), min(180, 300 - age_dx)))
    donor = draw(enum("donor_type"))
    lo, hi = HLA_MISMATCH_RANGE[donor]
    graft = "cord_blood" if donor == "cord_blood" else draw(st.sampled_from(["bone_marrow", "peripheral_blood"]))
    phase = draw(enum("disease_phase"))
    prior = draw(st.integers(0, 1 if phase == "upfront_consolidation" else 2))
    status = draw(enum("disease_status_at_hsct"))
    if status == "CR":
        curie, marrow = draw(maybe(st.just(0))), draw(maybe(st.just(0.0)))
    else:
        curie, marrow = draw(maybe(st.integers(0, 30))), draw(maybe(st.floats(0, 100)))
    year = draw(st.integers(1990, 2035))
    rec = {
        "patient_id": draw(st.from_regex(r"[A-Za-z0-9_\-]{1,64}", fullmatch=True)),
        "center_id": draw(st.sampled_from(["C01", "C02", "c-3"])),
        "sex": draw(enum("sex")),
        "age_at_diagnosis_months": age_dx,
        "months_diagnosis_to_hsct": gap,
        "inrg_stage": "M",
        "mycn_status": draw(enum("mycn_status")),
        "chr11q_aberration": draw(enum("chr11q_aberration")),
        "alk_status": draw(enum("alk_status")),
        "inpc_histology": draw(enum("inpc_histology")),
        "ldh_at_diagnosis_u_l": draw(maybe(st.floats(50, 20000))),
        "metastatic_sites_at_diagnosis": draw(st.integers(1, 6)),
        "bone_marrow_metastasis_at_diagnosis": draw(st.booleans()),
        "disease_phase": phase,
        "prior_auto_hsct": prior,
        "disease_status_at_hsct": status,
        "curie_score_at_hsct": curie,
        "bone_marrow_tumor_percent_at_hsct": marrow,
        "mrd_at_hsct": draw(enum("mrd_at_hsct")),
        "lansky_score": 10 * draw(st.integers(1, 10)),
        "hct_ci": draw(maybe(st.integers(0, 29))),
        "donor_type": donor,
        "hla_mismatches": draw(st.integers(lo, hi)),
        "kir_ligand_mismatch": draw(enum("kir_ligand_mismatch")),
        "graft_source": graft,
        "graft_manipulation": draw(enum("graft_manipulation")),
        "cd34_dose_1e6_per_kg": draw(maybe(st.floats(0.1, 60))),
        "conditioning_intensity": draw(enum("conditioning_intensity")),
        "serotherapy": draw(enum("serotherapy")),
        "gvhd_prophylaxis": draw(enum("gvhd_prophylaxis")),
        "recipient_cmv": draw(enum("recipient_cmv")),
        "donor_cmv": draw(enum("donor_cmv")),
        "donor_age_years": draw(maybe(st.floats(0, 80))),
        "donor_sex": draw(enum("donor_sex")),
        "planned_post_hsct_immunotherapy": draw(enum("planned_post_hsct_immunotherapy")),
        "hsct_year": year,
    }
    hsct = draw(st.dates(dt.date(year, 1, 1), dt.date(year, 12, 31)))
    relapse = draw(maybe(st.integers(1, 3000)))
    dies = draw(st.booleans())
    relapse_date = hsct + dt.timedelta(days=relapse) if relapse is not None else None
    start = relapse_date or hsct
    death = start + dt.timedelta(days=draw(st.integers(0, 3000))) if dies else None
    last = death or start + dt.timedelta(days=draw(st.integers(0, 3000)))
    if death is None:
        cause = None
    elif relapse_date is None:
        cause = draw(st.sampled_from(["transplant_related", "other", "unknown"]))
    else:
        cause = draw(enum("cause_of_death"))
    rec.update(
        date_hsct=hsct.isoformat(),
        date_relapse=relapse_date and relapse_date.isoformat(),
        date_death=death and death.isoformat(),
        cause_of_death=cause,
        date_last_followup=last.isoformat(),
    )
    return rec


def as_text(rec: dict) -> dict:
    return {k: "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in rec.items()}


@PROPS
@given(st.lists(valid_records(), min_size=1, max_size=5, unique_by=lambda r: r["patient_id"]), st.booleans())
def test_valid_records_always_pass(records, csv_text):
    frame = pd.DataFrame([as_text(r) for r in records] if csv_text else records, dtype=object)
    typed, problems = validate_records(frame, require_outcomes=True, require_center=True)
    assert problems == []
    assert typed["patient_id"].tolist() == [r["patient_id"] for r in records]


@PROPS
@given(st.lists(valid_records(), min_size=1, max_size=5, unique_by=lambda r: r["patient_id"]))
def test_derived_outcomes_are_consistent(records):
    typed, problems = validate_records(pd.DataFrame(records, dtype=object), require_outcomes=True, require_center=True)
    assert problems == []
    out = derive_outcomes(typed)
    assert set(out["event"]) <= {int(c) for c in Cause}
    assert (out["time"] > 0).all() and (out["efs_time"] > 0).all() and (out["os_time"] > 0).all()
    # The competing-risks time is the EFS time; EFS ends no later than OS.
    np.testing.assert_array_equal(out["time"], out["efs_time"])
    assert (out["efs_time"] <= out["os_time"]).all()
    assert (out["efs_event"] == (out["event"] != Cause.CENSORED)).all()
    assert (out["os_event"] >= (out["event"] == Cause.TRM)).all()
    relapsed = out["event"] == Cause.RELAPSE
    assert out["relapse_time"].notna().eq(relapsed).all()
    assert out["post_relapse_time"].notna().eq(relapsed).all()
    assert (out.loc[relapsed, "post_relapse_time"] > 0).all()
    # Relapse time + post-relapse time is the OS time (up to the half-day given to a death on the relapse day).
    total = out.loc[relapsed, "relapse_time"] + out.loc[relapsed, "post_relapse_time"]
    assert np.all(np.abs(total - out.loc[relapsed, "os_time"]) <= 0.5)
    assert (out["post_relapse_event"] <= out["os_event"]).all()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=5,
)


@PROPS
@given(
    st.dictionaries(st.sampled_from(list(FIELDS)), json_values, min_size=1, max_size=12),
    st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=2),
)
def test_any_json_values_give_problems_never_exceptions(changes, extra):
    """The HTTP service must answer 4xx, never 5xx: arbitrary JSON in any field is reported, not raised."""
    from nbrisk.features.record import example_record, validate_record

    rec = {**example_record(), **changes, **extra}
    typed, problems = validate_record(rec, require_outcomes=True, require_center=True)
    assert len(typed) == 1
    for p in problems:
        assert isinstance(p.rule, str) and p.rule and isinstance(p.value, str)
    # Unknown keys are always reported; a changed field is either valid or reported.
    reported = {f for p in problems for f in p.field.split(",")}
    assert {k for k in extra if k not in FIELDS} <= reported
