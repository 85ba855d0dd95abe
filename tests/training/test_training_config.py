"""The training config: shipped TOMLs validate; typos and bad values are one-line NbriskErrors; frozen."""

from __future__ import annotations

import pydantic
import pytest

from nbrisk.core import NbriskError
from nbrisk.training.config import CONFIG_DIR, TrainConfig, load_config, parse_config


def _minimal(**over):
    raw = {"models": [{"name": "aj", "family": "AalenJohansen"}, {"name": "cox", "family": "CauseSpecificCox"}]}
    raw.update(over)
    return raw


def test_shipped_configs_validate():
    default = load_config()
    quick = load_config(CONFIG_DIR / "quick.toml")
    assert {m.family for m in default.models} == {
        "AalenJohansen",
        "CauseSpecificCox",
        "FineGray",
        "CauseSpecificForest",
        "CauseSpecificBoosting",
    }
    assert default.validation.n_bootstrap >= 200  # docs/statistics.md: >= 200 resamples for CIs
    assert default.horizons_months == (12, 24, 36, 60)
    assert [m.family for m in quick.models] == ["AalenJohansen", "CauseSpecificCox"]
    assert quick.validation.n_splits == 2


def test_config_is_frozen_and_forbids_extra_keys():
    cfg = parse_config(_minimal())
    with pytest.raises(pydantic.ValidationError):
        cfg.seed = 3
    with pytest.raises(NbriskError, match="n_split"):
        parse_config(_minimal(validation={"n_split": 3}))  # typo of n_splits


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_minimal(horizons_months=[24, 12]), "horizons_months"),
        (_minimal(horizons_months=[12, 200]), "horizons_months"),
        ({"models": [{"name": "aj", "family": "AalenJohansen"}]}, "at least one model with covariates"),
        ({"models": [{"name": "cox", "family": "CauseSpecificCox"}] * 2}, "unique"),
        ({"models": [{"name": "x", "family": "DeepHit"}]}, "family"),
        (_minimal(validation={"primary_horizon_months": 18}), "primary_horizon_months"),
        ({"models": [{"name": "cox", "family": "CauseSpecificCox", "grid": {"alpha": []}}]}, "empty"),
    ],
)
def test_bad_configs_are_user_errors(raw, message):
    with pytest.raises(NbriskError, match=message):
        parse_config(raw)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(NbriskError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1\n")
    with pytest.raises(NbriskError, match="not valid TOML"):
        load_config(bad)


def test_grid_candidates_and_fingerprint():
    spec = parse_config(
        _minimal(
            models=[
                {
                    "name": "cox",
                    "family": "CauseSpecificCox",
                    "params": {"ties": "efron"},
                    "grid": {"alpha": [0.1, 1.0]},
                }
            ]
        )
    ).models[0]
    assert spec.candidates() == [{"ties": "efron", "alpha": 0.1}, {"ties": "efron", "alpha": 1.0}]
    a, b = parse_config(_minimal()), parse_config(_minimal(seed=1))
    assert a.fingerprint() == parse_config(_minimal()).fingerprint()
    assert a.fingerprint() != b.fingerprint()
    assert isinstance(a, TrainConfig)


def test_slow_families_opt_out_of_refit_extras_in_default_config():
    default = load_config()
    fg = default.model("fine_gray")
    assert (fg.optimism, fg.leave_center_out, fg.n_interval_bootstrap) == (False, False, 0)
    cox = default.model("cox")
    assert cox.optimism and cox.leave_center_out and cox.n_interval_bootstrap is None  # uses final.*
    with pytest.raises(NbriskError, match="n_interval_bootstrap"):
        parse_config({"models": [{"name": "cox", "family": "CauseSpecificCox", "n_interval_bootstrap": -1}]})


def test_list_params_become_tuples_and_clinical_names_the_predictor_set():
    from sklearn.base import clone

    from nbrisk.features.pipeline import CLINICAL_PREDICTORS

    spec = parse_config(
        _minimal(
            models=[
                {
                    "name": "cox",
                    "family": "CauseSpecificCox",
                    "params": {
                        "features": "clinical",
                        "time_varying": ["disease_status_at_hsct=*"],
                        "time_varying_knots": [182.625, 365.25],
                    },
                }
            ]
        )
    ).models[0]
    est = spec.make_estimator(random_state=0)
    assert est.features == CLINICAL_PREDICTORS
    assert est.time_varying == ("disease_status_at_hsct=*",) and est.time_varying_knots == (182.625, 365.25)
    assert clone(est).get_params() == est.get_params()
    # the shipped configs spell out the same specification as clinical_cox_params (what the benchmarks measure)
    from nbrisk.features.pipeline import clinical_cox_params

    for cfg in (load_config(), load_config(CONFIG_DIR / "quick.toml")):
        cox = cfg.model("cox").make_estimator()
        assert {k: cox.get_params()[k] for k in clinical_cox_params()} == clinical_cox_params()
