"""Refresh ohlcv_1d, ohlcv_1w and features_1d.

Apache edition (sql/031, sql/032 ``.apache``): writes to market_data/features log the ranges they
touched in ``aggregate_invalidations`` (statement triggers). A refresh, in ONE repeatable-read
transaction (every statement sees the same snapshot, so a concurrent write is either fully in
this refresh or fully left for the next one):

1. with an explicit window, log an invalidation of the window for every symbol present there;
2. merge the pending ranges per symbol into whole New York days (weeks), delete the rollup rows
   in them and insert the recomputed ones: daily from the ``*_live`` views (the very queries the
   public views use for pending days), then weekly from the refreshed daily rollup;
3. delete exactly the log entries it read.

Idempotent; late and backfilled data and deletions are covered because the log says where they
happened. Community license: ``refresh_continuous_aggregate`` in autocommit (it refuses to run in
a transaction), which processes the server's own invalidation log the same way.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, TypedDict

import pandas as pd

from mfs.errors import StorageError
from mfs.logs import get_logger
from mfs.market import parse_moment
from mfs.storage import migrations
from mfs.storage.connection import connect
from mfs.storage.sessions import sync_sessions
from mfs.storage.types import Connection, one_row

REFRESH_LOCK_KEY = 0x6D66735F616767  # "mfs_agg": one refresh at a time per database
AGGREGATES = ("ohlcv_1d", "ohlcv_1w", "features_1d")  # dependency order (weekly reads daily)
# The continuous aggregate maintained for each aggregate: features_1d is a view joining the row of
# each day's last bar, and only that last bar per (symbol, day) is materialized (its columns follow
# the registry); ohlcv_1d and ohlcv_1w are views adding the session columns (sql/102) to theirs.
MATERIALIZED = {"ohlcv_1d": "ohlcv_1d_cagg", "ohlcv_1w": "ohlcv_1w_cagg", "features_1d": "features_1d_last"}
log = get_logger("mfs.aggregates.refresh")


class RefreshResult(TypedDict):
    """What a refresh did. A dict: ``mfs aggregates refresh --json`` prints it, the full-backfill
    flow returns it, and describe_refresh logs it in words."""

    edition: str  # "apache" (trigger-maintained rollups) or "timescale" (continuous aggregates)
    buckets: dict[str, int]  # per aggregate: buckets written; -1 when the server does not report it
    removed: dict[str, int]  # per aggregate: rollup rows deleted before rewriting; -1 likewise
    window: list[str] | None  # [start, end) in ISO UTC when given, None for the pending changes
    seconds: float


# Weekly buckets from the freshly refreshed daily rollup (every day of a pending week is current
# there once the daily step ran): the same aggregation as the ohlcv_1w_live view, which reads the
# always-current daily view instead. Range by range, as the views (sql/073): one grouping of every
# joined day spilled to disk at 8,000 symbols.
_WEEKLY_FROM_ROLLUP = """
    INSERT INTO ohlcv_1w_rollup
    SELECT p.symbol, b.* FROM _refresh_week_ranges p
    CROSS JOIN LATERAL (
        SELECT time_bucket('1 week', d.day, 'America/New_York') AS week,
               first(d.open, d.day), max(d.high), min(d.low), last(d.close, d.day),
               sum(d.volume)::bigint, sum(d.bar_count)::bigint
        FROM ohlcv_1d_rollup d
        WHERE d.symbol = p.symbol AND d.day >= p.lo AND d.day < p.hi
        GROUP BY 1
    ) b"""


def _timestamp(value: Any, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    return pd.Timestamp(parse_moment(value, key=name))


def refresh(
    start: datetime | str | None = None, end: datetime | str | None = None, *, url: str | None = None
) -> RefreshResult:
    """Recompute the aggregates' invalidated buckets (or every bucket of [start, end) when given).

    A bucket whose bars were all deleted is removed and not written. The community license does
    not report counts (-1).
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
        edition = migrations.check_edition(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (REFRESH_LOCK_KEY,))
        try:
            if edition == "timescale":
                buckets, removed = _refresh_continuous(conn, lo, hi)
            else:
                buckets, removed = _refresh_rollups(conn, lo, hi)
        finally:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (REFRESH_LOCK_KEY,))
    finally:
        conn.close()
    result: RefreshResult = {
        "edition": edition,
        "buckets": buckets,
        "removed": removed,
        "window": None if lo is None or hi is None else [lo.isoformat(), hi.isoformat()],
        "seconds": round(time.monotonic() - started, 3),
    }
    log.info(describe_refresh(result))
    return result


def describe_refresh(result: RefreshResult) -> str:
    """A refresh in words: what it covered and what it rewrote — the continuous aggregates of the
    community license do not say how many buckets they rewrote, so the line does not pretend to."""
    scope = "every pending change" if result["window"] is None else "[{}, {})".format(*result["window"])
    if any(n < 0 for n in result["buckets"].values()):
        done = "TimescaleDB continuous aggregates refreshed (the server does not count buckets)"
    else:
        done = "; ".join(
            f"{name} {result['buckets'][name]} buckets written, {result['removed'].get(name, 0)} replaced"
            for name in result["buckets"]
        )
    return f"aggregates refreshed for {scope}: {done}, in {result['seconds']:g} s"


def _refresh_rollups(
    conn: Connection, lo: pd.Timestamp | None, hi: pd.Timestamp | None
) -> tuple[dict[str, int], dict[str, int]]:
    """Returns (buckets written, rollup rows removed before rewriting) per aggregate."""
    written: dict[str, int] = {}
    removed: dict[str, int] = {}
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            if lo is not None:
                # Every symbol with rows in the window, before (rollup) or after (raw) the change.
                for source, table, column, extra in (
                    ("market_data", "market_data", "ts", "AND interval = '1h'"),
                    ("market_data", "ohlcv_1d_rollup", "day", ""),
                    ("features", "features", "ts", "AND interval = '1h'"),
                    ("features", "features_1d_rollup", "day", ""),
                ):
                    cur.execute(
                        f"""INSERT INTO aggregate_invalidations (source, symbol, interval, lo, hi)
                            SELECT DISTINCT %s, symbol, '1h', %s::timestamptz,
                                   %s::timestamptz - interval '1 microsecond'
                            FROM {table} WHERE {column} >= %s AND {column} < %s {extra}""",
                        (source, lo, hi, lo, hi),
                    )
            cur.execute("SELECT array_agg(id) FROM aggregate_invalidations")
            taken = one_row(cur)[0] or []
            cur.execute("CREATE TEMP TABLE _refresh_ranges ON COMMIT DROP AS SELECT * FROM aggregate_pending_ranges")
            cur.execute(
                "CREATE TEMP TABLE _refresh_week_ranges ON COMMIT DROP AS "
                "SELECT * FROM aggregate_pending_week_ranges WHERE source = 'market_data'"
            )
            # Statistics for the planner: without them it guessed the ranges' size and, for one new
            # hour of 8,000 symbols, hashed whole rollups instead of probing the ranges' keys.
            cur.execute("ANALYZE _refresh_ranges, _refresh_week_ranges")
            for rollup, key, ranges, source in (
                ("ohlcv_1d_rollup", "day", "_refresh_ranges", "market_data"),
                ("features_1d_rollup", "day", "_refresh_ranges", "features"),
                ("ohlcv_1w_rollup", "week", "_refresh_week_ranges", "market_data"),
            ):
                aggregate = rollup.removesuffix("_rollup")
                cur.execute(
                    f"""DELETE FROM {rollup} r USING {ranges} p
                        WHERE p.source = %s AND p.symbol = r.symbol AND r.{key} >= p.lo AND r.{key} < p.hi""",
                    (source,),
                )
                removed[aggregate] = cur.rowcount
                if aggregate == "ohlcv_1w":
                    cur.execute(_WEEKLY_FROM_ROLLUP)
                else:  # the live view reads the same (unchanged, same snapshot) log as the ranges
                    cur.execute(f"INSERT INTO {rollup} SELECT * FROM {aggregate}_live")
                written[aggregate] = cur.rowcount
            cur.execute("DELETE FROM aggregate_invalidations WHERE id = ANY(%s)", (taken,))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = True
    return written, removed


# Where a refresh of the pending changes ends, per source hypertable: the New York day after the
# end of its newest chunk — past every stored row, so every bucket holding one is covered, as with
# no end. Not no end (NULL): then the server sets the invalidation threshold from a bare
# max(ts) of the source, which reads every chunk (the store has no time-only index, sql/037) —
# twice per aggregate. One new hour of 200 symbols, refreshed so: 0.33 s over 60 days of history,
# 1.16 s over 730 (EXPLAIN: four max(ts) scans of 26 chunks, 60-117 ms each); with this end 0.27
# and 0.29 s (medians of 6 hours, alternated). The catalog's chunk ranges answer in ~9 ms. A
# chunk's range ends within a chunk interval (30 days) after its rows: a threshold set that far
# ahead only means the writes of that month are logged as invalidations, which a refresh reads.
# When an earlier refresh reached past that end (the source's invalidation threshold is later:
# rows removed past the newest chunk, by a TRUNCATE or a dropped newer chunk), the refresh has no
# end, as before: TimescaleDB stops an explicit window at the newest chunk, so the buckets of the
# removed rows would stay materialized and, below the watermark, served.
_STORED_UNTIL = """
    SELECT h.table_name::text,
           ny_plus(time_bucket('1 day', _timescaledb_functions.to_timestamp(max(s.range_end)), 'America/New_York'),
                   interval '1 day'),
           (SELECT _timescaledb_functions.to_timestamp(t.watermark)
            FROM _timescaledb_catalog.continuous_aggs_invalidation_threshold t WHERE t.hypertable_id = h.id)
    FROM _timescaledb_catalog.hypertable h
    JOIN _timescaledb_catalog.chunk c ON c.hypertable_id = h.id
    JOIN _timescaledb_catalog.chunk_constraint cc ON cc.chunk_id = c.id
    JOIN _timescaledb_catalog.dimension_slice s ON s.id = cc.dimension_slice_id
    WHERE h.schema_name = current_schema() AND h.table_name IN ('market_data', 'features')
    GROUP BY h.table_name, h.id"""


def _refresh_continuous(
    conn: Connection, lo: pd.Timestamp | None, hi: pd.Timestamp | None
) -> tuple[dict[str, int], dict[str, int]]:
    """Without a window: every invalidated range up to the end of the day after the newest chunk
    of the aggregate's source (_STORED_UNTIL); for the hierarchical ohlcv_1w only up to now, so its
    current, incomplete week stays with real-time aggregation (materialized, it kept rows
    truncated from ohlcv_1d through every later refresh). An explicit window is widened to whole
    New York weeks so each aggregate's window covers complete buckets."""
    with conn.cursor() as cur:
        cur.execute(_STORED_UNTIL)
        until = {table: None if reached and reached > end else end for table, end, reached in cur.fetchall()}
        cur.execute("SELECT now()")
        windows: dict[str, tuple[Any, ...]] = {
            "ohlcv_1d": (None, until.get("market_data")),
            "features_1d": (None, until.get("features")),
            "ohlcv_1w": (None, one_row(cur)[0]),
        }
    if lo is not None:
        with conn.cursor() as cur:
            cur.execute(
                """SELECT time_bucket('1 week', %s::timestamptz, 'America/New_York'),
                          ny_plus(time_bucket('1 week', %s::timestamptz - interval '1 microsecond', 'America/New_York'),
                                  interval '7 days')""",
                (lo, hi),
            )
            windows = dict.fromkeys(AGGREGATES, one_row(cur))
    with conn.cursor() as cur:
        for aggregate in AGGREGATES:
            refresh_args = (MATERIALIZED[aggregate], *windows[aggregate])
            cur.execute("CALL refresh_continuous_aggregate(%s::regclass, %s, %s)", refresh_args)
    # The server does not report what it materialized; -1 says "not counted".
    return {a: -1 for a in AGGREGATES}, {a: -1 for a in AGGREGATES}
