"""Which record fields a fitted model reads, the value it used for each (after imputation), and input warnings.

A model fitted on a pre-specified predictor set reads a fraction of the record (the clinical Cox reads 16 of the 34
predictor fields): the report must not present the rest as "inputs used", and its warnings must concern only what
the model read. Nothing here is a hand-kept list of fields: :func:`model_inputs` derives the set from the fitted
pipeline — the feature columns with a non-zero coefficient in the relapse/TRM model or in the post-relapse model
(every column for a model without coefficients, e.g. a forest), mapped back to the record fields they are made
from by the feature pipeline's ``feature_source_``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nbrisk.reports.record import UNKNOWN, display_value

#: Clinical groups of the record contract, in display order.
GROUP_TITLES = {
    "disease": "Disease at diagnosis",
    "pre_transplant_status": "Status before transplant",
    "donor_graft": "Donor and graft",
    "conditioning": "Conditioning and plan",
}
#: Derived columns that read a field their ``feature_source_`` entry does not name: the interval diagnosis → HSCT
#: counts only in relapsed disease (disease phase), the KIR-ligand mismatch only with a haploidentical donor, and a
#: missing Curie score is imputed from the share of scores > 2 among patients with the same disease status.
_ALSO_READS = {
    "relapsed_dx_to_hsct_0_18m": ("disease_phase",),
    "relapsed_dx_to_hsct_18_36m": ("disease_phase",),
    "relapsed_dx_to_hsct_over_36m": ("disease_phase",),
    "kir_ligand_mismatch_haplo": ("donor_type",),
    "curie_score_over_2": ("disease_status_at_hsct",),
}


@dataclass(frozen=True)
class ModelInputs:
    """The feature columns a fitted model reads and the record fields they are made from."""

    columns: tuple[str, ...]
    fields: frozenset[str]


@dataclass(frozen=True)
class InputRow:
    """One input of the patient: the value as recorded and, for a used input, the value the model used.

    ``status``: ``""`` (given and used as given), ``"imputed"`` (missing; ``used`` says what the model put in its
    place) or ``"reference"`` (a level the model has no coefficient for, scored like its reference level).
    """

    field: str
    label: str
    value: str
    used: str = ""
    status: str = ""


@dataclass(frozen=True)
class InputGroup:
    title: str
    rows: tuple[InputRow, ...]


def _nonzero_columns(estimator: Any, n: int) -> set[int]:
    """Columns of the design an estimator reads: non-zero coefficients (either cause, any period), else all."""
    coef = getattr(estimator, "coef_", None)
    if coef is None:
        used = getattr(estimator, "used_features_", None)
        return set(range(n)) if used is None else {int(j) for j in used}
    c = np.atleast_2d(np.asarray(coef, dtype=float))[:, :n]
    cols = set(np.flatnonzero(np.any(c != 0.0, axis=0)).tolist())
    tv = getattr(estimator, "tv_coef_", None)
    tv_idx = getattr(estimator, "time_varying_features_", None)
    if tv is not None and tv_idx is not None and len(tv_idx):
        moves = np.any(np.asarray(tv, dtype=float).reshape(-1, len(tv_idx)) != 0.0, axis=0)
        cols |= {int(tv_idx[i]) for i in np.flatnonzero(moves)}
    return cols


def model_inputs(risk_model: Any) -> ModelInputs:
    """The columns (and record fields) a fitted :class:`~nbrisk.models.risk_model.RiskModel` reads."""
    fp = risk_model.feature_pipeline
    idm = risk_model.illness_death
    # the columns the models were fitted on (the pipeline's output less any column dropped at the final fit)
    names = [str(c) for c in getattr(idm, "feature_names_in_", fp.feature_names_out_)]
    used: set[int] = set()
    for est in (getattr(idm, "cr_model_", None), getattr(idm, "post_relapse_", None)):
        if est is not None:
            used |= _nonzero_columns(est, len(names))
    columns = tuple(names[j] for j in sorted(used))
    fields: set[str] = set()
    for col in columns:
        fields.update(p for p in fp.feature_source_.get(col, col).split("+") if p)
        fields.update(_ALSO_READS.get(col, ()))
    return ModelInputs(columns, frozenset(fields))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _used_level(field: str, columns: Iterable[str], xrow: pd.Series, reference: str) -> str:
    """The level of a categorical ``field`` the model scored: its used one-hot column set to 1, else the reference."""
    for col in columns:
        if col.startswith(f"{field}=") and xrow.get(col, 0.0) == 1.0:
            return col.split("=", 1)[1]
    return reference


def _imputed_text(risk_model: Any, spec: Any, row: pd.Series, cols: list[str]) -> str:
    """What the fitted pipeline put in place of a missing numeric field, for the columns this model reads."""
    fp = risk_model.feature_pipeline
    status = str(row.get("disease_status_at_hsct"))
    if "curie_score_over_2" in cols and spec.name == "curie_score_at_hsct":
        share = fp.curie_over_2_share_.get(status, fp.curie_over_2_share_[""])
        return f"a {100 * share:.0f}% chance of a score > 2 (the training share in status {status})"
    if status == "CR" and spec.name in ("curie_score_at_hsct", "bone_marrow_tumor_percent_at_hsct"):
        return "0 (disease status CR)"
    median = fp.medians_.get(spec.name)
    return "—" if median is None else f"{display_value(spec, median)} (training median)"


def input_sections(
    risk_model: Any, typed: pd.DataFrame, used: ModelInputs
) -> tuple[tuple[InputGroup, ...], tuple[InputGroup, ...], tuple[str, ...]]:
    """``(used groups, recorded-but-unused groups, warnings about used inputs)`` for one validated record."""
    from nbrisk.features.record import FIELDS

    fp = risk_model.feature_pipeline
    row = typed.iloc[0]
    xrow = risk_model.transform(typed).iloc[0]
    by_field: dict[str, list[str]] = {}
    for col in used.columns:
        for f in fp.feature_source_.get(col, col).split("+"):
            by_field.setdefault(f, []).append(col)
    used_groups: dict[str, list[InputRow]] = {}
    unused_groups: dict[str, list[InputRow]] = {}
    warnings: list[str] = []
    for name, spec in FIELDS.items():
        if not spec.is_predictor or spec.group not in GROUP_TITLES:
            continue
        value = row.get(name) if name in typed.columns else None
        text = display_value(spec, value)
        if name not in used.fields:
            unused_groups.setdefault(spec.group, []).append(InputRow(name, spec.label, text))
            continue
        cols = by_field.get(name, [])
        shown, status = "", ""
        if _missing(value):
            shown, status = _imputed_text(risk_model, spec, row, cols), "imputed"
            warnings.append(f"{spec.label} was missing; the model used {shown}.")
        elif spec.kind == "enum" and name in fp.references_ and cols and all(c.startswith(f"{name}=") for c in cols):
            # only a field the model reads through its one-hot columns is "scored as the reference level"; a field
            # read through a derived column (the KIR-ligand mismatch with a haploidentical donor) is used as given
            ref = fp.references_[name]
            level = _used_level(name, cols, xrow, ref)
            if str(value) != level and level == ref and str(value) not in (ref,):
                ref_text = display_value(spec, ref)
                shown, status = f"scored as {ref_text}", "reference"
                if value == UNKNOWN:
                    warnings.append(
                        f"{spec.label} is unknown; the model has no separate effect for 'unknown' and scores it "
                        f"as {ref_text}."
                    )
            count = fp.levels_[name].get(str(value), 0)
            if status == "" and 0 < count < fp.rare_count:
                warnings.append(f"{spec.label} = {text}: only {count} training patients had this value.")
        lo_hi = fp.ranges_.get(name)
        if lo_hi is not None and value is not None and not _missing(value) and spec.kind in ("number", "integer"):
            v = float(value)
            if v < lo_hi[0] or v > lo_hi[1]:
                warnings.append(
                    f"{spec.label} ({text}) is outside the training data's range "
                    f"({display_value(spec, lo_hi[0])}–{display_value(spec, lo_hi[1])}): an extrapolation."
                )
        used_groups.setdefault(spec.group, []).append(InputRow(name, spec.label, text, shown, status))
    order = list(GROUP_TITLES)
    return (
        tuple(InputGroup(GROUP_TITLES[g], tuple(used_groups[g])) for g in order if g in used_groups),
        tuple(InputGroup(GROUP_TITLES[g], tuple(unused_groups[g])) for g in order if g in unused_groups),
        tuple(warnings),
    )
