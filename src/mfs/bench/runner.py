"""The benchmark: ingest, COPY ceiling, feature backfill, incremental hour, aggregate refresh,
queries, peak memory, and the baseline (the design this store replaced) side by side — all in
one run, on a scratch database created and dropped here, fed by the synthetic market. On the
community edition also storage before and after compression, queries on compressed data and a
split rewrite of compressed history (mfs.bench.compression). Point in time: the hourly run with
revisions kept vs not, the storage of a year of revisions (mfs.bench.pit) and training-set reads
through the versions vs a COPY floor and a hand-written merge_asof (mfs.bench.pit_reads). The
feature registry: one feature added to the whole history vs a full recompute (mfs.bench.registry).

Contenders that are compared are run alternately (``rounds`` times) and summarised by medians:
these 2-core machines are shared and noisy.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mfs import calendar
from mfs.aggregates import refresh
from mfs.aggregates.refresh import RefreshResult
from mfs.bench import compression, monitoring, pit, pit_reads, registry
from mfs.bench.memory import PeakRss
from mfs.bench.scratch import scratch_database
from mfs.config import QualityConfig, get_config
from mfs.features import compute, definitions
from mfs.ingest.write import MARKET_DATA_COLUMNS, bar_arrays, store_bars
from mfs.logs import get_logger
from mfs.runs import RunReport, new_run_id
from mfs.sources.synthetic import synthetic_bars
from mfs.storage import migrations
from mfs.storage.connection import connect, connection
from mfs.storage.copy_binary import copy_rows

log = get_logger("mfs.bench")
BASELINE_WORKER = Path(__file__).with_name("baseline_worker.py")
# One symbol's daily bars straight from its hourly ones: the work ohlcv_1d spares a reader. Unlike
# ohlcv_1d (materialized, and uncompressed, below its watermark) it reads the compressed chunks.
RAW_DAILY = """SELECT time_bucket('1 day', ts, 'America/New_York'), first(open, ts), max(high), min(low),
                      last(close, ts), sum(volume)
               FROM market_data WHERE symbol = %s AND interval = '1h' AND ts >= %s GROUP BY 1"""


def bench_symbols(n: int) -> list[str]:
    """``n`` distinct, valid tickers (the synthetic market seeds its walk from the name)."""
    return [f"B{i:04d}" for i in range(n)]


def pinned_asof() -> pd.Timestamp:
    """One hour after the last complete session's close: every bar of the year is final."""
    now = pd.Timestamp.now(tz="UTC")
    for day in reversed(calendar.sessions(now - pd.Timedelta(days=10), now)):
        _open, close = calendar.session_bounds(day)
        if close + pd.Timedelta(hours=1) <= now:
            return close + pd.Timedelta(hours=1)
    raise RuntimeError("no complete NYSE session in the last 10 days")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = fn()
    return time.perf_counter() - began, result


def _execute(sql: str, params: tuple = ()) -> list[tuple]:
    with connection() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def _query_ms(sql: str, params: tuple, repeat: int = 21) -> float:
    conn = connect()
    try:
        times = []
        with conn.cursor() as cur:
            for _ in range(repeat):
                began = time.perf_counter()
                cur.execute(sql, params)
                cur.fetchall()
                times.append((time.perf_counter() - began) * 1000)
        conn.rollback()
    finally:
        conn.close()
    return statistics.median(times)


def _frames(symbols: list[str], start: pd.Timestamp, end: pd.Timestamp, asof: pd.Timestamp) -> dict[str, pd.DataFrame]:
    return {s: synthetic_bars(s, "1h", start, end, asof) for s in symbols}


def _columns_data(frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """All frames as one set of column arrays, in the shape the COPY encoder takes."""
    df = pd.concat([f.assign(symbol=s) for s, f in frames.items()], ignore_index=True)
    return bar_arrays(df["symbol"].to_numpy(object), df, "1h", "synthetic")


def _raw_copy(data: dict[str, object]) -> float:
    """Seconds to binary-COPY the same rows into an empty scratch hypertable with the same key,
    constraints and chunking as ``market_data`` and no other index (no trigger either)."""
    _execute("DROP TABLE IF EXISTS bench_copy")
    _execute(
        "CREATE TABLE bench_copy (LIKE market_data INCLUDING DEFAULTS INCLUDING CONSTRAINTS,"
        " PRIMARY KEY (symbol, interval, ts))"
    )
    _execute(
        "SELECT create_hypertable('bench_copy', by_range('ts', INTERVAL '30 days'), create_default_indexes => false)"
    )
    with connection() as conn, conn.cursor() as cur:
        began = time.perf_counter()
        copy_rows(cur, "bench_copy", MARKET_DATA_COLUMNS, data)
        conn.commit()
        return time.perf_counter() - began


def _ingest(
    frames: dict[str, pd.DataFrame], asof: pd.Timestamp, rules: QualityConfig | None = None
) -> tuple[float, RunReport]:
    """Seconds to store ``frames`` as of ``asof`` (quality checks: ``rules``, default the
    config's); every bar must be inserted — a figure from a run that quarantined, held back or
    skipped bars would measure the wrong work."""
    report = RunReport(run_id=new_run_id(), flow="bench")
    seconds, _ = _timed(lambda: store_bars(report, frames, "1h", "synthetic", asof=asof, rules=rules))
    failed = report.failed
    if failed:
        raise RuntimeError(f"benchmark ingest failed for {len(failed)} symbols: {failed[0].reason}")
    counts, bars = report.counts(), sum(len(f) for f in frames.values())
    if counts.inserted != bars:
        raise RuntimeError(
            f"benchmark ingest stored {counts.inserted} of {bars} bars "
            f"(quarantined {counts.quarantined}: {counts.quarantine_reasons})"
        )
    return seconds, report


def _expect_written(report: RunReport, rows: int, what: str) -> None:
    written = report.counts().written
    if written != rows:
        raise RuntimeError(f"benchmark {what} wrote {written} rows, expected {rows}")


def _baseline_round(url: str, symbols: list[str]) -> float:
    """The baseline, the design this store replaced: a fresh interpreter per symbol, the ``ta``
    package and row-by-row executemany."""
    began = time.perf_counter()
    for symbol in symbols:
        subprocess.run([sys.executable, str(BASELINE_WORKER), url, symbol, "baseline_features"], check=True)
    return time.perf_counter() - began


def _ours_round(symbols: list[str]) -> float:
    seconds, _ = _timed(lambda: compute(symbols, "1h", full=True))
    return seconds


def _license() -> str:
    with connection() as conn:
        return migrations.license(conn)


def _ingest_phase(
    frames: dict[str, pd.DataFrame],
    data: dict[str, Any],
    asof: pd.Timestamp,
    rounds: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    bars = len(data["ts"])
    progress(f"ingest (quality checks on / off) vs raw COPY of {bars:,} bars, alternating ×{rounds}")
    ingest_s, unchecked_s, copy_s = [], [], []
    unchecked = get_config().quality.model_copy(update={"enabled": False})
    for _ in range(rounds):
        copy_s.append(_raw_copy(data))
        _execute("TRUNCATE market_data")
        unchecked_s.append(_ingest(frames, asof, unchecked)[0])
        _execute("TRUNCATE market_data")
        ingest_s.append(_ingest(frames, asof)[0])
    _execute("DROP TABLE IF EXISTS bench_copy")
    out: dict[str, Any] = {
        "ingest_rows_per_s": round(bars / statistics.median(ingest_s)),
        "ingest_unchecked_rows_per_s": round(bars / statistics.median(unchecked_s)),
        "copy_rows_per_s": round(bars / min(copy_s)),
    }  # the fastest COPY: the ceiling
    out["ingest_vs_copy"] = round(out["ingest_rows_per_s"] / out["copy_rows_per_s"], 3)
    out["quality_ingest_ratio"] = round(statistics.median(ingest_s) / statistics.median(unchecked_s), 3)
    return out


def _backfill_phase(symbols: list[str], bars: int, progress: Callable[[str], None]) -> dict[str, Any]:
    progress(f"full feature backfill of {len(symbols)} symbols")
    seconds, report = _timed(lambda: compute(symbols, "1h", full=True))
    _expect_written(report, bars, "feature backfill")
    out = {"features_backfill_s": round(seconds, 2)} | monitoring.in_run(report, "features_backfill")
    progress("first aggregate refresh (after the backfill)")
    out["aggregate_backfill_refresh_s"] = round(_timed(_refresh)[0], 2)
    return out


def _query_phase(symbol: str, start: pd.Timestamp, suffix: str, community: bool) -> dict[str, Any]:
    """The serving queries; on the community edition also the raw daily GROUP BY, which reads the
    hourly bars themselves (ohlcv_1d reads its materialization, uncompressed, below the watermark)."""
    out = {
        f"query_daily_1y{suffix}_ms": _query_ms(
            "SELECT * FROM ohlcv_1d WHERE symbol = %s AND day >= %s ORDER BY day", (symbol, start)
        ),
        f"query_latest{suffix}_ms": _query_ms("SELECT * FROM latest_features WHERE interval = '1h'", ()),
    }
    if community:
        out[f"query_raw_daily{suffix}_ms"] = _query_ms(RAW_DAILY, (symbol, start))
    return {key: round(value, 2) for key, value in out.items()}


def _compression_phase(
    symbol: str, start: pd.Timestamp, asof: pd.Timestamp, progress: Callable[[str], None]
) -> dict[str, Any]:
    progress("compressing the history older than the ingest window, queries on it")
    out = compression.compress_history(asof)
    if out["compressed_chunks"]:
        out |= _query_phase(symbol, start, "_compressed", community=True)
    else:
        progress(f"no chunk ends before {compression.compression_horizon(asof)}: nothing compressed (use more --days)")
    return out


def _new_hour_phase(
    symbols: list[str], asof: pd.Timestamp, last_ts: dict[str, pd.Timestamp], progress: Callable[[str], None]
) -> dict[str, Any]:
    progress("one new hour for every symbol: ingest, incremental features, aggregate refresh")
    next_asof = _next_hour(asof)
    new = _frames(symbols, asof - pd.Timedelta(hours=1), next_asof, next_asof)
    new = {s: f[f["ts"] > last_ts[s]] for s, f in new.items()}
    out: dict[str, Any] = {"new_hour_bars": int(sum(len(f) for f in new.values()))}
    out["ingest_new_hour_s"] = round(_ingest(new, next_asof)[0], 3)
    seconds, report = _timed(lambda: compute(symbols, "1h"))
    _expect_written(report, out["new_hour_bars"], "incremental feature run")
    out["features_incremental_s"] = round(seconds, 3)
    out |= monitoring.in_run(report, "features_incremental")
    out["aggregate_refresh_s"] = round(_timed(_refresh)[0], 3)
    return out


def _later_hours_phase(
    symbols: list[str],
    start: pd.Timestamp,
    asof: pd.Timestamp,
    compressed: bool,
    rounds: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """After the new hour: with compressed history, a split rewrite of one symbol's; then the next
    hours with revisions kept vs not (the split symbol served in its new adjustment)."""
    out: dict[str, Any] = {}
    split = None
    if compressed:
        progress(f"split re-adjustment of {symbols[0]}'s compressed history, aggregate refresh")
        out |= compression.split_rewrite(symbols[0], start, _next_hour(asof))
        split = (symbols[0], _next_hour(asof))
    return out | pit.revision_cost(symbols, _next_hour(asof), rounds, progress, split)


def _baseline_phase(url: str, subset: list[str], rounds: int, progress: Callable[[str], None]) -> dict[str, Any]:
    progress(f"baseline (the design this store replaced) vs ours on {len(subset)} symbols, alternating ×{rounds}")
    _create_baseline_table()
    base, ours = [], []
    for _ in range(rounds):
        base.append(_baseline_round(url, subset) / len(subset))
        ours.append(_ours_round(subset) / len(subset))
    out = {
        "baseline_s_per_symbol": round(statistics.median(base), 4),
        "ours_s_per_symbol": round(statistics.median(ours), 4),
    }
    out["baseline_speedup"] = round(out["baseline_s_per_symbol"] / out["ours_s_per_symbol"], 1)
    return out


def run(
    n_symbols: int = 500,
    days: int = 365,
    baseline_n: int = 20,
    rounds: int = 3,
    progress: Callable[[str], None] = lambda message: None,
    server: str | None = None,
) -> dict[str, Any]:
    """Every figure, on a scratch database on ``server`` (an admin URL; default the store's).

    Order: ingest/COPY, feature backfill, first refresh, queries, baseline — all on uncompressed
    data, as they always were — then, on the community edition, compression of the history older
    than the ingest window and the queries again; then the new hour (against that compressed
    history), a split rewrite of one symbol's compressed history, and the next hours with
    revisions kept and not; then (outside the peak RSS, which is the pipeline's) a year of
    revisions stored and the training-set reads over them. The baseline runs
    before compression because its full recompute upserts over the whole history, which on
    compressed chunks would time decompression instead of the feature engine."""
    asof = pinned_asof()
    start = asof - pd.Timedelta(days=days)
    symbols = bench_symbols(n_symbols)
    progress(f"generating {n_symbols} symbols × {days} days of synthetic hourly bars")
    gen_s, frames = _timed(lambda: _frames(symbols, start, asof, asof))
    data = _columns_data(frames)
    bars = len(data["ts"])
    out: dict[str, Any] = {
        "symbols": n_symbols,
        "bars": bars,
        "days": days,
        "asof": asof.isoformat(),
        "bars_path": "frames (synthetic market → validation → binary COPY upsert); "
        "yfinance parsing is not on this path",
        "generate_s": round(gen_s, 2),
    }
    with scratch_database(server=server) as url:
        with PeakRss() as peak:
            out["edition"] = _license()
            community = out["edition"] == "timescale"
            out |= _ingest_phase(frames, data, asof, rounds, progress)
            # The year of input frames is the benchmark's, not the store's: released before the
            # feature runs so the peak RSS measures their workers (~450 -> ~200 MB in this process).
            last_ts = {s: f["ts"].max() for s, f in frames.items()}
            del frames, data
            out |= _backfill_phase(symbols, bars, progress)
            progress("queries")
            out |= _query_phase(symbols[0], start, "", community)
            out |= _baseline_phase(url, symbols[:baseline_n], rounds, progress)
            out |= registry.add_feature_vs_full(symbols, rounds, progress)
            if community:
                out |= _compression_phase(symbols[0], start, asof, progress)
            out |= _new_hour_phase(symbols, asof, last_ts, progress)
            out |= _later_hours_phase(symbols, start, asof, bool(out.get("compressed_chunks")), rounds, progress)
            out |= monitoring.audit_cost(symbols[:10], progress)
            out |= monitoring.drift_check_cost(progress)
        # The pipeline's peak: the training-set reads below hold a year of features in pandas
        # frames, a reader's memory, not the store's.
        out["peak_rss_mb"] = round(peak.mb, 1)
        out |= pit.year_of_revisions(asof, community, progress)
        out |= pit_reads.training_reads(rounds, progress)
    return out


def _refresh() -> RefreshResult:
    return refresh()


def _next_hour(asof: pd.Timestamp) -> pd.Timestamp:
    """The asof at which the next session's first bar exists (one new hour for every symbol)."""
    bars = calendar.hourly_bar_starts(asof, asof + pd.Timedelta(days=10))
    first = bars[bars > asof][0]
    return first + pd.Timedelta(minutes=59)


def _create_baseline_table() -> None:
    cols = ", ".join(f"{f.name} double precision" for f in definitions.load().columns)
    _execute(
        f"CREATE TABLE IF NOT EXISTS baseline_features (symbol text, interval text, ts timestamptz, {cols},"
        " PRIMARY KEY (symbol, interval, ts))"
    )
