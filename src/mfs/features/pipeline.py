"""One symbol's feature update: find what is stale, read bars with their look-back, compute, write.

Runs inside a worker process on that worker's single connection (see worker.py); one symbol is
one REPEATABLE READ transaction, so the stale-bar search, the bars, the OBV anchor and the write
all see one snapshot of committed data, and a reader never sees half a symbol.

Incremental rule (documented in the README): recompute from the EARLIEST bar that has no feature
row of the current FEATURE_VERSION, or whose ``market_data.ingested_at`` differs from the
``bar_ingested_at`` stored with its feature row (the partial last bar that ingest overwrote, a
late correction, a backfilled older bar). Everything from that bar on is recomputed, reading
``lookback`` bars before it, counted in bars (not calendar time). OBV is continued from the stored
value of the first look-back bar, so the rows written equal a full recompute.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mfs.errors import FeatureError
from mfs.features import engine
from mfs.features.spec import FEATURE_VERSION, FEATURES
from mfs.storage.bulk import PG_EPOCH_US, Column, upsert

KEY = ["symbol", "interval", "ts"]
WRITE_COLUMNS = [Column("symbol", "text"), Column("interval", "text"), Column("ts", "timestamptz"),
                 Column("feature_version", "int4"), Column("bar_ingested_at", "timestamptz")] + [
    Column(f.name, f.pgtype) for f in FEATURES]

# Bars and row states are read with binary COPY: every column selected is fixed-width and NOT NULL,
# so the payload is a plain record array (far faster than building Python tuples row by row).
_COPY_HEADER_LEN = 19  # signature (11) + flags (4) + header extension length (4), extension empty


def _record(fields: list[tuple[str, str]]) -> np.dtype:
    layout = [("n", ">i2")]
    for i, (name, kind) in enumerate(fields):
        layout += [(f"l{i}", ">i4"), (name, kind)]
    return np.dtype(layout)


_BAR_RECORD = _record([("ts", ">i8"), ("open", ">f8"), ("high", ">f8"), ("low", ">f8"), ("close", ">f8"),
                       ("volume", ">i8"), ("ingested_at", ">i8")])
_BAR_STATE = _record([("ts", ">i8"), ("ingested_at", ">i8")])
_ROW_STATE = _record([("ts", ">i8"), ("feature_version", ">i4"), ("bar_ingested_at", ">i8")])


def _copy_records(cur, query: str, params: tuple, dtype: np.dtype) -> np.ndarray:
    buf = io.BytesIO()
    cur.copy_expert(f"COPY ({cur.mogrify(query, params).decode()}) TO STDOUT WITH (FORMAT binary)", buf)
    body = buf.getvalue()[_COPY_HEADER_LEN:-2]  # minus the header and the -1 trailer
    if len(body) % dtype.itemsize:
        raise FeatureError("unexpected binary COPY layout (a NULL or a changed column type?)")
    return np.frombuffer(body, dtype=dtype)


@dataclass
class SymbolCounts:
    bars_read: int = 0
    staged: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    start: str | None = None  # first bar (re)computed, ISO UTC; None when nothing was stale
    anchored: bool = False  # OBV continued from a stored row (incremental window)
    seconds: float = 0.0


@dataclass
class Bars:
    ts: pd.DatetimeIndex
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    ingested_at: pd.DatetimeIndex

    def __len__(self) -> int:
        return len(self.ts)


def _to_utc(pg_us: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex((pg_us.astype(np.int64) + PG_EPOCH_US).astype("datetime64[us]")).tz_localize("UTC")


def read_bars(cur, symbol: str, interval: str, since_us: int | None) -> Bars:
    """Committed bars of one symbol from ``since_us`` (PostgreSQL µs, inclusive; None = all)."""
    where = "symbol = %s AND interval = %s" + (" AND ts >= to_timestamp(%s / 1e6::float8 + 946684800)" if since_us is not None else "")
    params = (symbol, interval) + ((int(since_us),) if since_us is not None else ())
    rec = _copy_records(cur, "SELECT ts, open, high, low, close, volume, ingested_at FROM market_data "
                        f"WHERE {where} ORDER BY ts", params, _BAR_RECORD)
    return Bars(ts=_to_utc(rec["ts"]), open=rec["open"].astype(np.float64), high=rec["high"].astype(np.float64),
                low=rec["low"].astype(np.float64), close=rec["close"].astype(np.float64),
                volume=rec["volume"].astype(np.float64), ingested_at=_to_utc(rec["ingested_at"]))


@dataclass
class Plan:
    """What one symbol needs: bars[start:] (re)computed, reading from bars[window_start]."""

    bar_ts: np.ndarray  # every bar's ts, PostgreSQL µs, ascending
    start: int | None  # first bar to (re)compute; None = nothing stale
    rows_from_start: int  # feature rows that already exist for bars[start:]
    orphans: np.ndarray  # ts (µs) of feature rows whose bar no longer exists


def plan_symbol(cur, symbol: str, interval: str, *, full: bool) -> Plan:
    """Compare each bar's ingested_at with the bar_ingested_at of its feature row, in numpy.

    Two ordered index scans of ~n rows each instead of a join: the join's plan depends on the
    statistics of a freshly written hypertable and degraded to a nested loop (0.5 s per symbol).
    """
    key = (symbol, interval)
    bars = _copy_records(cur, "SELECT ts, ingested_at FROM market_data WHERE symbol = %s AND interval = %s "
                         "ORDER BY ts", key, _BAR_STATE)
    rows = _copy_records(cur, "SELECT ts, feature_version, coalesce(bar_ingested_at, '-infinity') FROM features "
                         "WHERE symbol = %s AND interval = %s ORDER BY ts", key, _ROW_STATE)
    bar_ts, row_ts = bars["ts"].astype(np.int64), rows["ts"].astype(np.int64)
    if len(row_ts):
        pos = np.minimum(np.searchsorted(row_ts, bar_ts), len(row_ts) - 1)  # the row of each bar, if any
        has_row = row_ts[pos] == bar_ts
        current = has_row & (rows["feature_version"][pos] == FEATURE_VERSION) & (
            rows["bar_ingested_at"][pos].astype(np.int64) == bars["ingested_at"].astype(np.int64))
    else:
        has_row = current = np.zeros(len(bar_ts), dtype=bool)
    orphans = row_ts[~np.isin(row_ts, bar_ts)]
    if full:
        start = 0 if len(bar_ts) else None
    else:
        stale = np.flatnonzero(~current)
        start = int(stale[0]) if len(stale) else None
    existing = int(has_row[start:].sum()) if start is not None else 0
    return Plan(bar_ts=bar_ts, start=start, rows_from_start=existing, orphans=orphans)


def obv_anchor(cur, symbol: str, interval: str, ts_us: int) -> float | None:
    """The stored OBV of the bar at ``ts_us`` (its row is current: it precedes every stale bar)."""
    cur.execute("SELECT obv FROM features WHERE symbol = %s AND interval = %s "
                "AND ts = to_timestamp(%s / 1e6::float8 + 946684800) AND feature_version = %s",
                (symbol, interval, int(ts_us), FEATURE_VERSION))
    row = cur.fetchone()
    return None if row is None or row[0] is None else float(row[0])


def update_symbol(conn, symbol: str, interval: str, *, full: bool, lookback: int) -> SymbolCounts:
    """Recompute the stale feature rows of one symbol in one transaction; returns the counts."""
    t0 = time.perf_counter()
    counts = SymbolCounts()
    try:
        with conn.cursor() as cur:
            plan = plan_symbol(cur, symbol, interval, full=full)
            if len(plan.orphans):
                # A row whose bar no longer exists (bar deleted or relabelled) would be served forever.
                cur.execute("DELETE FROM features WHERE symbol = %s AND interval = %s "
                            "AND ts = ANY(ARRAY(SELECT to_timestamp(x / 1e6::float8 + 946684800) FROM unnest(%s::bigint[]) x))",
                            (symbol, interval, [int(x) for x in plan.orphans]))
                counts.deleted = cur.rowcount
            if plan.start is not None:
                first = plan.start - lookback
                anchor = obv_anchor(cur, symbol, interval, plan.bar_ts[first]) if first > 0 else None
                if anchor is None:
                    first = 0  # not enough history before start, or no usable anchor: from the first bar
                bars = read_bars(cur, symbol, interval, plan.bar_ts[first] if first > 0 else None)
                counts.bars_read = len(bars)
                values = engine.compute(bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
                                        obv_anchor=anchor)
                keep = slice(plan.start - first, None)
                n = len(bars) - (plan.start - first)
                data = {"symbol": [symbol] * n, "interval": [interval] * n, "ts": bars.ts[keep],
                        "feature_version": np.full(n, FEATURE_VERSION), "bar_ingested_at": bars.ingested_at[keep]}
                data.update({name: arr[keep] for name, arr in values.items()})
                # Only new bars (a backfill, the next hour): nothing to compare, a plain INSERT.
                written = upsert(cur, "features", WRITE_COLUMNS, data, key=KEY, touch={"computed_at": "now()"},
                                 new_keys_only=plan.rows_from_start == 0)
                counts.staged, counts.inserted, counts.updated = written.staged, written.inserted, written.updated
                counts.start = bars.ts[plan.start - first].isoformat()
                counts.anchored = anchor is not None
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    counts.seconds = time.perf_counter() - t0
    return counts
