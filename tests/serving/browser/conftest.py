"""Fixtures of the browser tests: a real ``bentoml serve`` process serving the champion of a temporary MLflow
registry (the session's ``registered_champion``), and Debian's Chromium driven by Playwright.

Every request any page makes is recorded (:class:`RequestLog`) and anything addressed to another host than the
server under test is aborted *and* recorded, so the last test can prove that no request left 127.0.0.1; the
recording and the measured times are written to ``benchmarks/results/calculator_page*.{md,json}``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from nbrisk.serving import loadtest

CHROMIUM = os.environ.get("NBRISK_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[3]
RESULTS = REPO / "benchmarks" / "results"


@contextmanager
def bentoml_serve(tmp: Path, env_extra: dict[str, str]) -> Iterator[str]:
    """A real ``bentoml serve`` of the risk service on a free loopback port; stopped by process group."""
    with loadtest.serve(tmp, env_extra, timeout=240) as server:
        yield server.base


@dataclass
class PageServer:
    base: str
    key: str
    keys_db: Path


@pytest.fixture(scope="module")
def page_server(registered_champion, mlflow_tracking, tmp_path_factory) -> Iterator[PageServer]:
    from nbrisk.serving.auth import KeyStore

    tmp = tmp_path_factory.mktemp("page_server")
    keys_db = tmp / "keys.db"
    key = KeyStore(keys_db).create("browser-tests")
    env = {
        "NBRISK_KEYS_DB": str(keys_db),
        "NBRISK_AUDIT_DB": str(tmp / "audit.db"),
        "MLFLOW_TRACKING_URI": mlflow_tracking,
        "MLFLOW_REGISTRY_URI": mlflow_tracking,
        "NBRISK_MODEL_URI": registered_champion,
        "NBRISK_MODEL_REFRESH_SECONDS": "0",
    }
    with bentoml_serve(tmp, env) as base:
        yield PageServer(base, key, keys_db)


@dataclass
class RequestLog:
    """Every request the pages made (test, method, URL, resource type) and those that were blocked."""

    allowed_origin: str
    entries: list[dict[str, str]] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    test: str = ""

    def attach(self, context) -> None:
        def on_request(request) -> None:
            self.entries.append(
                {"test": self.test, "method": request.method, "url": request.url, "type": request.resource_type}
            )

        def guard(route) -> None:
            url = route.request.url
            if _origin(url) == self.allowed_origin:
                route.continue_()
            else:
                self.blocked.append(url)
                route.abort()

        context.on("request", on_request)
        context.route("**/*", guard)
        context.on(
            "console",
            lambda msg: self.console_errors.append(f"{self.test}: {msg.text}") if msg.type == "error" else None,
        )


def _origin(url: str) -> str:
    if url.startswith("blob:"):  # blob:http://127.0.0.1:PORT/uuid — an object URL of the page's own origin
        url = url[len("blob:") :]
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's package (`apt-get install -y chromium`, as root; "
            "scripts/test.sh does this on CI) or point NBRISK_CHROMIUM at a Chromium/Chrome binary"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start; the pages are our own.
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def request_log(page_server) -> RequestLog:
    return RequestLog(allowed_origin=page_server.base)


@pytest.fixture
def new_page(chromium, request_log, request):
    """A fresh browser context (own sessionStorage) whose requests are recorded; closed after the test."""
    contexts = []

    def make(**kwargs):
        ctx = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True, **kwargs)
        request_log.test = request.node.name
        request_log.attach(ctx)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()
