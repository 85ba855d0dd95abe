"""The patient record contract, validation, outcome derivation, feature pipeline, synthetic cohort, public data.

Names are imported lazily so that importing one piece does not load the others.
"""

from importlib import import_module

_LAZY = {
    "FIELDS": "nbrisk.features.record",
    "Problem": "nbrisk.features.record",
    "CohortValidationError": "nbrisk.features.record",
    "validate_records": "nbrisk.features.record",
    "validate_record": "nbrisk.features.record",
    "derive_outcomes": "nbrisk.features.outcomes",
    "read_cohort": "nbrisk.features.io",
    "Cohort": "nbrisk.features.io",
    "make_feature_pipeline": "nbrisk.features.pipeline",
    "RecordFeatures": "nbrisk.features.pipeline",
    "UnseenCategoryError": "nbrisk.features.pipeline",
    "make_synthetic_cohort": "nbrisk.features.synthetic",
    "true_risk": "nbrisk.features.synthetic",
    "load_kmsurv_bmt": "nbrisk.features.public",
    "load_ebmt1": "nbrisk.features.public",
    "load_ebmt4": "nbrisk.features.public",
    "load_mgus2": "nbrisk.features.public",
    "load_sksurv_bmt": "nbrisk.features.public",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nbrisk.features' has no attribute {name!r}")
