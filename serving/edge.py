"""What every HTTP answer of the service goes through, whatever the route: security headers, a fixed-label
``/metrics``, a self-contained ``/docs.json``, one access-log line without client-controlled text, and no redirect
built from the client's ``Host``.

:class:`EdgeMiddleware` is added to the BentoML service with ``RiskService.add_asgi_middleware`` and so wraps the
whole app — probes, ``/metrics``, ``/docs.json``, ``/`` and the ``/v1`` API alike. What it fixes, each found by
trying the service as a hostile client would:

* **Security headers** on every answer (OWASP Secure Headers Project): ``X-Content-Type-Options: nosniff``, a
  ``Content-Security-Policy`` that allows nothing (JSON) or only what the self-contained HTML report needs (inline
  styles and ``data:`` images), ``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY``, cross-origin
  isolation, a ``Permissions-Policy`` without camera/microphone/geolocation and ``Cache-Control: no-store`` (answers
  carry patient estimates). A route that sets one of these itself (a page with its own CSP) keeps its value.
* **/metrics** with BentoML's own metrics switched off (they label every series with the requested path, so 3,000
  requests to invented paths made the page 12 MB and the worker 70 MB larger). Here the labels are a route
  template from a fixed list, a method from a fixed list and the status code: the number of series is bounded
  whatever clients send. ``NBRISK_METRICS_REQUIRE_KEY=1`` also puts it behind an API key.
* **/docs.json** is BentoML's OpenAPI document with BentoML's own README removed: it embedded badge images from
  outside hosts (a page rendering the document would fetch them — a third-party request from a hospital network).
* **BentoML's index page** (``/``, which loads Google Tag Manager) and its static assets are removed from the app at
  the first request; a page the service mounts itself takes their place.
* **Access log**: one line per request with the method, the *route template* (never the path: a decoded
  ``%0a`` in a path forged log lines, and a path can carry identifiers), the status and the latency. BentoML's own
  access log is switched off in the service config.
* **Redirects**: an absolute ``Location`` (Starlette builds ``http://<Host header>/v1/`` for ``/v1``) is cut to its
  path, so a client cannot make the service point elsewhere.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger("nbrisk.access")

#: Route templates that label metrics and log lines; any other path is "/ui/*", "/v1/*" or "other".
ROUTES = (
    "/v1/risk",
    "/v1/report",
    "/v1/model",
    "/livez",
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs.json",
    "/schema.json",
    "/",
)
METHODS = ("GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE")

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: The HTML report is one self-contained document: inline <style>, figures as data: URIs, no script, no fetch.
HTML_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    (b"cache-control", b"no-store"),
)

#: Names of BentoML's UI routes (its index page and the assets it loads) removed from the app.
_BENTOML_UI_ROUTES = ("index", "static_content", "assets")

DOCS_DESCRIPTION = (
    "Competing-risks relapse / transplant-related mortality (TRM) cumulative incidence, event-free and overall "
    "survival with 95% intervals after allogeneic HSCT for stage M neuroblastoma. The `/v1` routes need "
    "`Authorization: Bearer <key>`. Answers built on the synthetic cohort say `SYNTHETIC — not for clinical use`."
)


def route_template(path: str) -> str:
    """The fixed label of a request path: one of :data:`ROUTES`, ``/v1/*`` or ``other``."""
    if path in ROUTES:
        return path
    trimmed = path.rstrip("/")
    if trimmed in ROUTES:
        return trimmed
    if path.startswith("/ui/"):
        return "/ui/*"  # the calculator page's assets
    return "/v1/*" if path == "/v1" or path.startswith("/v1/") else "other"


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` plus every security header it does not set itself; an absolute Location cut to its path."""
    out = []
    present = set()
    html = False
    for k, v in headers:
        name = k.lower()
        present.add(name)
        if name == b"content-type" and v.lower().startswith(b"text/html"):
            html = True
        if name == b"location":
            v = _relative_location(v)
        out.append((k, v))
    for k, v in SECURITY_HEADERS:
        if k not in present:
            out.append((k, v))
    if b"content-security-policy" not in present:
        out.append((b"content-security-policy", (HTML_CSP if html else API_CSP).encode()))
    return out


def _relative_location(value: bytes) -> bytes:
    parts = urlsplit(value.decode("latin-1"))
    if not parts.scheme and not parts.netloc:
        return value
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//"):
        path = "/" + path.lstrip("/")
    return (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")


class _Metrics:
    """Prometheus series with bounded labels, through BentoML's client (it aggregates the worker processes)."""

    def __init__(self) -> None:
        from bentoml._internal.configuration.containers import BentoMLContainer

        self.client = BentoMLContainer.metrics_client.get()
        labels = ["route", "method", "status"]
        self.requests = self.client.Counter(
            name="nbrisk_http_requests_total", documentation="HTTP requests answered", labelnames=labels
        )
        self.duration = self.client.Histogram(
            name="nbrisk_http_request_duration_seconds",
            documentation="time from request to the start of the answer",
            labelnames=labels,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.duration.labels(route, method, str(status)).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return self.client.generate_latest(), self.client.CONTENT_TYPE_LATEST


_metrics: _Metrics | None = None


def metrics() -> _Metrics:
    """The process's metric series, created once (a second registration is an error of prometheus_client)."""
    global _metrics
    if _metrics is None:
        _metrics = _Metrics()
    return _metrics


def openapi_document(service: Any) -> bytes:
    """The service's OpenAPI document with BentoML's README (outside images and links) and contact replaced."""
    spec = service.openapi_spec.asdict()
    spec["info"] = {"title": "nbrisk risk API", "version": "1", "description": DOCS_DESCRIPTION}
    spec.pop("externalDocs", None)
    return json.dumps(spec, ensure_ascii=True).encode("ascii")


async def _send_body(send: Any, status: int, body: bytes, content_type: str, extra=()) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class EdgeMiddleware:
    """Outermost middleware of the service (see the module docstring).

    Parameters
    ----------
    app : the wrapped ASGI app (BentoML's Starlette app).
    service : the BentoML service (for its OpenAPI document).
    """

    def __init__(self, app: Any, service: Any = None):
        self.app = app
        self.service = service
        self._docs: bytes | None = None
        self._pruned: set[int] = set()
        self.access_log = os.environ.get("NBRISK_ACCESS_LOG", "1") not in ("0", "false", "no")
        self.metrics_need_key = os.environ.get("NBRISK_METRICS_REQUIRE_KEY", "0") in ("1", "true", "yes")

    def _prune_bentoml_ui(self, scope: dict) -> None:
        app = scope.get("app")
        router = getattr(app, "router", None)
        if router is None or id(app) in self._pruned:
            return
        router.routes[:] = [r for r in router.routes if getattr(r, "name", None) not in _BENTOML_UI_ROUTES]
        self._pruned.add(id(app))

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        self._prune_bentoml_ui(scope)
        path = scope.get("path", "")
        route = route_template(path)
        method = scope.get("method", "GET")
        method = method if method in METHODS else "OTHER"
        seen: dict[str, Any] = {"status": 0, "at": None}

        async def send_secured(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = int(message["status"])
                seen["at"] = time.perf_counter()
                message = {**message, "headers": with_security_headers(list(message.get("headers", [])))}
            await send(message)

        try:
            if path == "/docs.json" and method in ("GET", "HEAD") and self.service is not None:
                if self._docs is None:
                    self._docs = openapi_document(self.service)
                await _send_body(send_secured, 200, self._docs, "application/json")
            elif path == "/metrics":
                await self._metrics(scope, send_secured)
            else:
                await self.app(scope, receive, send_secured)
        finally:
            status = seen["status"] or 499  # no answer started: the client went away (or the app failed)
            seconds = (seen["at"] or time.perf_counter()) - start
            if route not in ("/metrics", "/livez", "/healthz", "/readyz"):
                try:
                    metrics().observe(route, method, status, seconds)
                except Exception as exc:  # metrics must never fail an answer
                    logger.warning("metrics not recorded (%s)", type(exc).__name__)
            if self.access_log and route not in ("/livez", "/healthz", "/readyz"):
                # probes are not logged (an orchestrator polls them every few seconds);
                # only fixed vocabulary here: never the path, query or a header value (see the module docstring)
                logger.info("%s %s %d %.1fms", method, route, status, seconds * 1000.0)

    async def _metrics(self, scope: dict, send: Any) -> None:
        if self.metrics_need_key:
            from nbrisk.serving.auth import bearer_token, key_store

            token = bearer_token(scope.get("headers", []))
            if not token or key_store().verify(token) is None:
                body = json.dumps({"error": "unauthorized", "detail": []}).encode()
                await _send_body(send, 401, body, "application/json", [(b"www-authenticate", b'Bearer realm="nbrisk"')])
                return
        body, content_type = metrics().render()
        await _send_body(send, 200, body, content_type)
