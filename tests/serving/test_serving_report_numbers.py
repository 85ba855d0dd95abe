"""The report through the service's ASGI app (Starlette's TestClient over ``RiskService.to_asgi()``): the numbers in
the report's text, table and icon array are the numbers ``POST /v1/risk`` answers for the same patient.

It uses the serving tests' session service (``tests/serving/conftest.py``: the session ``risk_model`` written as an
MLflow model folder, temporary key and audit databases).
"""

from __future__ import annotations

import re

import pytest

from nbrisk.core import RISK_GROUP_TITLES
from nbrisk.features.record import example_record
from nbrisk.reports.render import fmt_pct
from nbrisk.reports.summary import icon_counts

HORIZONS = [12, 24, 36, 60]


@pytest.fixture
def service(client, serving_env):
    """The session's one service (``tests/serving/conftest.py``): a second TestClient lifespan over the same BentoML
    service class in one process would tear down the first one's service state."""
    return client, serving_env.headers


def test_report_text_table_and_icons_equal_the_v1_risk_answer(service):
    client, headers = service
    rec = example_record(with_outcomes=False)
    answer = client.post("/v1/risk", json={"patients": [rec], "horizons_months": HORIZONS}, headers=headers)
    assert answer.status_code == 200, answer.text
    res = answer.json()["results"][0]
    page = client.post("/v1/report?format=html", json={"patient": rec}, headers=headers)
    assert page.status_code == 200, page.text[:300]
    html = page.text
    table = html[html.index("At 1, 2, 3 and 5 years") : html.index("How similar training patients fared")]
    for name in ("relapse", "trm", "efs", "os"):
        for j in range(len(HORIZONS)):
            assert fmt_pct(res[name]["estimate"][j]) in table
            assert f"({fmt_pct(res[name]['lower'][j])}–{fmt_pct(res[name]['upper'][j])})" in table
    j2 = HORIZONS.index(24)
    efs, rel, trm = (res[k]["estimate"][j2] for k in ("efs", "relapse", "trm"))
    n_efs, n_rel, n_trm = icon_counts(efs, rel, trm)
    assert n_efs + n_rel + n_trm == 100
    legend = re.search(
        r"alive without relapse: <b>(\d+)</b>.*?relapsed or progressed: <b>(\d+)</b>.*?"
        r"transplant complications: <b>(\d+)</b>",
        html,
        flags=re.S,
    )
    assert legend and tuple(map(int, legend.groups())) == (n_efs, n_rel, n_trm)
    assert f"about {n_efs} would be alive without relapse" in html and f"{n_trm} would have died" in html
    alive = round(100 * res["os"]["estimate"][j2])
    assert f"about {alive} of 100 would be alive" in html
    # the headline boxes are the 2-year estimates
    for name in ("relapse", "trm", "efs", "os"):
        assert f'<div class="big">{fmt_pct(res[name]["estimate"][j2])}</div>' in html
    assert f'<div class="big">{RISK_GROUP_TITLES[res["risk_group"]]}</div>' in html
