"""The clinician's risk calculator page, served at ``/`` by the risk service itself.

The page replaces BentoML's own index (which loads Google Tag Manager) with nbrisk's calculator: a form generated
from the record contract, sign-in with an API key, results (stacked cumulative incidence of relapse and TRM with the
event-free remainder, EFS and OS curves, a table with 95% intervals, an icon array, the risk group in absolute
terms), a what-if comparison, the tumour-board PDF and a print style sheet, in English and Simplified Chinese.

Design choices:

* **Everything from this origin.** Every script, style sheet and icon lives in ``serving/static/`` and is served
  here; the page is plain ES modules as shipped (no Node build step) and draws its charts as SVG itself: four small
  chart types do not justify vendoring a charting library and its licence and update duties. Fonts are the
  system's (no web-font download).
* **Content-Security-Policy** ``default-src 'self'`` on every answer of this app (plus ``object-src 'none'``,
  ``base-uri 'none'``, ``frame-ancestors 'none'``): no inline script and no third-party host can run or be
  contacted even if markup were injected. Styling from script uses the CSSOM, which the policy allows, never
  ``style`` attributes.
* **The API key** is typed once and kept in ``sessionStorage`` (gone when the tab closes), never in the URL or in
  ``localStorage``, and sent as ``Authorization: Bearer`` to ``/v1``; there are no cookies.
* **One contract.** ``GET /ui/contract.json`` returns the very record schema that ``/docs.json`` documents for
  ``POST /v1/risk`` (:func:`nbrisk.serving.schemas.record_json_schema`, generated from
  :data:`nbrisk.features.record.FIELDS`), plus what a form needs beyond a JSON schema: each field's group, label and
  unit, and the contract's cross-field consistency rules with their parameters, so that the page shows them next to
  the fields they concern. The contract is public (as ``/docs.json`` is), so this route needs no key.

The app is a Starlette app mounted at ``/`` in :class:`nbrisk.serving.service.RiskService`; BentoML's passive mount
only claims the paths this app routes (``/`` and ``/ui/...``), so ``/docs.json``, the probes and ``/metrics`` are
unaffected.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"

#: The page's Content-Security-Policy: same-origin only for everything, nothing inline, no plugins, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}

#: Months shown in the table and used for the icon array; the curves use the denser grid below (≤ 24 horizons,
#: the API's limit, and always including the table's months so that one request serves both).
TABLE_HORIZONS_MONTHS = (12, 24, 36, 60)
CURVE_HORIZONS_MONTHS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 18, 21, 24, 27, 30, 36, 42, 48, 54, 60)

#: Inputs offered first in the what-if panel (the choices a transplant team can still make or that change often);
#: any other field of the form can be chosen too.
WHATIF_FIELDS = ("donor_type", "disease_status_at_hsct", "planned_post_hsct_immunotherapy")


def consistency_rules() -> list[dict[str, Any]]:
    """The record contract's cross-field rules (as :func:`nbrisk.features.record.validate_records` checks them),
    each with the fields it concerns and its parameters; the page words them from its translation tables."""
    from nbrisk.features.record import AGE_AT_HSCT_RANGE_YEARS, HLA_MISMATCH_RANGE

    return [
        {
            "id": "age_at_hsct",
            "fields": ["age_at_diagnosis_months", "months_diagnosis_to_hsct"],
            "params": {"min_years": AGE_AT_HSCT_RANGE_YEARS[0], "max_years": AGE_AT_HSCT_RANGE_YEARS[1]},
        },
        {
            "id": "hla_mismatches",
            "fields": ["donor_type", "hla_mismatches"],
            "params": {"ranges": {k: list(v) for k, v in HLA_MISMATCH_RANGE.items()}},
        },
        {"id": "cord_blood", "fields": ["donor_type", "graft_source"], "params": {}},
        {"id": "upfront_prior_auto", "fields": ["disease_phase", "prior_auto_hsct"], "params": {"max": 1}},
        {
            "id": "cr_residual",
            "fields": ["disease_status_at_hsct", "bone_marrow_tumor_percent_at_hsct", "curie_score_at_hsct"],
            "params": {},
        },
    ]


@lru_cache(maxsize=1)
def page_contract() -> dict[str, Any]:
    """What ``GET /ui/contract.json`` answers (built once: the contract is fixed for the life of the process)."""
    from nbrisk.features.record import FIELDS
    from nbrisk.serving.schemas import record_json_schema

    record = record_json_schema()
    fields: list[dict[str, Any]] = [
        {
            "name": name,
            "group": spec.group,
            "label": spec.label,
            "unit": spec.unit,
            "kind": spec.kind,
            "required": name in record["required"],
        }
        for name, spec in FIELDS.items()
        if name in record["properties"]
    ]
    groups: list[str] = []
    for name, spec in FIELDS.items():
        if name in record["properties"] and spec.group not in groups:
            groups.append(spec.group)
    return {
        "record": record,
        "fields": fields,
        "groups": groups,
        "rules": consistency_rules(),
        "table_horizons_months": list(TABLE_HORIZONS_MONTHS),
        "curve_horizons_months": list(CURVE_HORIZONS_MONTHS),
        "whatif_fields": list(WHATIF_FIELDS),
    }


async def _index(_: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


async def _contract(_: Request) -> Response:
    return JSONResponse(page_contract())


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` (CSP first of all) to every answer of the page app, static files included;
    the page itself is never cached so that a new release is picked up at once."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_page = scope.get("path") in ("", "/")

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in present]
                if is_page:
                    extra.append((b"cache-control", b"no-cache"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app() -> Starlette:
    """The page app: ``/`` (the calculator), ``/ui/contract.json`` and the static assets under ``/ui/``."""
    app = Starlette(
        routes=[
            Route("/", _index, methods=["GET", "HEAD"]),
            Route("/ui/contract.json", _contract, methods=["GET", "HEAD"]),
            Mount("/ui", app=StaticFiles(directory=STATIC_DIR), name="ui"),
        ]
    )
    app.add_middleware(SecurityHeadersMiddleware)
    return app


web_app = create_app()
