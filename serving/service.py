"""The risk service: a BentoML service (``nbrisk.serving.service:RiskService``) exposing the HTTP API of
``docs/http-api.md``.

Design (thin serving, STYLE principle 8): all work happens in the framework-free
:class:`nbrisk.serving.predictor.Predictor`; this module only speaks HTTP.

* The ``/v1`` routes are a small FastAPI app mounted into the BentoML service with ``@bentoml.asgi_app``, written as
  BentoML "class views" (methods of the service class, so they reach the loaded predictor through ``self``). A mounted
  ASGI app gives full control over status codes and bodies — the contract's ``{"error", "detail": [{"patient_index",
  "field", "message"}]}`` for 400/401/404/413/422/503 — which ``@bentoml.api`` endpoints (BentoML's own validation
  errors and 500s) would not. BentoML still provides the server (``bentoml serve``: uvicorn workers, uvloop and
  httptools), the probes ``/livez`` ``/readyz``, Prometheus ``/metrics`` and the OpenAPI document ``/docs.json``,
  into which the FastAPI routes (with the record schema generated from the contract) are merged.
* :class:`nbrisk.serving.edge.EdgeMiddleware` wraps the whole service (every route): security headers, a
  ``/metrics`` with fixed labels, a ``/docs.json`` without BentoML's outside images, no BentoML index page, an
  access log without client-controlled text, redirects without the client's ``Host``. BentoML's own metrics and
  access log are switched off in the service config below (both labelled or logged the raw request path).
* Middleware on the ``/v1`` app, outermost first: audit (one SQLite row per call, written before the answer, body
  hashed as read), bearer-key auth (401; 429 past the key's rate limit), then a guard that turns any unexpected
  exception into a JSON 500 logged without its message (messages can quote input values) and stamps
  ``X-Nbrisk-Model-Version`` on every answer.
* Bodies (:func:`read_body`): only uncompressed JSON (415 otherwise), at most 8 MiB (413), arriving within
  ``NBRISK_BODY_TIMEOUT_SECONDS`` (408 and the connection closed); reports wait in a bounded queue (503 with
  ``Retry-After`` when full). Limits: :mod:`nbrisk.serving.limits`.
* ``Accept: application/fhir+json`` on ``POST /v1/risk`` answers a FHIR R4 ``Bundle`` of ``RiskAssessment``
  resources (:mod:`nbrisk.serving.fhir`) with the same numbers.
* Concurrent small ``/v1/risk`` requests are micro-batched (:mod:`nbrisk.serving.batching`): one validation and one
  prediction per batch, formed from whatever arrived while the previous batch was computed (no timer, no added
  latency when idle).
* A missing model or unreachable registry never crashes the worker: it logs one clear line, ``/readyz`` answers 503,
  ``/v1/*`` answers 503 with a JSON error, and loading is retried (at most every ``NBRISK_MODEL_RETRY_SECONDS``,
  default 30) when ``/readyz`` or ``/v1`` is hit, so the service becomes ready once a champion is registered.
* The served alias is followed: every ``NBRISK_MODEL_REFRESH_SECONDS`` (default 60; 0 = never) a background thread
  checks which version ``models:/nbrisk@champion`` points to and swaps in a newly promoted one without a restart.

Configuration (environment, read when the service starts): ``NBRISK_MODEL_URI`` (default
``models:/nbrisk@champion``), ``MLFLOW_TRACKING_URI``, ``NBRISK_KEYS_DB``, ``NBRISK_AUDIT_DB`` (see
:mod:`nbrisk.settings`), ``NBRISK_WORKERS`` (uvicorn worker processes, default 1: read at import because BentoML's
decorator needs it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import anyio
import anyio.to_thread
import bentoml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from nbrisk.serving import fhir, limits
from nbrisk.serving.audit import AuditMiddleware
from nbrisk.serving.auth import BearerAuthMiddleware, key_store, send_json
from nbrisk.serving.batching import MicroBatcher
from nbrisk.serving.edge import EdgeMiddleware
from nbrisk.serving.memory import limit_malloc_arenas
from nbrisk.serving.predictor import ModelUnavailable, Predictor, error_location, freeze_heap
from nbrisk.serving.schemas import (
    MAX_BODY_BYTES,
    ErrorResponse,
    PayloadTooLarge,
    ProblemDetail,
    RequestError,
    RiskResponse,
    check_body_headers,
    check_report_format,
    parse_report_request,
    parse_risk_request,
    report_request_schema,
    risk_request_schema,
)
from nbrisk.serving.web import web_app

logger = logging.getLogger("nbrisk.serving")

#: Requests with up to this many patients go through the micro-batcher (concurrent ones are predicted together);
#: larger ones are predicted on their own in a worker thread.
BATCH_MAX_PATIENTS = 32


def _configure_logging() -> None:
    """Send ``nbrisk.*`` log lines to stderr once. Our code logs counts, versions and exception types only; each
    line names its worker process (several workers write to one log)."""
    root = logging.getLogger("nbrisk")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII written as ``\\u`` escapes: any Python str can be sent (an unpaired surrogate from a
    client's ``\\ud83d`` escape would make ``ensure_ascii=False`` + UTF-8 fail with a 500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _error(status: int, message: str, detail: list[ProblemDetail] | None = None) -> JSONResponse:
    return SafeJSONResponse({"error": message, "detail": [d.as_dict() for d in detail or []]}, status_code=status)


class ClientGone(Exception):
    """The client closed the connection before its request body arrived: there is nobody to answer."""


class GuardMiddleware:
    """Innermost ``/v1`` middleware: unexpected exception → JSON 500 (logged as type and location only, never the
    message, which may quote request values); every answer gets ``X-Nbrisk-Model-Version``."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = scope.setdefault("nbrisk", {})
        started = False

        async def send_with_version(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                version = ctx.get("model_version")
                if version is not None:
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"x-nbrisk-model-version", str(version).encode())],
                    }
            await send(message)

        try:
            await self.app(scope, receive, send_with_version)
        except (ClientGone, ClientDisconnect):
            # nobody is listening, but the ASGI cycle is completed (BentoML's timeout middleware waits for an answer
            # otherwise); 499 is nginx's "client closed request": audited as such, never as a 500
            if not started:
                await send_json(send, 499, {"error": "client closed request", "detail": []})
        except Exception as exc:
            logger.error(
                "unhandled %s at %s on %s %s",
                type(exc).__name__,
                error_location(exc),
                scope.get("method"),
                scope.get("path"),
            )
            if not started:
                await send_json(send, 500, {"error": "internal error", "detail": []})


api = FastAPI(
    title="nbrisk risk API",
    version="1",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
    description="Competing-risks relapse / TRM, EFS and OS predictions after allo-HSCT for stage M "
    "neuroblastoma. All routes need `Authorization: Bearer <key>`.",
)
# add_middleware puts each new one outermost: the order below gives audit → auth → guard → routes.
api.add_middleware(GuardMiddleware)
api.add_middleware(BearerAuthMiddleware)
api.add_middleware(AuditMiddleware)


@api.exception_handler(RequestError)
async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
    return SafeJSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers or None)


@api.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, "http error")
    return JSONResponse(
        {"error": message, "detail": []}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


async def read_body(request: Request, limit: int = MAX_BODY_BYTES, timeout: float | None = None) -> bytes:
    """The request body: 415 unless uncompressed JSON by its headers, 413 past ``limit`` bytes (declared length
    checked before reading), 408 unless the whole body arrives within ``timeout`` seconds (default: the service's
    ``NBRISK_BODY_TIMEOUT_SECONDS``) — a client that declares a body and sends nothing no longer holds the
    connection; :class:`ClientGone` when the client disconnects first."""
    headers = request.headers
    check_body_headers(headers.get("content-type"), headers.get("content-encoding"))
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body larger than {limit} bytes")
    timeout = limits.current().limits.body_timeout_seconds if timeout is None else timeout
    deadline = anyio.current_time() + timeout
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            with anyio.fail_after(max(deadline - anyio.current_time(), 0.0)):
                message = await request.receive()
        except TimeoutError:
            raise limits.BodyTimeout(timeout) from None
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorResponse} for s in (400, 401, 408, 413, 415, 422, 429, 503)
}
_RISK_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": risk_request_schema()}}},
    "parameters": [
        {
            "name": "Accept",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "enum": ["application/json", "application/fhir+json"]},
            "description": "application/fhir+json: a FHIR R4 Bundle of RiskAssessment resources (same numbers)",
        }
    ],
}
_REPORT_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": report_request_schema()}}},
    "parameters": [
        {
            "name": "format",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["pdf", "html"], "default": "pdf"},
        }
    ],
}


class ModelState:
    """The served predictor, or why there is none; retries loading at most every ``retry_seconds``."""

    def __init__(self, uri: str | None = None, retry_seconds: float = 30.0, refresh_seconds: float = 60.0):
        self.uri = uri
        self.retry_seconds = retry_seconds
        self.refresh_seconds = refresh_seconds
        self.predictor: Predictor | None = None
        self.error: str | None = None
        self._last_attempt = float("-inf")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    # -- following an alias ------------------------------------------------------------------------------------
    def start_refresh(self) -> None:
        """Follow a registry alias: every ``refresh_seconds`` check which version ``models:/NAME@ALIAS`` points to,
        and swap in the new version when ``nbrisk promote`` moved it — no restart needed. The swap is one reference
        assignment: a request in flight finishes with the model it started with."""
        from nbrisk.settings import get_settings

        uri = self.uri or get_settings().model_uri
        if self.refresh_seconds <= 0 or not (uri.startswith("models:/") and "@" in uri):
            return
        self._refresher = threading.Thread(target=self._refresh_loop, name="nbrisk-model-refresh", daemon=True)
        self._refresher.start()

    def stop(self) -> None:
        self._stop.set()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.refresh()
            except Exception as exc:  # the registry may be briefly unreachable: keep serving the current model
                logger.warning("model refresh failed (%s); still serving the current model", type(exc).__name__)

    def refresh(self) -> None:
        current = self.predictor
        if current is None:
            return  # loading is ensure()'s job
        from nbrisk.models.pyfunc import resolve_model_version

        _, version = resolve_model_version(current.served.uri)
        if version == current.served.version:
            return
        logger.info(
            "alias %s now points to version %s (was %s): loading it",
            current.served.uri,
            version,
            current.served.version,
        )
        try:
            predictor = Predictor.from_uri(current.served.uri)
        except ModelUnavailable as exc:
            logger.error(
                "new model version could not be loaded (%s); still serving version %s", exc, current.served.version
            )
            return
        predictor.warm_up()
        self.predictor = predictor
        freeze_heap()  # the old model is unreachable now: collected, then the new one frozen
        logger.info(
            "serving model %s version %s (alias %s)",
            predictor.served.name,
            predictor.served.version,
            predictor.served.alias,
        )

    def load(self, only_if_missing: bool = False) -> None:
        with self._lock:
            if only_if_missing and self.predictor is not None:
                return  # another thread loaded it while this one waited for the lock
            self._last_attempt = time.monotonic()
            try:
                predictor = Predictor.from_uri(self.uri)
            except ModelUnavailable as exc:
                self.error = str(exc)
                logger.error(
                    "no model to serve: %s; /readyz answers 503 and /v1 answers 503 until one can be "
                    "loaded (retry every %.0f s)",
                    self.error,
                    self.retry_seconds,
                )
                return
            predictor.warm_up()
            self.predictor, self.error = predictor, None
            freeze_heap()  # no gen-2 collection re-traverses the model and libraries (see freeze_heap)
            info = predictor.served
            logger.info(
                "serving model %s version %s (alias %s)%s",
                info.name,
                info.version,
                info.alias,
                " — trained on SYNTHETIC data, not for clinical use" if info.synthetic_training_data else "",
            )

    def ensure(self) -> Predictor | None:
        if self.predictor is None and time.monotonic() - self._last_attempt >= self.retry_seconds:
            self.load(only_if_missing=True)
        return self.predictor


@bentoml.service(
    name="nbrisk",
    workers=int(os.environ.get("NBRISK_WORKERS", "1")),
    traffic={"timeout": 120},
    # BentoML's metrics label series with the raw request path (unbounded) and its access log writes the decoded
    # path (a %0a forges a line): both are replaced by nbrisk.serving.edge
    metrics={"enabled": False},
    logging={"access": {"enabled": False}},
)
@bentoml.asgi_app(api, path="/v1")
@bentoml.asgi_app(web_app, path="/")  # the calculator page (serving/web.py) replaces BentoML's index
class RiskService:
    """nbrisk risk service: relapse / TRM cumulative incidence, EFS and OS with 95% intervals, risk groups,
    tumour-board reports and the model card. SYNTHETIC models are labelled as such in every answer."""

    def __init__(self) -> None:
        _configure_logging()
        limit_malloc_arenas()  # flat memory under load (serving/memory.py); a no-op when started by `nbrisk serve`
        limits.configure(limits.Limits.from_env())
        retry = float(os.environ.get("NBRISK_MODEL_RETRY_SECONDS", "30"))
        refresh = float(os.environ.get("NBRISK_MODEL_REFRESH_SECONDS", "60"))
        self.state = ModelState(
            os.environ.get("NBRISK_MODEL_URI") or None, retry_seconds=retry, refresh_seconds=refresh
        )
        self.state.load()
        self.state.start_refresh()
        self.batcher = MicroBatcher()
        if not key_store().has_active_keys():
            logger.warning(
                "no active API key: every /v1 call will be refused (401); create one with `nbrisk keys create NAME`"
            )

    @bentoml.on_shutdown
    def _stop_refresh(self) -> None:
        self.state.stop()

    def __is_ready__(self) -> bool:
        return self.state.ensure() is not None

    async def _predictor(self, request: Request) -> Predictor:
        predictor = self.state.predictor
        if predictor is None:  # retry loading (rate-limited) off the event loop: it can take seconds
            predictor = await anyio.to_thread.run_sync(self.state.ensure)
        if predictor is None:
            raise RequestError(
                "model unavailable", [ProblemDetail(None, None, self.state.error or "no model")], status_code=503
            )
        request.scope.setdefault("nbrisk", {})["model_version"] = predictor.served.version
        return predictor

    @api.post(
        "/risk",
        response_model=None,
        openapi_extra=_RISK_BODY,
        responses={200: {"model": RiskResponse}, **_ERRORS},
        summary="Relapse / TRM cumulative incidence, EFS and OS with 95% intervals, for 1–1,000 patients",
    )
    async def risk(self, request: Request) -> Response:
        predictor = await self._predictor(request)
        req = parse_risk_request(await read_body(request))
        request.scope["nbrisk"]["n_patients"] = len(req.patients)
        if len(req.patients) > BATCH_MAX_PATIENTS:
            # already a batch: predicted alone, in a worker thread so the event loop keeps serving
            answer = await anyio.to_thread.run_sync(predictor.risk, req.patients, req.horizons_months, req.problems)
        else:
            answer = await self.batcher.submit(predictor, req)
        if fhir.wants_fhir(request.headers.get("accept")):
            return SafeJSONResponse(fhir.risk_bundle(answer), media_type=fhir.FHIR_JSON)
        return JSONResponse(answer)

    @api.post(
        "/report",
        response_model=None,
        openapi_extra=_REPORT_BODY,
        responses={200: {"content": {"application/pdf": {}, "text/html": {}}}, **_ERRORS},
        summary="The tumour-board report for one patient (?format=pdf|html)",
    )
    async def report(self, request: Request) -> Response:
        predictor = await self._predictor(request)
        fmt = check_report_format(request.query_params.get("format"))
        req = parse_report_request(await read_body(request))
        request.scope["nbrisk"]["n_patients"] = 1
        queue = limits.current().reports
        # PDFs are CPU-heavy: a bounded queue answers 503 + Retry-After instead of letting them pile up
        async with queue.admit():
            data = await anyio.to_thread.run_sync(
                predictor.report, req.patients[0], fmt, req.problems, limiter=queue.limiter
            )
        media = "application/pdf" if fmt == "pdf" else "text/html; charset=utf-8"
        return Response(
            data, media_type=media, headers={"content-disposition": f'inline; filename="nbrisk-report.{fmt}"'}
        )

    @api.get(
        "/model",
        response_model=None,
        responses={200: {"description": "the model card"}, 401: _ERRORS[401], 503: _ERRORS[503]},
        summary="The served model's card: version, training data summary, validation metrics, intended use",
    )
    async def model(self, request: Request) -> Response:
        return JSONResponse((await self._predictor(request)).model_card())

    @api.api_route(
        "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"], include_in_schema=False
    )
    async def not_found(self, request: Request, path: str) -> Response:
        # The catch-all makes BentoML's mount match every /v1 path, so unknown ones are authenticated and audited
        # too, and answered in the contract's JSON shape (405 for a known route with the wrong method).
        allowed = {"risk": "POST", "report": "POST", "model": "GET"}.get(path.strip("/"))
        if allowed is not None:
            return JSONResponse(
                {"error": "method not allowed", "detail": []}, status_code=405, headers={"allow": allowed}
            )
        return _error(404, "not found")


# @bentoml.service returns a bentoml Service wrapping the class (mypy sees the class itself)
RiskService.add_asgi_middleware(EdgeMiddleware, service=RiskService)  # type: ignore[attr-defined]
