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

# Bars are read with binary COPY: every column is fixed-width and NOT NULL, so the payload is a
# plain record array (5× faster than building Python tuples row by row).
_BAR_RECORD = np.dtype([("n", ">i2"),
                        ("l0", ">i4"), ("ts", ">i8"), ("l1", ">i4"), ("open", ">f8"),
                        ("l2", ">i4"), ("high", ">f8"), ("l3", ">i4"), ("low", ">f8"),
                        ("l4", ">i4"), ("close", ">f8"), ("l5", ">i4"), ("volume", ">i8"),
                        ("l6", ">i4"), ("ingested_at", ">i8")])
_COPY_HEADER_LEN = 19  # signature (11) + flags (4) + header extension length (4), extension empty


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


def read_bars(cur, symbol: str, interval: str, since: pd.Timestamp | None) -> Bars:
    """Committed bars of one symbol from ``since`` (inclusive; None = all), oldest first."""
    cond = cur.mogrify("symbol = %s AND interval = %s" + (" AND ts >= %s" if since is not None else ""),
                       (symbol, interval) + ((since.to_pydatetime(),) if since is not None else ())).decode()
    buf = io.BytesIO()
    cur.copy_expert(
        f"COPY (SELECT ts, open, high, low, close, volume, ingested_at FROM market_data WHERE {cond} "
        "ORDER BY ts) TO STDOUT WITH (FORMAT binary)", buf)
    payload = buf.getvalue()
    body = payload[_COPY_HEADER_LEN:-2]  # minus the header and the -1 trailer
    if len(body) % _BAR_RECORD.itemsize:
        raise FeatureError(f"{symbol} {interval}: unexpected binary COPY layout from market_data")
    rec = np.frombuffer(body, dtype=_BAR_RECORD)
    return Bars(ts=_to_utc(rec["ts"]), open=rec["open"].astype(np.float64), high=rec["high"].astype(np.float64),
                low=rec["low"].astype(np.float64), close=rec["close"].astype(np.float64),
                volume=rec["volume"].astype(np.float64), ingested_at=_to_utc(rec["ingested_at"]))


def first_stale_bar(cur, symbol: str, interval: str) -> pd.Timestamp | None:
    """The earliest bar whose feature row is missing, of another version, or from an older bar."""
    cur.execute(
        """SELECT m.ts FROM market_data m
             LEFT JOIN features f ON f.symbol = m.symbol AND f.interval = m.interval AND f.ts = m.ts
            WHERE m.symbol = %s AND m.interval = %s
              AND (f.ts IS NULL OR f.feature_version <> %s OR f.bar_ingested_at IS DISTINCT FROM m.ingested_at)
            ORDER BY m.ts LIMIT 1""",
        (symbol, interval, FEATURE_VERSION),
    )
    row = cur.fetchone()
    return pd.Timestamp(row[0]).tz_convert("UTC") if row else None


def window_start(cur, symbol: str, interval: str, start: pd.Timestamp, lookback: int):
    """(first look-back bar, its stored OBV) — or (None, None) when fewer than ``lookback`` bars
    precede ``start`` or the anchor row is unusable, which means: compute from the first bar."""
    cur.execute(
        """SELECT m.ts, f.obv FROM market_data m
             LEFT JOIN features f ON f.symbol = m.symbol AND f.interval = m.interval AND f.ts = m.ts
                                  AND f.feature_version = %s AND f.bar_ingested_at = m.ingested_at
            WHERE m.symbol = %s AND m.interval = %s AND m.ts < %s
            ORDER BY m.ts DESC OFFSET %s LIMIT 1""",
        (FEATURE_VERSION, symbol, interval, start.to_pydatetime(), lookback - 1),
    )
    row = cur.fetchone()
    if row is None or row[1] is None:
        return None, None
    return pd.Timestamp(row[0]).tz_convert("UTC"), float(row[1])


def update_symbol(conn, symbol: str, interval: str, *, full: bool, lookback: int) -> SymbolCounts:
    """Recompute the stale feature rows of one symbol in one transaction; returns the counts."""
    t0 = time.perf_counter()
    counts = SymbolCounts()
    try:
        with conn.cursor() as cur:
            start = None if full else first_stale_bar(cur, symbol, interval)
            if not full and start is None:
                conn.commit()
                counts.seconds = time.perf_counter() - t0
                return counts
            since, anchor = (None, None) if full else window_start(cur, symbol, interval, start, lookback)
            bars = read_bars(cur, symbol, interval, since)
            counts.bars_read = len(bars)
            if len(bars):
                values = engine.compute(bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
                                        obv_anchor=anchor)
                keep = np.ones(len(bars), dtype=bool) if start is None else np.asarray(bars.ts >= start)
                n = int(keep.sum())
                data = {"symbol": [symbol] * n, "interval": [interval] * n, "ts": bars.ts[keep],
                        "feature_version": np.full(n, FEATURE_VERSION),
                        "bar_ingested_at": bars.ingested_at[keep]}
                data.update({name: arr[keep] for name, arr in values.items()})
                written = upsert(cur, "features", WRITE_COLUMNS, data, key=KEY, touch={"computed_at": "now()"})
                counts.staged, counts.inserted, counts.updated = written.staged, written.inserted, written.updated
                counts.start = bars.ts[keep][0].isoformat() if n else None
                counts.anchored = anchor is not None
            if full:
                # A full recompute owns the symbol's rows: drop rows whose bar no longer exists.
                cur.execute(
                    """DELETE FROM features f WHERE f.symbol = %s AND f.interval = %s AND NOT EXISTS (
                         SELECT 1 FROM market_data m
                          WHERE m.symbol = f.symbol AND m.interval = f.interval AND m.ts = f.ts)""",
                    (symbol, interval),
                )
                counts.deleted = cur.rowcount
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    counts.seconds = time.perf_counter() - t0
    return counts
