"""A 500-symbol store filled by the real pipeline (offline Yahoo), the dashboard served from it by
waitress in this process, and headless Chromium (Debian's) driven by Playwright.

The store: tests/dataset/store.py's runs on a pinned clock (AAPL splits 4-for-1 on 2026-11-30, so
its history is re-adjusted: versions before and after), then 497 more symbols collected once on
the split day, one of them served with bad bars (quarantined). The configured symbols are every
stored one but KO, which is therefore "in the store, no schedule covers it". The dashboard's
clock is pinned to 12:15 New York on the split day: that session is in progress (partial).

Screenshots go to SCREENSHOTS (.mfs/screenshots/ of the checkout, git-ignored), one per page.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from mfs import paths
from mfs.dashboard.db import Reader
from tests.dataset.store import Store, build_store, ny
from tests.fixtures.config import config_environment

SCREENSHOTS = paths.project_root() / ".mfs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
EXTRA = [f"D{i:03d}" for i in range(497)]  # with AAPL, MSFT, KO: 500 symbols
QUARANTINED = "D001"
DASHBOARD_CLOCK = ny("2026-11-30", 12, 15)


@dataclass
class Dashboard:
    url: str
    store: Store
    prefect_api_url: str
    deployment_id: str
    reader: Reader  # the pool the served pages read from


def _add_symbols(store: Store) -> None:
    """497 more symbols, one collect and one features run at 11:30 on the split day."""
    from mfs.features.run import compute
    from mfs.ingest.run import collect
    from mfs.sources.fake_yahoo import synthetic_session
    from mfs.sources.yahoo import clear_request_cache

    at = ny("2026-11-30", 11, 30)
    clear_request_cache()
    with config_environment(
        MFS_CLOCK=at.isoformat(),
        MFS_SYMBOLS=",".join(EXTRA),  # the offline Yahoo knows the configured symbols
        MFS_INGEST__BACKOFF_INITIAL_S="0.001",
        MFS_INGEST__BACKOFF_MAX_S="0.005",
    ):
        collect(EXTRA, None, days=20, session=synthetic_session(asof=at, faults={QUARANTINED: "bad_bars"}))
        os.environ["MFS_CLOCK"] = (at + pd.Timedelta(minutes=5)).isoformat()
        compute(EXTRA, None)
    clear_request_cache()
    store.symbols += EXTRA


def _deployment(api_url: str) -> str:
    """A deployment of the collect flow in the Prefect test server (no work pool: a run it creates
    stays Scheduled, which is all the run button has to achieve)."""
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(api_url) as client:
        flow_id = client.create_flow_from_name("collect")
        return str(
            client.create_deployment(flow_id=flow_id, name="yahoo-hourly", entrypoint="flows/collect.py:collect")
        )


@pytest.fixture(scope="package")
def dashboard(db_url: str, _yfinance_cache_dir, prefect_harness) -> Iterator[Dashboard]:
    from prefect.settings import PREFECT_API_URL

    from mfs import provisioning
    from mfs.dashboard.app import create_app, serve
    from tests.fixtures.database import free_port

    store = build_store(db_url)
    _add_symbols(store)
    api_url = str(PREFECT_API_URL.value()).rstrip("/")
    deployment_id = _deployment(api_url)
    configured = ",".join(s for s in store.symbols if s != "KO")
    # Roles are the cluster's: a test that logs in as mfs_reader with its own password changed it.
    os.environ.pop("MFS_READER_PASSWORD", None)
    provisioning.sync_role_passwords(db_url)
    with config_environment(MFS_CLOCK=DASHBOARD_CLOCK.isoformat(), MFS_SYMBOLS=configured):
        reader = Reader()
        port = free_port()
        server = serve("127.0.0.1", port, create_app(reader, api_url))
        thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
        thread.start()
        try:
            yield Dashboard(f"http://127.0.0.1:{port}", store, api_url, deployment_id, reader)
        finally:
            server.close()
            thread.join(timeout=10)
            reader.close()


@pytest.fixture(scope="package")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox refuses to run as root (these machines and CI)
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser) -> Iterator:
    """A fresh page; after the test, no console error and no uncaught exception may have occurred."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.set_default_timeout(30_000)
    yield page
    context.close()
    assert errors == [], errors


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
