"""The ceiling of the serving design, for ``benchmarks/serving.py``: a bare FastAPI app around the same in-process
predictor, with nothing else.

``POST /risk`` → ``json.loads`` → :meth:`nbrisk.serving.predictor.Predictor.risk` (the very call behind nbrisk's
``/v1/risk``: record contract, model, answer) → JSON. No authentication, no audit row, no request-schema parsing or
size limits, no rate limiting, no security headers, no micro-batching, no metrics. The model is loaded once per
worker, warmed up and frozen out of the garbage collector's view exactly as the service does. Not part of the
package; run by the benchmark as::

    uvicorn bare_app:app --app-dir benchmarks --host 127.0.0.1 --port PORT [--workers N]

with ``NBRISK_MODEL_URI`` (default ``models:/nbrisk@champion``) and the benchmark's MLflow environment.
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from nbrisk.core import DEFAULT_HORIZONS_MONTHS
from nbrisk.serving.predictor import Predictor, freeze_heap

_state: dict[str, Predictor] = {}


@asynccontextmanager
async def lifespan(_app: FastAPI):
    predictor = Predictor.from_uri(os.environ.get("NBRISK_MODEL_URI") or None)
    predictor.warm_up()
    _state["predictor"] = predictor
    freeze_heap()
    yield


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/ready")
async def ready() -> Response:
    return Response("ok" if "predictor" in _state else "loading", status_code=200 if _state else 503)


@app.post("/risk")
async def risk(request: Request) -> Response:
    body = json.loads(await request.body())
    # called on the event loop: one CPU-bound call at a time, no thread hop (the fastest arrangement for one worker)
    answer = _state["predictor"].risk(body["patients"], body.get("horizons_months") or DEFAULT_HORIZONS_MONTHS)
    return JSONResponse(answer)
