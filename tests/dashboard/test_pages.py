"""Every page of the dashboard in headless Chromium against a real 500-symbol store (conftest.py):
plots drawn, no console error, the time control across a split, the run button against the
Prefect test server, and the reader role refusing a write made through the dashboard's connection."""

from __future__ import annotations

import pandas as pd
import psycopg2
import pytest

from tests.dashboard.conftest import DASHBOARD_CLOCK, QUARANTINED, Dashboard, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def plot_data(page, graph_id: str) -> list[dict]:
    """The traces Plotly drew in the graph, as plotly.js holds them after drawing (_fullData: arrays
    decoded, which the figure's JSON carries base64-encoded)."""
    page.wait_for_selector(f"#{graph_id} .main-svg")
    return page.evaluate(
        """id => document.querySelector('#' + id + ' .js-plotly-plot')._fullData.map(t => ({
               type: t.type, name: t.name, x: Array.from(t.x || []), y: Array.from(t.y || []),
               close: Array.from(t.close || []), z: t.z ? t.z.length : 0}))""",
        graph_id,
    )


def drawn_traces(page, graph_id: str) -> int:
    """Trace groups in the rendered SVG (what the user sees), not just the data handed to Plotly."""
    return page.locator(f"#{graph_id} .cartesianlayer .trace, #{graph_id} .hm, #{graph_id} image").count()


def test_market_page_shows_the_freshness_grid_and_the_uncovered_symbol(dashboard: Dashboard, page) -> None:
    page.goto(dashboard.url + "/market")
    groups = plot_data(page, "market-groups")
    grid = plot_data(page, "market-grid")
    assert groups[0]["type"] == "heatmap" and grid[0]["type"] == "heatmap"
    assert drawn_traces(page, "market-grid") > 0 and drawn_traces(page, "market-groups") > 0
    summary = page.inner_text("#market-summary")
    assert "500 symbols in the store" in summary
    assert page.inner_text("#market-uncovered") == "KO"  # stored, not configured: nothing refreshes it
    newest = str(DASHBOARD_CLOCK.tz_convert("America/New_York").date())
    assert f"session {newest}" in summary and "partial" in summary  # the session in progress
    screenshot(page, "market")
    # search narrows the grid to the matching symbols; the quarantined one says so
    page.fill("#market-search", QUARANTINED)
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#market-count').innerText.startsWith('1 of 1')")
    grid = plot_data(page, "market-grid")
    assert grid[0]["y"] == [QUARANTINED]
    texts = page.evaluate("() => document.querySelector('#market-grid .js-plotly-plot').data[0].text.flat()")
    assert "quarantined" in texts, texts


def test_symbol_page_draws_candles_volume_and_registry_features(dashboard: Dashboard, page) -> None:
    page.goto(dashboard.url + "/symbol?symbol=MSFT&interval=1h")
    page.wait_for_selector("#symbol-bar-count")
    traces = plot_data(page, "symbol-chart")
    kinds = {t["name"]: t["type"] for t in traces}
    assert kinds["bars"] == "candlestick" and kinds["volume"] == "bar"
    assert kinds["sma_20"] == "scatter" and kinds["rsi_14"] == "scatter"  # the defaults, from the registry
    assert "partial (stored before it closed)" in kinds  # the 12:15 clock: the 11:30 bar was fetched partial
    assert drawn_traces(page, "symbol-chart") >= 4
    screenshot(page, "symbol-msft-1h")
    page.click("#symbol-interval input[value='1d']")
    page.wait_for_function("() => document.querySelector('#symbol-as-known').innerText.includes('MSFT 1d')")
    assert {t["name"] for t in plot_data(page, "symbol-chart")} >= {"bars", "volume"}


def _close_on(traces: list[dict], day: str) -> float:
    bars = next(t for t in traces if t["name"] == "bars")
    closes = [c for x, c in zip(bars["x"], bars["close"], strict=True) if str(x).startswith(day)]
    assert closes, f"no bar on {day}"
    return closes[-1]


def test_as_known_at_shows_the_adjustment_known_then(dashboard: Dashboard, page) -> None:
    """AAPL split 4-for-1 on 2026-11-30 (Yahoo re-adjusted its history): a moment before the first
    run after the split shows the old prices of 2026-11-27, a moment after shows them / 4."""
    split_at = dashboard.store.split_at
    assert split_at is not None
    page.goto(dashboard.url + "/symbol?symbol=AAPL&interval=1h")
    page.wait_for_selector("#symbol-bar-count")
    now = _close_on(plot_data(page, "symbol-chart"), "2026-11-27")
    before = (split_at - pd.Timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M")
    page.fill("#symbol-known-at", before)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "t => document.querySelector('#symbol-as-known').innerText.includes(t)", arg=before.split()[0]
    )
    page.wait_for_function("() => !document.querySelector('#symbol-chart').closest('[data-dash-is-loading]')")
    old = _close_on(plot_data(page, "symbol-chart"), "2026-11-27")
    assert old == pytest.approx(4 * now, rel=0.01), (old, now)
    screenshot(page, "symbol-aapl-before-split")
    # the "next version" button steps forward to the run that re-adjusted the history
    page.click("#symbol-next")
    page.wait_for_function(
        "t => document.querySelector('#symbol-known-at').value.startsWith(t)", arg=split_at.strftime("%Y-%m-%dT%H:%M")
    )
    page.wait_for_function(
        "t => document.querySelector('#symbol-as-known').innerText.includes(t)", arg=split_at.strftime("%H:%M")
    )
    assert _close_on(plot_data(page, "symbol-chart"), "2026-11-27") == pytest.approx(now, rel=1e-9)
    marks = page.inner_text("#symbol-actions")
    assert "split" in marks  # the split is known from then on, and marked
    screenshot(page, "symbol-aapl-after-split")


def test_pipeline_page_and_its_run_button(dashboard: Dashboard, page) -> None:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    page.goto(dashboard.url + "/pipeline")
    page.wait_for_selector("#deployments")
    assert "yahoo-hourly" in page.inner_text("#deployments")
    durations = plot_data(page, "pipeline-durations")
    assert {t["name"] for t in durations} >= {"collect", "features"}  # shell runs of the store's history
    assert "shell" in page.inner_text("#pipeline-runs")
    screenshot(page, "pipeline")
    page.click("#deployment-yahoo-hourly button")
    page.wait_for_selector("#run-created")
    with SyncPrefectClient(dashboard.prefect_api_url) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dashboard.deployment_id]))
        )
    assert len(runs) == 1 and "dashboard" in runs[0].tags
    assert runs[0].name in page.inner_text("#run-created")


def test_features_page_lists_the_registry(dashboard: Dashboard, page) -> None:
    page.goto(dashboard.url + "/features")
    page.wait_for_selector("#feature-registry")
    registry = page.inner_text("#feature-registry")
    assert "rsi_14" in registry and "active" in registry
    for name in ("feature_stats", "feature_drift", "feature_skew", "feature_audits"):
        assert page.locator(f"#monitoring-{name}, #monitoring-{name}-missing").count() == 1
    screenshot(page, "features")


def test_a_write_through_the_dashboard_connection_fails_at_the_database(dashboard: Dashboard, page) -> None:
    """The dashboard's own reader (the pool its pages read from) runs as mfs_reader: the database
    refuses a write; and a bad time typed in the control is one line on the page."""
    page.goto(dashboard.url + "/symbol?symbol=MSFT")
    page.fill("#symbol-known-at", "yesterday-ish")
    page.keyboard.press("Enter")
    page.wait_for_selector("#symbol-error")
    assert "not a time" in page.inner_text("#symbol-error")
    reader = dashboard.reader
    assert reader.scalar("SELECT current_user") == "mfs_reader"
    for statement in (
        "INSERT INTO market_data (symbol, interval, ts, open, high, low, close, volume) "
        "VALUES ('MSFT', '1h', now(), 1, 1, 1, 1, 1)",
        "UPDATE market_data SET close = close * 2",
        "DELETE FROM symbols",
        "SELECT * FROM pipeline_runs",
    ):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            reader.scalar(statement)
    assert reader.scalar("SELECT count(*) FROM symbols") == 500  # nothing was written
