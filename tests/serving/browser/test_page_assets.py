"""The calculator page's server side and assets, without a browser (fast): the page replaces BentoML's index, every
answer carries the Content-Security-Policy, no asset refers to another host or runs inline script, the contract
route gives the same record schema as ``/docs.json``, and both translation tables have identical keys and cover
the whole contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nbrisk.serving.web import CONTENT_SECURITY_POLICY, STATIC_DIR, page_contract

I18N = STATIC_DIR / "i18n"
ASSETS = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())


def table(lang: str) -> dict[str, str]:
    return json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8"))


def test_translation_tables_have_identical_keys_and_no_empty_text():
    en, zh = table("en"), table("zh-Hans")
    assert list(en) == list(zh), sorted(set(en) ^ set(zh))
    assert sorted(p.stem for p in I18N.glob("*.json")) == ["en", "zh-Hans"]
    for lang, t in (("en", en), ("zh-Hans", zh)):
        empty = [k for k, v in t.items() if not v.strip() and not (lang == "en" and k == "meta.review_note")]
        assert not empty, (lang, empty)
        # placeholders must match between languages, or a translated sentence would lose a number
    for k in en:
        assert set(re.findall(r"\{(\w+)\}", en[k])) == set(re.findall(r"\{(\w+)\}", zh[k])), k
    # the Chinese table is marked as needing review by a clinician fluent in it, and the page shows that note
    assert "clinician" in zh["meta.review_note"] and "审核" in zh["meta.review_note"]
    assert re.search(r"[\u4e00-\u9fff]", zh["field.donor_type"])


def test_translation_tables_cover_the_whole_contract():
    c = page_contract()
    for t in (table("en"), table("zh-Hans")):
        for f in c["fields"]:
            assert f"field.{f['name']}" in t
            if f["unit"]:
                assert f"unit.{f['name']}" in t
            for v in c["record"]["properties"][f["name"]].get("enum", []):
                assert f"opt.{f['name']}.{v}" in t
        for g in c["groups"]:
            assert f"group.{g}" in t
        for rule in c["rules"]:
            assert f"rule.{rule['id']}" in t
            assert set(rule["fields"]) <= set(c["record"]["properties"])
        for key in ("risk.low", "risk.intermediate", "risk.high", "synthetic.label", "results.relapse", "results.os"):
            assert key in t


def test_index_is_the_calculator_with_csp_not_bentomls_page(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "nbrisk risk calculator" in r.text
    assert "googletagmanager" not in r.text.lower() and "swagger" not in r.text.lower()
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'self';")
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in r.headers


@pytest.mark.parametrize("asset", [p.relative_to(STATIC_DIR).as_posix() for p in ASSETS])
def test_every_asset_is_served_with_csp_and_its_type(client, asset):
    r = client.get(f"/ui/{asset}")
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    want = {".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".svg": "image/svg+xml"}
    suffix = Path(asset).suffix
    if suffix in want:  # module scripts are refused by browsers unless served with a JavaScript MIME type
        assert r.headers["content-type"].startswith(want[suffix])


def test_probes_and_openapi_are_not_shadowed_by_the_page(client):
    assert client.get("/livez").status_code == 200
    assert "/v1/risk" in client.get("/docs.json").json()["paths"]
    assert client.get("/ui/no-such-file.js").status_code == 404
    assert client.post("/v1/risk", json={"patients": []}).status_code == 401


def test_contract_route_gives_the_record_schema_of_docs_json(client):
    got = client.get("/ui/contract.json")
    assert got.status_code == 200 and got.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    contract = got.json()
    docs = client.get("/docs.json").json()
    body = docs["paths"]["/v1/risk"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert contract["record"] == body["properties"]["patients"]["items"]
    assert [f["name"] for f in contract["fields"]] == list(contract["record"]["properties"])
    assert set(contract["table_horizons_months"]) <= set(contract["curve_horizons_months"])
    assert 24 in contract["table_horizons_months"] and len(contract["curve_horizons_months"]) <= 24
    assert set(contract["whatif_fields"]) <= set(contract["record"]["properties"])


# an absolute URL to another host, a protocol-relative one, or an @import / url() of one
_EXTERNAL = re.compile(r"""(?:https?:)?//(?!www\.w3\.org/(?:2000/svg|1999/xhtml))[A-Za-z0-9.-]+\.[A-Za-z]{2,}""")


@pytest.mark.parametrize("asset", [p for p in ASSETS if p.suffix in (".html", ".js", ".css", ".svg")], ids=str)
def test_no_asset_refers_to_another_host(asset):
    text = asset.read_text(encoding="utf-8")
    assert not _EXTERNAL.findall(text), asset


def test_page_has_no_inline_script_or_style_and_keeps_the_key_out_of_local_storage():
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all(
        'src="/ui/' in attrs and 'type="module"' in attrs and not body.strip() for attrs, body in scripts
    )
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert not re.search(r"\sstyle\s*=", html) and "<style" not in html
    for js in STATIC_DIR.glob("*.js"):
        text = js.read_text(encoding="utf-8")
        # uses, not mentions in comments: no localStorage, no cookies, no markup from strings, no eval
        assert not re.search(r"localStorage\s*[.\[]|document\.cookie|\.innerHTML\s*=|\beval\(|new Function", text), js
        assert not re.search(r"setAttribute\(\s*[\"']style", text), js
    api = (STATIC_DIR / "api.js").read_text(encoding="utf-8")
    assert "sessionStorage" in api and 'credentials: "omit"' in api
