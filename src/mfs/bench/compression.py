"""Community-edition figures: the store's size before and after compressing the history older
than the ingest window (what the compression policy leaves behind), and a split re-adjustment
that rewrites one symbol's compressed history through the product's write path.

The Apache edition has no compression: the runner does not call these there.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from mfs.aggregates import refresh
from mfs.config import get_config
from mfs.ingest.write import store_bars
from mfs.market import NY
from mfs.runs import RunReport, new_run_id
from mfs.sources.fake_yahoo import split_adjusted
from mfs.sources.synthetic import synthetic_bars
from mfs.storage.connection import connection

HYPERTABLES = ("market_data", "features")
SPLIT_RATIO = 4.0
_COMPRESS_OLDER = """SELECT count(compress_chunk(c, if_not_compressed => true))
                     FROM show_chunks(%s::regclass, older_than => %s::timestamptz) c"""
_COMPRESSED_CHUNKS = """SELECT count(*) FROM timescaledb_information.chunks
                        WHERE hypertable_schema = 'public' AND hypertable_name = ANY(%s) AND is_compressed"""
# Partially compressed (status bit 8): rows written into a compressed chunk land uncompressed
# beside its compressed batches until the chunk is recompressed. timescaledb_information.chunks
# still says is_compressed, so only the catalog's status tells the two apart.
_PARTIAL_CHUNKS = (
    _COMPRESSED_CHUNKS
    + """
    AND _timescaledb_functions.chunk_status(format('%%I.%%I', chunk_schema, chunk_name)::regclass) & 8 <> 0"""
)
_DAILY_STORED = """SELECT symbol, day, open, high, low, close, volume, bar_count FROM ohlcv_1d
                   WHERE symbol = %s ORDER BY 1, 2"""
_DAILY_FROM_SCRATCH = """SELECT symbol, time_bucket('1 day', ts, 'America/New_York') AS day, first(open, ts),
                                max(high), min(low), last(close, ts), sum(volume)::bigint, count(*)
                         FROM market_data WHERE interval = '1h' AND symbol = %s GROUP BY 1, 2 ORDER BY 1, 2"""


def _fetch(sql: str, params: tuple = ()) -> list[tuple]:
    with connection() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def storage_bytes() -> int:
    """Bytes of market_data + features: heap, indexes, TOAST, compressed chunks included."""
    return int(_fetch("SELECT hypertable_size('market_data') + hypertable_size('features')")[0][0])


def compressed_chunks(tables: tuple[str, ...] = HYPERTABLES, partial: bool = False) -> int:
    """Compressed chunks of ``tables`` (with ``partial``, only those partially compressed)."""
    return int(_fetch(_PARTIAL_CHUNKS if partial else _COMPRESSED_CHUNKS, (list(tables),))[0][0])


def compression_horizon(asof: pd.Timestamp) -> pd.Timestamp:
    """Chunks entirely older than this are compressed: the same age as the compression policy's
    ``compress_after`` (ingest window + 1 day), so hourly upserts never reach them."""
    return asof - pd.Timedelta(days=get_config().ingest.incremental_days + 1)


def compress_older(tables: tuple[str, ...], horizon: pd.Timestamp) -> int:
    """Compress every chunk of ``tables`` entirely older than ``horizon``; how many were compressed."""
    chunks = 0
    with connection() as conn, conn.cursor() as cur:
        for table in tables:
            cur.execute(_COMPRESS_OLDER, (table, horizon))
            (compressed,) = cur.fetchone() or (0,)
            chunks += compressed
    return chunks


def compress_history(asof: pd.Timestamp) -> dict[str, Any]:
    """Compress every chunk older than the ingest window; sizes before and after.

    With too short a history no chunk is old enough: then only ``compressed_chunks`` (0) is
    reported — a ratio of sizes over nothing compressed would say nothing."""
    before = storage_bytes()
    began = time.perf_counter()
    chunks = compress_older(HYPERTABLES, compression_horizon(asof))
    seconds = time.perf_counter() - began
    if chunks == 0:
        return {"compressed_chunks": 0}
    after = storage_bytes()
    return {
        "compressed_chunks": chunks,
        "compress_s": round(seconds, 2),
        "storage_bytes_uncompressed": before,
        "storage_bytes_compressed": after,
        "compression_ratio": round(before / after, 2),
    }


def split_frame(symbol: str, start: pd.Timestamp, asof: pd.Timestamp) -> pd.DataFrame:
    """``symbol``'s whole hourly history as the source serves it once a 4-for-1 split took effect
    on ``asof``'s New York day: every bar's prices / 4 and volume × 4 (no jump at the split)."""
    bars = synthetic_bars(symbol, "1h", start, asof, asof)
    return split_adjusted(bars, split_day(asof), SPLIT_RATIO, asof)


def split_day(asof: pd.Timestamp) -> pd.Timestamp:
    """The day of the split ``split_rewrite(…, asof)`` simulates: ``asof``'s New York day."""
    return pd.Timestamp(asof.tz_convert(NY).date())


def _rewrite(symbol: str, frame: pd.DataFrame, asof: pd.Timestamp) -> float:
    """Seconds to store ``frame`` over the stored history; every bar must be an update — a figure
    from a rewrite that inserted, skipped or quarantined bars would measure other work."""
    stored = int(_fetch("SELECT count(*) FROM market_data WHERE symbol = %s AND interval = '1h'", (symbol,))[0][0])
    report = RunReport(run_id=new_run_id(), flow="bench")
    began = time.perf_counter()
    store_bars(report, {symbol: frame}, "1h", "synthetic", asof=asof)
    seconds = time.perf_counter() - began
    if report.failed:
        raise RuntimeError(f"benchmark split rewrite failed: {report.failed[0].reason}")
    counts = report.counts()
    if (counts.updated, counts.inserted) != (len(frame), 0) or stored != len(frame):
        raise RuntimeError(
            f"benchmark split rewrite of {symbol} updated {counts.updated} and inserted "
            f"{counts.inserted} of {len(frame)} bars ({stored} stored; quarantined "
            f"{counts.quarantined}: {counts.quarantine_reasons})"
        )
    return seconds


def split_rewrite(symbol: str, start: pd.Timestamp, asof: pd.Timestamp) -> dict[str, Any]:
    """Rewrite ``symbol``'s compressed history as a split re-adjustment does, refresh the
    aggregates, and refuse the figures unless its daily aggregate then equals a from-scratch
    GROUP BY of the rewritten bars (a refresh that did not catch up would be timed too short)."""
    frame = split_frame(symbol, start, asof)
    bars = ("market_data",)  # the chunks the rewrite writes into
    out: dict[str, Any] = {"chunks_compressed_before_split": compressed_chunks(bars)}
    out["split_rewrite_s"] = round(_rewrite(symbol, frame, asof), 3)
    out["split_rewrite_bars"] = len(frame)
    out["chunks_compressed_after_split"] = compressed_chunks(bars)
    out["chunks_partial_after_split"] = compressed_chunks(bars, partial=True)
    began = time.perf_counter()
    refresh()
    out["split_refresh_s"] = round(time.perf_counter() - began, 3)
    stored, expected = _fetch(_DAILY_STORED, (symbol,)), _fetch(_DAILY_FROM_SCRATCH, (symbol,))
    if stored != expected or not expected:
        differ = sum(a != b for a, b in zip(stored, expected, strict=False)) + abs(len(stored) - len(expected))
        raise RuntimeError(
            f"after the split rewrite and refresh, ohlcv_1d of {symbol} differs from its bars "
            f"on {differ} of {len(expected)} days: the refresh did not catch up"
        )
    out["split_aggregates_caught_up"] = True
    return out
