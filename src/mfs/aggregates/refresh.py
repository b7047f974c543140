"""Refresh ohlcv_1d, ohlcv_1w and features_1d.

Apache edition (sql/031, sql/032 ``.apache``): writes to market_data/features log the ranges they
touched in ``aggregate_invalidations`` (statement triggers). A refresh, in ONE repeatable-read
transaction (every statement sees the same snapshot, so a concurrent write is either fully in
this refresh or fully left for the next one):

1. with an explicit window, log an invalidation of the window for every symbol present there;
2. for every pending New York day: delete the rollup row, insert the recomputed one (from the
   ``*_live`` views — the very queries the public views use for pending days), then the same for
   pending weeks, from the daily view;
3. delete exactly the log entries it read.

Idempotent; late and backfilled data and deletions are covered because the log says where they
happened. Community license: ``refresh_continuous_aggregate`` in autocommit (it refuses to run in
a transaction), which processes the server's own invalidation log the same way.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pandas as pd

from mfs.aggregates.sessions import sync_sessions
from mfs.errors import StorageError
from mfs.logs import get_logger
from mfs.storage import migrations
from mfs.storage.connection import connect

REFRESH_LOCK_KEY = 0x6D66735F616767  # "mfs_agg": one refresh at a time per database
AGGREGATES = ("ohlcv_1d", "ohlcv_1w", "features_1d")  # dependency order (weekly reads daily)
log = get_logger("mfs.aggregates.refresh")

# (rollup, live view, key column, source, pending view) — the daily rollups first.
_APACHE_STEPS = (
    ("ohlcv_1d_rollup", "ohlcv_1d_live", "day", "market_data", "aggregate_pending_days"),
    ("ohlcv_1w_rollup", "ohlcv_1w_live", "week", "market_data", "aggregate_pending_weeks"),
    ("features_1d_rollup", "features_1d_live", "day", "features", "aggregate_pending_days"),
)


def _timestamp(value: Any, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise StorageError(f"refresh: {name}={value!r} is not a date or timestamp") from None
    # A bare date means that New York calendar day (market concept); aware values are instants.
    return ts.tz_localize("America/New_York").tz_convert("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def refresh(start: datetime | str | None = None, end: datetime | str | None = None, *,
            url: str | None = None) -> dict[str, Any]:
    """Recompute the aggregates' invalidated buckets (or every bucket of [start, end) when given).

    Returns ``{"edition", "buckets": {aggregate: n}, "rows": {aggregate: n}, "seconds"}``.
    """
    lo, hi = _timestamp(start, "start"), _timestamp(end, "end")
    if (lo is None) != (hi is None):
        raise StorageError("refresh: give both start and end, or neither (then pending changes are refreshed)")
    if lo is not None and lo >= hi:
        raise StorageError(f"refresh: start {lo} is not before end {hi}")
    started = time.monotonic()
    sync_sessions(url)
    conn = connect(url, autocommit=True, application_name="mfs-aggregates")
    try:
        edition = migrations.edition(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (REFRESH_LOCK_KEY,))
        try:
            if edition == "timescale":
                buckets, rows = _refresh_continuous(conn, lo, hi)
            else:
                buckets, rows = _refresh_rollups(conn, lo, hi)
        finally:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (REFRESH_LOCK_KEY,))
    finally:
        conn.close()
    result = {"edition": edition, "buckets": buckets, "rows": rows,
              "window": None if lo is None else [lo.isoformat(), hi.isoformat()],
              "seconds": round(time.monotonic() - started, 3)}
    log.info("aggregates refreshed", **result)
    return result


def _refresh_rollups(conn, lo, hi) -> tuple[dict[str, int], dict[str, int]]:
    buckets: dict[str, int] = {}
    rows: dict[str, int] = {}
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            if lo is not None:
                # Every symbol with rows in the window, before or after the change.
                for source, table, column, extra in (
                    ("market_data", "market_data", "ts", "AND interval = '1h'"),
                    ("market_data", "ohlcv_1d_rollup", "day", ""),
                    ("features", "features", "ts", "AND interval = '1h'"),
                    ("features", "features_1d_rollup", "day", ""),
                ):
                    cur.execute(
                        f"""INSERT INTO aggregate_invalidations (source, symbol, interval, lo, hi)
                            SELECT DISTINCT %s, symbol, '1h', %s::timestamptz, %s::timestamptz - interval '1 microsecond'
                            FROM {table} WHERE {column} >= %s AND {column} < %s {extra}""",
                        (source, lo, hi, lo, hi),
                    )
            cur.execute("SELECT array_agg(id) FROM aggregate_invalidations")
            taken = cur.fetchone()[0] or []
            for rollup, live, key, source, pending in _APACHE_STEPS:
                aggregate = rollup.removesuffix("_rollup")
                cur.execute(f"SELECT count(*) FROM {pending} WHERE source = %s", (source,))
                buckets[aggregate] = cur.fetchone()[0]
                cur.execute(
                    f"""DELETE FROM {rollup} r USING {pending} p
                        WHERE p.source = %s AND p.symbol = r.symbol AND p.{key} = r.{key}""",
                    (source,),
                )
                cur.execute(f"INSERT INTO {rollup} SELECT * FROM {live}")
                rows[aggregate] = cur.rowcount
            cur.execute("DELETE FROM aggregate_invalidations WHERE id = ANY(%s)", (taken,))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = True
    return buckets, rows


def _refresh_continuous(conn, lo, hi) -> tuple[dict[str, int], dict[str, int]]:
    """NULL..NULL refreshes every invalidated range; an explicit window is widened to whole
    New York weeks so each aggregate's window covers complete buckets."""
    window = (None, None)
    if lo is not None:
        with conn.cursor() as cur:
            cur.execute(
                """SELECT time_bucket('1 week', %s::timestamptz, 'America/New_York'),
                          ny_plus(time_bucket('1 week', %s::timestamptz - interval '1 microsecond', 'America/New_York'),
                                  interval '7 days')""",
                (lo, hi),
            )
            window = cur.fetchone()
    with conn.cursor() as cur:
        for aggregate in AGGREGATES:
            cur.execute("CALL refresh_continuous_aggregate(%s::regclass, %s, %s)", (aggregate, *window))
    # The server does not report what it materialized; -1 says "not counted".
    return {a: -1 for a in AGGREGATES}, {a: -1 for a in AGGREGATES}
