"""Answer times of the dashboard's pages (``mfs bench --dashboard``): a store of N symbols (hourly
and daily synthetic bars, features for a few of them), the app served by waitress, each page's
Dash requests timed over HTTP as a browser sends them — at 500 symbols and at N in one run, side
by side.

A page is its routing request (the layout, with the page's reads) plus its chart callbacks.
The market page is timed first (its grid read from the store: the cache emptied before each
request), then as every later visit finds it (the grid cached; reread in the background once it
is 30 s old), and its search callback. The symbol page's reads
are index lookups of one symbol, so features are computed for FEATURE_SYMBOLS symbols only. The
pipeline page is timed without a Prefect server (its API probe is refused at once): it measures
the store's run history.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd

from mfs.bench import runner
from mfs.bench.scratch import scratch_database
from mfs.features.run import compute
from mfs.ingest.write import store_bars
from mfs.runs import RunReport, new_run_id
from mfs.sources.synthetic import synthetic_bars

if TYPE_CHECKING:
    from mfs.dashboard.app import Context

REFERENCE_SYMBOLS = 500
FEATURE_SYMBOLS = 20
BATCH = 500  # symbols generated and stored at a time (bounds memory at 8,000)
REPEAT = 7


def _store(symbols: list[str], days: int, asof: pd.Timestamp, progress: Callable[[str], None]) -> None:
    start = asof - pd.Timedelta(days=days)
    for i in range(0, len(symbols), BATCH):
        batch = symbols[i : i + BATCH]
        progress(f"storing {days} days of 1h and 1d bars of symbols {i + 1}-{i + len(batch)}")
        for interval in ("1h", "1d"):
            frames = {s: synthetic_bars(s, interval, start, asof, asof=asof) for s in batch}
            store_bars(RunReport(run_id=new_run_id(), flow="bench"), frames, interval, "synthetic", asof=asof)
    progress(f"features of {FEATURE_SYMBOLS} symbols")
    compute(symbols[:FEATURE_SYMBOLS], None, full=True)


def _callback(outputs: list[tuple[str, str]], inputs: list[tuple[str, str, Any]]) -> dict[str, Any]:
    """The body of a Dash callback request, as dash-renderer posts it."""
    output = "...".join(f"{i}.{p}" for i, p in outputs)
    return {
        "output": f"..{output}.." if len(outputs) > 1 else output,
        "outputs": [{"id": i, "property": p} for i, p in outputs] if len(outputs) > 1 else
                   {"id": outputs[0][0], "property": outputs[0][1]},
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "changedPropIds": [f"{inputs[0][0]}.{inputs[0][1]}"],
        "state": [],
    }  # fmt: skip


def _route(path: str, search: str = "") -> dict[str, Any]:
    return _callback([("page", "children")], [("url", "pathname", path), ("url", "search", search)])


def _requests(symbol: str, known_at: str) -> dict[str, list[dict[str, Any]]]:
    chart = [("symbol-chart", "figure"), ("symbol-summary", "children"), ("symbol-marks", "children")]
    draw = [("symbol-name", "value", symbol), ("symbol-interval", "value", "1h"),
            ("symbol-features", "value", ["sma_20", "rsi_14"])]  # fmt: skip
    grid = [("market-search", "value", ""), ("market-group", "value", ""), ("market-problems", "value", [])]
    return {
        "market_first": [_route("/market"), _callback([("market-grid", "figure"), ("market-count", "children")], grid)],
        "market": [_route("/market"), _callback([("market-grid", "figure"), ("market-count", "children")], grid)],
        "market_search": [
            _callback(
                [("market-grid", "figure"), ("market-count", "children")],
                [("market-search", "value", "B00"), *grid[1:]],
            )
        ],
        "symbol": [_route("/symbol", f"?symbol={symbol}"), _callback(chart, [*draw, ("symbol-known-at", "value", "")])],
        "symbol_known_at": [_callback(chart, [*draw, ("symbol-known-at", "value", known_at)])],
        "pipeline": [_route("/pipeline")],
        "features": [_route("/features")],
    }


def _time_pages(base: str, ctx: Context, symbol: str, known_at: str) -> dict[str, float]:
    out: dict[str, float] = {}
    with httpx.Client(base_url=base, timeout=120) as client:
        client.get("/").raise_for_status()
        for page, bodies in _requests(symbol, known_at).items():
            times = []
            for _ in range(REPEAT):
                if page == "market_first":
                    ctx.clear()
                began = time.perf_counter()
                for body in bodies:
                    client.post("/_dash-update-component", json=body).raise_for_status()
                times.append((time.perf_counter() - began) * 1000)
            out[f"{page}_p50_ms"] = round(statistics.median(times), 1)
            out[f"{page}_max_ms"] = round(max(times), 1)
    return out


def measure(n: int, days: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """Page answer times on a scratch store of ``n`` symbols × ``days`` days."""
    # deferred: Dash, Plotly and pandas, ~920 ms (-X importtime, 2026-12-08), which `mfs bench` without
    # --dashboard does not pay
    from mfs.dashboard.app import create_app, serve
    from mfs.dashboard.db import Reader

    asof = runner.pinned_asof()
    symbols = runner.bench_symbols(n)
    with scratch_database(prefix="mfs_bench_dashboard"):
        _store(symbols, days, asof, progress)
        reader = Reader()
        app = create_app(reader, "http://127.0.0.1:9/api")  # no Prefect server: refused at once
        server = serve("127.0.0.1", 0, app)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            progress(f"timing every page at {n} symbols, {REPEAT} times each")
            port = server.effective_port
            known_at = pd.Timestamp.now(tz="UTC").isoformat()  # through the versions, every bar known
            return {"symbols": n} | _time_pages(
                f"http://127.0.0.1:{port}", app.server.config["ctx"], symbols[0], known_at
            )
        finally:
            server.close()
            thread.join(timeout=10)
            reader.close()


def run(n: int, days: int, progress: Callable[[str], None]) -> dict[int, dict[str, Any]]:
    """The reference (500 symbols) and ``n``, one after the other, in one run."""
    scales = sorted({min(REFERENCE_SYMBOLS, n), n})
    return {scale: measure(scale, days, progress) for scale in scales}
