"""Data tests of the public dataset loaders: counts against docs/statistics.md, coding, no outcome leakage."""

from __future__ import annotations

import numpy as np
import pytest

from nbrisk.core import Cause
from nbrisk.features.public import (
    PublicDataset,
    bmt_group,
    bmt_waiting_stratum,
    load_ebmt1,
    load_ebmt4,
    load_kmsurv_bmt,
    load_mgus2,
    load_sksurv_bmt,
)

# (loader, n, censored, cause 1, cause 2); bmt, ebmt1 and mgus2 counts are stated in docs/statistics.md, ebmt4 and the
# sksurv bmt counts are those of the source columns (rel.s / srv.s; sksurv status) checked below independently.
EXPECTED = [
    (load_kmsurv_bmt, 137, 54, 42, 41),
    (load_ebmt1, 1977, 836, 456, 685),
    (load_ebmt4, 2279, 1376, 370, 533),
    (load_mgus2, 1384, 409, 115, 860),
    (load_sksurv_bmt, 35, 11, 15, 9),
]


@pytest.mark.parametrize(("loader", "n", "cens", "c1", "c2"), EXPECTED)
def test_counts_and_contract(loader, n, cens, c1, c2):
    ds = loader()
    assert isinstance(ds, PublicDataset)
    assert ds.n == n == ds.X.shape[0] == ds.raw.shape[0]
    assert ds.event_counts() == {"censored": cens, "cause1": c1, "cause2": c2}
    assert list(ds.y.columns) == ["event", "time"]
    assert np.all(ds.y["time"] > 0)
    assert set(np.unique(ds.y["event"])) <= {int(c) for c in Cause}
    assert all(np.issubdtype(dt, np.floating) for dt in ds.X.dtypes)
    assert ds.time_unit in {"days", "months"}
    assert ds.description


def test_ebmt_predictors_do_not_leak_the_outcome():
    e1, e4 = load_ebmt1(), load_ebmt4()
    assert list(e1.X.columns) == ["age", "score_medium", "score_high"]  # no yrel
    assert not {"rec", "ae", "recae", "rel", "srv"} & set(e4.X.columns)
    assert list(e4.X.columns) == [
        "year_1990_1994",
        "year_1995_1998",
        "age_20_40",
        "age_over_40",
        "prophylaxis",
        "gender_mismatch",
    ]


@pytest.mark.parametrize("loader", [load_ebmt1, load_ebmt4])
def test_ebmt_post_relapse_columns_are_consistent(loader):
    ds = loader()
    ex, y = ds.extra, ds.y
    relapsed = y["event"].to_numpy() == Cause.RELAPSE
    assert np.array_equal(relapsed, ex["relapse_time"].notna().to_numpy())
    np.testing.assert_allclose(ex["relapse_time"][relapsed], y["time"][relapsed])
    np.testing.assert_allclose(ex["post_relapse_time"][relapsed], (ex["os_time"] - ex["relapse_time"])[relapsed])
    assert np.all(ex["post_relapse_time"][relapsed] >= 0)
    assert np.all(ex["os_time"] >= y["time"])
    # a death without relapse is an overall-survival death at the same time
    trm = y["event"].to_numpy() == Cause.TRM
    assert np.all(ex["os_event"][trm] == 1)
    np.testing.assert_allclose(ex["os_time"][trm], y["time"][trm])


def test_kmsurv_bmt_helpers():
    ds = load_kmsurv_bmt()
    groups = bmt_group(ds)
    assert {g: int((groups == g).sum()) for g in np.unique(groups)} == {
        "ALL": 38,
        "AML high risk": 45,
        "AML low risk": 54,
    }
    assert np.array_equal(ds.X["aml_low_risk"].to_numpy() == 1, groups == "AML low risk")
    stratum = bmt_waiting_stratum(ds)
    assert np.array_equal(stratum, ds.raw["z7"].to_numpy() > 200)
    with pytest.raises(Exception, match="no disease group"):
        bmt_group(load_sksurv_bmt())


def test_sksurv_bmt_codes_are_swapped():
    from sksurv.datasets import load_bmt

    _, y_raw = load_bmt()
    ds = load_sksurv_bmt()
    # sksurv 1 = TRM -> our 2; sksurv 2 = relapse -> our 1
    np.testing.assert_array_equal(ds.y["event"].to_numpy() == Cause.TRM, y_raw["status"] == 1)
    np.testing.assert_array_equal(ds.y["event"].to_numpy() == Cause.RELAPSE, y_raw["status"] == 2)
    # times kept except the two zeros, and the order of times is preserved
    positive = y_raw["ftime"] > 0
    np.testing.assert_array_equal(ds.y["time"][positive], y_raw["ftime"][positive])
    assert np.array_equal(np.argsort(ds.y["time"], kind="stable"), np.argsort(y_raw["ftime"], kind="stable"))


def test_mgus2_event_definition():
    ds = load_mgus2()
    raw = ds.raw
    prog = raw["pstat"].to_numpy() == 1
    np.testing.assert_array_equal(ds.y["time"][prog], raw["ptime"][prog])
    np.testing.assert_array_equal(ds.y["time"][~prog], raw["futime"][~prog])
    assert ds.X[["hgb", "creat", "mspike"]].isna().sum().tolist() == [13, 30, 11]
