"""What-if rows: the same model re-run on modified copies of the record (the choices still open before HSCT).

They describe how the model's predictions differ between patients who differ in that respect: associations learned
from observational data, not causal effects of choosing differently. Relapse and TRM are competing risks: an option
that lowers one cause leaves more children at risk of the other, so the other's cumulative incidence can rise even
when its hazard does not (Putter, Fiocco & Geskus 2007, Stat Med 26:2389). Each row where one cause rises while the
other falls says so in one sentence, and whether the model's hazard of the rising cause changed at all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nbrisk.core import Band, RiskCurves
from nbrisk.reports.inputs import ModelInputs
from nbrisk.reports.record import UNKNOWN as _UNKNOWN
from nbrisk.reports.record import display_value as _display_value
from nbrisk.reports.record import json_value as _json_value

#: Horizon (months) of the what-if rows.
KEY_HORIZON_MONTHS = 24
#: An option fewer training patients had than this is flagged as an extrapolation in the what-if table.
FEW_TRAINING_PATIENTS = 20
#: What-if choice → the record field it changes.
WHATIF_FIELDS = {
    "Donor type": "donor_type",
    "Conditioning intensity": "conditioning_intensity",
    "Disease status at HSCT": "disease_status_at_hsct",
}


@dataclass(frozen=True)
class Interval:
    """A probability with its 95% interval (``lower``/``upper`` ``None`` when the model gives none)."""

    estimate: float
    lower: float | None = None
    upper: float | None = None


def interval(band: Band, i: int, j: int) -> Interval:
    lo = None if band.lower is None else float(band.lower[i, j])
    hi = None if band.upper is None else float(band.upper[i, j])
    return Interval(float(band.estimate[i, j]), lo, hi)


@dataclass(frozen=True)
class WhatIf:
    """The 2-year prediction for a modified copy of the record.

    ``changes`` lists the changed fields this model reads (a field it ignores is changed too, to keep the record
    valid, but not shown). ``n_training`` is the number of training patients with this option (``None`` if unknown):
    an option few training patients had is an extrapolation. ``competing`` is the competing-risks sentence, if any.
    """

    choice: str
    option: str
    current: bool
    changes: tuple[str, ...]
    relapse: Interval
    trm: Interval
    efs: Interval
    n_training: int | None = None
    competing: str = ""


def _whatif_variants(rec: dict[str, Any]) -> list[tuple[str, str, bool, dict[str, Any]]]:
    """Alternative records for the choices still open before HSCT, kept valid under the record contract.

    Returns ``(choice, option, is_current, changed fields)``. Changing the donor type also moves the fields the
    contract ties to it: ``hla_mismatches`` into the donor type's allowed range (the nearest value to the current
    one), ``graft_source`` to cord blood for a cord-blood donor (and away from it otherwise, to peripheral blood) and
    ``graft_manipulation`` to none for cord blood; the KIR-ligand mismatch is defined for haploidentical donors,
    so it becomes unknown when the donor type changes. Reaching CR sets residual disease to 0 where it was measured
    (the contract requires CR to have no marrow tumour and Curie score 0) and, for measured MRD, negative.
    """
    from nbrisk.features.record import FIELDS, HLA_MISMATCH_RANGE

    out: list[tuple[str, str, bool, dict[str, Any]]] = []  # (choice, option, current, changes)
    donor = rec.get("donor_type")
    for option in FIELDS["donor_type"].allowed or ():
        ch: dict[str, Any] = {}
        if option != donor:
            ch["donor_type"] = option
            lo, hi = HLA_MISMATCH_RANGE[option]
            hla = rec.get("hla_mismatches")
            hla = lo if hla is None or (isinstance(hla, float) and math.isnan(hla)) else hla
            new_hla = int(min(max(hla, lo), hi))
            if new_hla != hla:
                ch["hla_mismatches"] = new_hla
            if option == "cord_blood":
                if rec.get("graft_source") != "cord_blood":
                    ch["graft_source"] = "cord_blood"
                if rec.get("graft_manipulation") != "none":
                    ch["graft_manipulation"] = "none"
            elif rec.get("graft_source") == "cord_blood":
                ch["graft_source"] = "peripheral_blood"
            if (donor == "haploidentical") != (option == "haploidentical") and rec.get("kir_ligand_mismatch") not in (
                None,
                _UNKNOWN,
            ):
                ch["kir_ligand_mismatch"] = _UNKNOWN
        out.append(("Donor type", option.replace("_", " "), option == donor, ch))
    cond = rec.get("conditioning_intensity")
    for option in FIELDS["conditioning_intensity"].allowed or ():
        ch = {} if option == cond else {"conditioning_intensity": option}
        out.append(("Conditioning intensity", option.replace("_", " "), option == cond, ch))
    status = rec.get("disease_status_at_hsct")
    out.append(("Disease status at HSCT", str(status), True, {}))
    if status != "CR":
        ch = {"disease_status_at_hsct": "CR"}
        for f in ("curie_score_at_hsct", "bone_marrow_tumor_percent_at_hsct"):
            v = rec.get(f)
            if v is not None and not (isinstance(v, float) and math.isnan(v)) and v != 0:
                ch[f] = 0
        if rec.get("mrd_at_hsct") == "positive":
            ch["mrd_at_hsct"] = "negative"
        out.append(("Disease status at HSCT", "CR (complete remission)", False, ch))
    return out


def _describe_changes(ch: Mapping[str, Any]) -> tuple[str, ...]:
    from nbrisk.features.record import FIELDS

    return tuple(f"{FIELDS[k].label} → {_display_value(FIELDS[k], v)}" for k, v in ch.items())


def _predict_variants(risk_model, frames: list[pd.DataFrame]) -> tuple[RiskCurves | None, dict[int, str]]:
    """Predict the variant records in one batch at 2 years; variants the model refuses are dropped, not guessed.

    Returns the curves of the kept variants (in order) and ``{index in frames: reason}`` for the dropped ones.
    """
    from nbrisk.features.pipeline import UnseenCategoryError

    dropped: dict[int, str] = {}
    keep = list(range(len(frames)))
    while keep:
        batch = pd.concat([frames[i] for i in keep], ignore_index=True)
        try:
            return risk_model.predict(batch, [KEY_HORIZON_MONTHS]), dropped
        except UnseenCategoryError as exc:
            bad = {keep[p] for _, _, pos in exc.unseen for p in pos}
            if not bad:
                raise
            for i in bad:
                dropped[i] = "a category not seen in the training data"
            keep = [i for i in keep if i not in bad]
    return None, dropped


def compute_whatifs(
    risk_model, typed: pd.DataFrame, used: ModelInputs, current: RiskCurves | None = None
) -> tuple[tuple[WhatIf, ...], tuple[str, ...]]:
    """Re-predict modified copies of the (validated) record through the same model, in one batch.

    Every variant is re-validated with the record contract; a variant the contract rejects is left out and named in
    the returned notes (never shown with invented numbers). ``current`` (the table prediction) provides the
    unmodified rows so that they match the table exactly.
    """
    from nbrisk.features.record import records_frame, validate_records

    base = {k: _json_value(v) for k, v in typed.iloc[0].to_dict().items()}
    counts = risk_model.training_summary.category_counts
    notes: list[str] = []
    specs = _whatif_variants(base)
    # every changed copy validated in one batch (a unique id per copy: ids must be unique within a batch)
    changed = [i for i, spec in enumerate(specs) if spec[3]]
    raw, _ = records_frame([{**base, **specs[i][3], "patient_id": f"whatif-{i}"} for i in changed])
    checked, problems = validate_records(raw, require_outcomes=False, require_center=False, first_row=0)
    first_problem: dict[int, str] = {}
    for p in problems:
        if p.row is not None:  # every problem of a batch of records names its row
            first_problem.setdefault(p.row, p.rule)
    candidates: list[tuple[tuple[str, str, bool, dict[str, Any]], pd.DataFrame | None]] = []
    for i, (choice, option, is_current, ch) in enumerate(specs):
        if not ch:
            candidates.append(((choice, option, is_current, ch), None))
            continue
        row = changed.index(i)
        if row in first_problem:
            notes.append(f"{choice}: {option} not shown ({first_problem[row]})")
            continue
        # A category no training patient had cannot be scored (the feature pipeline refuses it): say so.
        unseen = [f for f, v in ch.items() if f in counts and counts[f] and str(v) not in counts[f]]
        if unseen:
            notes.append(
                f"{choice}: {option} not shown (no training patient had "
                f"{', '.join(_describe_changes({f: ch[f]})[0] for f in unseen)})"
            )
            continue
        frame = checked.iloc[[row]].assign(patient_id=base["patient_id"]).reset_index(drop=True)
        candidates.append(((choice, option, is_current, ch), frame))
    frames = [f for _, f in candidates if f is not None]
    predicted, dropped = _predict_variants(risk_model, frames)
    kept = []
    k = 0
    for spec, frame in candidates:
        if frame is not None:
            if k in dropped:
                notes.append(f"{spec[0]}: {spec[1]} not shown ({dropped[k]})")
                k += 1
                continue
            k += 1
        kept.append(spec)
    if current is None:
        current = risk_model.predict(typed, [KEY_HORIZON_MONTHS])
    j_cur = int(np.argmin(np.abs(np.asarray(current.horizons_months, float) - KEY_HORIZON_MONTHS)))
    rows: list[WhatIf] = []
    variants: list[dict[str, Any]] = []
    k = 0
    for choice, option, is_current, ch in kept:
        if ch:
            assert predicted is not None
            src, i, j = predicted, k, 0
            k += 1
        else:
            src, i, j = current, 0, j_cur
        field_name = WHATIF_FIELDS[choice]
        value = ch.get(field_name, base.get(field_name))
        n_train = counts.get(field_name, {}).get(str(value), 0) if field_name in counts else None
        rows.append(
            WhatIf(
                choice,
                option,
                is_current,
                _describe_changes({f: v for f, v in ch.items() if f in used.fields}),
                interval(src.relapse, i, j),
                interval(src.trm, i, j),
                interval(src.efs, i, j),
                n_train,
            )
        )
        variants.append({**base, **ch})
    hazards = _log_hazards(risk_model, typed, variants)
    base_row = next((r for r in rows if r.current and r.choice == "Disease status at HSCT"), None)
    out = []
    for k, r in enumerate(rows):
        ref = next((c for c in rows if c.current and c.choice == r.choice), base_row)
        text = (
            ""
            if r.current or ref is None
            else competing_sentence(ref, r, None if hazards is None else hazards[k] - hazards[rows.index(ref)])
        )
        out.append(r if not text else dataclasses.replace(r, competing=text))
    return tuple(out), tuple(notes)


def _log_hazards(risk_model, typed: pd.DataFrame, variants: list[dict[str, Any]]) -> np.ndarray | None:
    """(n_variants, 2) log cause-specific (or subdistribution) hazard ratios of each row vs the average patient
    (first period after HSCT), or ``None`` for a model without a linear predictor."""
    cr = risk_model.illness_death.cr_model_
    if not callable(getattr(cr, "contributions", None)) or not variants:
        return None
    from nbrisk.features.pipeline import UnseenCategoryError

    row = typed.iloc[0].to_dict()
    frame = pd.DataFrame([{**row, **{k: v for k, v in var.items() if k in row}} for var in variants])
    try:
        X = risk_model.transform(frame)
    except UnseenCategoryError:
        return None
    return np.asarray(cr.contributions(X), dtype=float).sum(axis=2)


def competing_sentence(ref: WhatIf, row: WhatIf, moved: np.ndarray | None) -> str:
    """One sentence when one cause's 2-year risk rises while the other's falls (competing risks), else ``""``.

    ``moved``: the change (row − reference) of the (relapse, TRM) log hazards, or ``None`` if the model has none.
    """
    dr = row.relapse.estimate - ref.relapse.estimate
    dt = row.trm.estimate - ref.trm.estimate
    if not ((dr < -0.005 and dt > 0.005) or (dt < -0.005 and dr > 0.005)):
        return ""
    up, down = ("TRM", "relapse") if dt > 0 else ("relapse", "TRM")
    a, b = (ref.trm.estimate, row.trm.estimate) if dt > 0 else (ref.relapse.estimate, row.relapse.estimate)
    because = (
        f"fewer children have {'relapsed' if down == 'relapse' else 'died of transplant complications'} first, "
        f"so more remain at risk of {'transplant-related death' if up == 'TRM' else 'relapse'}"
    )
    if moved is not None and float(moved[1 if up == "TRM" else 0]) > 1e-9:
        return ""  # the rising cause's own hazard rises too: not (only) a competing-risks effect
    same = "" if moved is None else f" The model's hazard of {up} is not higher with this option."
    return (
        f"{row.option}: {up} by 2 years {'rises' if b > a else 'changes'} from {100 * a:.1f}% to {100 * b:.1f}% "
        f"because {because} (relapse and TRM are competing risks).{same}"
    )
