"""The feature pipeline: derived predictors by hand, imputation, unseen categories, warnings, pickling, speed."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from nbrisk.core import NbriskError
from nbrisk.features.pipeline import RecordFeatures, UnseenCategoryError, make_feature_pipeline
from nbrisk.features.record import FIELDS, PREDICTOR_FIELDS, example_record, validate_record, validate_records
from nbrisk.features.synthetic import make_synthetic_cohort


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    raw = make_synthetic_cohort(400, seed=11, preset="base")
    typed, problems = validate_records(raw, require_outcomes=True, require_center=True)
    assert problems == []
    return typed


@pytest.fixture(scope="module")
def fitted(training) -> RecordFeatures:
    return make_feature_pipeline().fit(training)


def typed_record(**overrides) -> pd.DataFrame:
    typed, problems = validate_record(dict(example_record(False), **overrides))
    assert problems == [], problems
    return typed


def test_output_is_a_float_frame_with_stable_readable_names(fitted, training):
    X = fitted.transform(training)
    assert X.shape == (len(training), fitted.n_features_out_)
    assert X.index.equals(training.index)
    assert all(dt == np.float64 for dt in X.dtypes) and np.isfinite(X.to_numpy()).all()
    assert list(X.columns) == list(fitted.get_feature_names_out())
    assert len(set(X.columns)) == X.shape[1]
    for name in (
        "age_at_hsct_years",
        "era",
        "residual_burden",
        "disease_status_at_hsct=PD",
        "hla_mismatches=3+",
        "hct_ci=3+",
        "donor_type=haploidentical",
        "lansky_below_90",
        "prior_auto_hsct_any",
    ):
        assert name in X.columns
    # xgboost refuses feature names with [, ] or <
    assert not any(ch in c for c in X.columns for ch in "[]<")
    # Reference levels have no column.
    assert "disease_status_at_hsct=CR" not in X.columns and "donor_type=matched_sibling" not in X.columns


def test_feature_source_maps_every_column_to_contract_fields(fitted):
    assert set(fitted.feature_source_) == set(fitted.feature_names_out_)
    for col, src in fitted.feature_source_.items():
        for field in src.split("+"):
            assert field in PREDICTOR_FIELDS, (col, src)
    assert fitted.feature_source_["donor_type=haploidentical"] == "donor_type"
    assert fitted.feature_source_["log10_ldh"] == "ldh_at_diagnosis_u_l"


def test_derived_predictors_by_hand(fitted):
    # example_record: age 38 + 20 months, PR, Curie 4, marrow 5%, Lansky 90, HCT-CI 1, haplo 4 mismatches, 2019.
    x = fitted.transform(typed_record()).iloc[0]
    assert x["age_at_hsct_years"] == pytest.approx(58 / 12)
    assert x["age_at_hsct_over_10y"] == 0 and x["age_at_diagnosis_over_18m"] == 1
    assert x["years_diagnosis_to_hsct"] == pytest.approx(20 / 12)
    assert x["log10_ldh"] == pytest.approx(np.log10(850))
    assert x["residual_burden"] == 3  # status worse than VGPR + Curie > 2 + marrow > 0
    assert x["lansky_below_90"] == 0
    assert x["era"] == pytest.approx((2019 - fitted.year_center_) / 5)
    assert x["prior_auto_hsct_any"] == 1 and x["prior_auto_hsct_tandem"] == 0
    assert x["disease_status_at_hsct=VGPR/PR"] == 1 and x["disease_status_at_hsct=PD"] == 0
    assert x["hla_mismatches=3+"] == 1 and x["hla_mismatches=1-2"] == 0
    assert x["hct_ci=1-2"] == 1 and x["hct_ci=3+"] == 0
    assert x["donor_type=haploidentical"] == 1 and x["donor_type=cord_blood"] == 0
    cr = fitted.transform(
        typed_record(
            disease_status_at_hsct="CR",
            curie_score_at_hsct=0,
            bone_marrow_tumor_percent_at_hsct=0,
            lansky_score=80,
            hla_mismatches=2,
            hct_ci=4,
        )
    ).iloc[0]
    assert cr["residual_burden"] == 0 and cr["lansky_below_90"] == 1
    assert cr["disease_status_at_hsct=VGPR/PR"] == 0 and cr["disease_status_at_hsct=PD"] == 0
    assert cr["hla_mismatches=1-2"] == 1 and cr["hct_ci=3+"] == 1


def test_imputation_uses_training_medians_and_flags_missing(fitted, training):
    x = fitted.transform(typed_record(ldh_at_diagnosis_u_l=None, donor_age_years=None)).iloc[0]
    ldh_median = np.nanmedian(training["ldh_at_diagnosis_u_l"].to_numpy(dtype=float))
    assert x["log10_ldh"] == pytest.approx(np.log10(ldh_median))
    assert x["ldh_at_diagnosis_u_l_missing"] == 1 and x["donor_age_years_missing"] == 1
    assert x["cd34_dose_1e6_per_kg_missing"] == 0
    # In CR the contract says Curie / marrow are missing or 0: a missing value is imputed as 0, not the median.
    cr = fitted.transform(
        typed_record(disease_status_at_hsct="CR", curie_score_at_hsct=None, bone_marrow_tumor_percent_at_hsct=None)
    ).iloc[0]
    assert cr["curie_score"] == 0 and cr["marrow_tumor_percent"] == 0 and cr["curie_score_at_hsct_missing"] == 1


def test_missing_indicators_only_for_fields_missing_in_training(training):
    complete = training.assign(ldh_at_diagnosis_u_l=training["ldh_at_diagnosis_u_l"].fillna(500.0))
    fp = make_feature_pipeline().fit(complete)
    assert "ldh_at_diagnosis_u_l" not in fp.missing_indicators_
    assert "ldh_at_diagnosis_u_l_missing" not in fp.feature_names_out_
    x = fp.transform(typed_record(ldh_at_diagnosis_u_l=None))  # still imputed (and warned), no indicator column
    expected = np.median(complete["ldh_at_diagnosis_u_l"].to_numpy(dtype=float))
    assert x["log10_ldh"].iat[0] == pytest.approx(np.log10(expected))


def test_constant_and_duplicate_columns_are_dropped(fitted, training):
    # graft_source=cord_blood equals donor_type=cord_blood for every valid record (contract rule).
    assert "graft_source=cord_blood" in fitted.dropped_columns_
    assert "donor_type=cord_blood" in fitted.feature_names_out_
    only_haplo = training[training["donor_type"] == "haploidentical"]
    fp = make_feature_pipeline().fit(only_haplo)
    assert not any(c.startswith("donor_type=") for c in fp.feature_names_out_)
    assert fp.references_["donor_type"] == "haploidentical"  # declared reference absent: most frequent level
    X = fp.transform(only_haplo)
    assert (X.std(axis=0) > 0).all()


def test_unseen_category_fails_clearly(training):
    fp = make_feature_pipeline().fit(training[training["donor_type"] != "matched_related"])
    records = pd.concat(
        [
            typed_record(),
            typed_record(patient_id="X2", donor_type="matched_related", hla_mismatches=0, graft_source="bone_marrow"),
        ],
        ignore_index=True,
    )
    with pytest.raises(UnseenCategoryError) as info:
        fp.transform(records)
    err = info.value
    assert isinstance(err, NbriskError) and isinstance(err, ValueError)
    assert err.field == "donor_type" and err.value == "matched_related"
    assert err.unseen == [("donor_type", "matched_related", [1])]
    assert "donor_type='matched_related'" in str(err)
    # input_warnings does not raise; it names the unseen category.
    warnings = fp.input_warnings(records)
    assert "donor_type=matched_related was not seen in the training data" in warnings[1]


def test_input_warnings(fitted, training):
    hi = fitted.ranges_["age_at_diagnosis_months"][1]
    assert hi < 216, "the test needs a training range narrower than the contract"
    recs = pd.concat(
        [
            typed_record(),
            typed_record(
                patient_id="B", age_at_diagnosis_months=216, months_diagnosis_to_hsct=20, ldh_at_diagnosis_u_l=None
            ),
        ],
        ignore_index=True,
    )
    w = fitted.input_warnings(recs)
    assert len(w) == 2
    assert not any("age_at_diagnosis_months" in m for m in w[0])
    assert any(m.startswith("age_at_diagnosis_months is outside the training data's range") for m in w[1])
    assert any(m.startswith("ldh_at_diagnosis_u_l was missing and imputed") for m in w[1])
    n_haplo = int((training["donor_type"] == "haploidentical").sum())
    strict = make_feature_pipeline(rare_count=n_haplo + 1).fit(training)
    w = strict.input_warnings(typed_record())
    assert f"donor_type=haploidentical is rare in the training data (n={n_haplo})" in w[0]
    assert not any(
        "donor_type" in m
        for m in make_feature_pipeline(rare_count=n_haplo).fit(training).input_warnings(typed_record())[0]
    )
    # Warnings never carry the patient identifier.
    assert not any("EX-0001" in m for ms in fitted.input_warnings(recs) for m in ms)


def test_pickle_round_trip_and_clone(fitted, training):
    again = pickle.loads(pickle.dumps(fitted))
    pd.testing.assert_frame_equal(again.transform(training), fitted.transform(training), check_exact=True)
    assert again.feature_source_ == fitted.feature_source_
    params = clone(make_feature_pipeline(standardize=True, rare_count=3)).get_params()
    assert params == {"standardize": True, "rare_count": 3, "center_effects": False, "splines": False}


def test_rows_are_transformed_independently_of_the_batch(fitted, training):
    """A patient's predictors must not depend on who else is in the request (serving batches are arbitrary)."""
    full = fitted.transform(training)
    rng = np.random.default_rng(0)
    for size in (1, 7):
        idx = rng.choice(len(training), size=size, replace=False)
        pd.testing.assert_frame_equal(fitted.transform(training.iloc[idx]), full.iloc[idx], check_exact=True)


def test_standardize_scales_only_continuous_columns(training):
    fp = make_feature_pipeline(standardize=True).fit(training)
    X = fp.transform(training)
    assert X["age_at_hsct_years"].mean() == pytest.approx(0, abs=1e-9)
    assert X["age_at_hsct_years"].std(ddof=0) == pytest.approx(1)
    assert set(np.unique(X["donor_type=haploidentical"])) == {0.0, 1.0}


def test_input_errors(fitted):
    with pytest.raises(NbriskError, match="lack predictor field"):
        fitted.transform(typed_record().drop(columns=["lansky_score"]))
    with pytest.raises(NbriskError, match="DataFrame"):
        fitted.transform(example_record(False))
    with pytest.raises(NbriskError, match="zero records"):
        make_feature_pipeline().fit(typed_record().iloc[:0])


def test_transform_of_prediction_records_without_outcomes_or_center(fitted):
    typed = typed_record(center_id=None)
    assert "date_hsct" not in typed.columns
    assert fitted.transform(typed).shape == (1, fitted.n_features_out_)
    assert set(FIELDS) - set(PREDICTOR_FIELDS)  # id/outcome fields are not inputs


def test_center_effects_deviation_coding_and_average_for_unknown_centers():
    """center_effects=True: one ±1/0 column per training center but the first (sum-to-zero coding); a patient without
    a center or from an unseen center has all zeros (the average center) instead of an error."""
    from nbrisk.features.synthetic import make_synthetic_cohort

    recs = make_synthetic_cohort(400, seed=5)
    pipe = make_feature_pipeline(center_effects=True).fit(recs)
    X = pipe.transform(recs)
    cols = [c for c in X.columns if c.startswith("center_effect=")]
    centers = sorted(recs.center_id.unique())
    assert cols == [f"center_effect={c}" for c in centers[1:]]
    own = recs.center_id.to_numpy()
    for c in centers[1:]:
        np.testing.assert_array_equal(X[f"center_effect={c}"], (own == c).astype(float) - (own == centers[0]))
    assert pipe.feature_source_[cols[0]] == "center_id"
    other = recs.iloc[:3].assign(center_id=["C99", None, centers[2]])
    Z = pipe.transform(other)[cols].to_numpy()
    assert np.all(Z[:2] == 0) and Z[2].sum() == 1
    assert not any(c.startswith("center_effect") for c in make_feature_pipeline().fit(recs).transform(recs).columns)


def test_spline_columns_are_hinges_at_training_tertiles(training):
    """``splines=True`` (the data-driven Cox): hinge terms max(0, x − knot) at the training tertiles, learnt at fit."""
    from nbrisk.features.pipeline import SPLINE_COLUMNS

    plain = make_feature_pipeline().fit(training)
    spl = make_feature_pipeline(splines=True).fit(training)
    X, Xs = plain.transform(training), spl.transform(training)
    assert set(X.columns) <= set(Xs.columns)  # the default columns are unchanged
    pd.testing.assert_frame_equal(Xs[X.columns], X)
    assert set(spl.spline_knots_) == set(SPLINE_COLUMNS)
    age = Xs["age_at_hsct_years"].to_numpy()
    k1 = spl.spline_knots_["age_at_hsct_years"][0]
    np.testing.assert_allclose(k1, np.quantile(age, 1 / 3))
    np.testing.assert_allclose(Xs["age_at_hsct_years_hinge1"], np.maximum(age - k1, 0.0))
    assert spl.feature_source_["age_at_hsct_years_hinge1"] == plain.feature_source_["age_at_hsct_years"]
    assert spl.feature_source_["lansky_per_10"] == "lansky_score"
