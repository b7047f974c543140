"""What the dashboard's pages read, all through :class:`mfs.dashboard.db.Reader` (mfs_reader).

"As known at" K reads the point-in-time views of the store (``bar_versions``, ``feature_versions``:
docs/point-in-time.md): the version of each bar valid at K (``known_from <= K < known_to``),
partial versions included and flagged, which is what the store held then. Without K, the current
rows with the same ``complete`` flag.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from psycopg2 import sql

from mfs import calendar
from mfs.dashboard.db import Reader
from mfs.storage.clock import pinned_clock

# Freshness of each symbol in the newest sessions (from the NYSE calendar, mfs.calendar). A cell is
#   delisted     the symbol was delisted before that session;
#   quarantined  a bar of the session was refused at ingest or is held back by the quality checks;
#   missing      no bar at all;
#   partial      fewer hourly bars than the session has, no daily bar, or a bar stored before it closed;
#   complete     otherwise.
# Bars are counted per session over the primary key's range (symbol, interval, ts); at 8,000
# symbols × 10 sessions that is ~640k index entries, read once for the whole grid.
FRESHNESS_SQL = """
WITH s AS (
    SELECT * FROM unnest(%(days)s::date[], %(starts)s::timestamptz[], %(ends)s::timestamptz[], %(hours)s::int[])
        AS s(session_date, day_start, day_end, hourly_expected)
), bars AS (
    -- the session of a bar is its New York date: grouped on it, one pass over the window's rows
    -- (a join on the session ranges compared every row with every session: 253 ms at 500 symbols)
    SELECT m.symbol, (m.ts AT TIME ZONE 'America/New_York')::date AS session_date,
           count(*) FILTER (WHERE m.interval = '1h') AS hourly,
           count(*) FILTER (WHERE m.interval = '1d') AS daily,
           bool_and(m.ingested_at >= coalesce(m.closes_at, bar_closes_at(m.interval, m.ts))) AS closed
    FROM market_data m
    WHERE m.ts >= %(first)s::timestamptz AND m.ts < %(last)s::timestamptz
    GROUP BY 1, 2
), refused AS (
    SELECT DISTINCT r.symbol, s.session_date
    FROM (SELECT symbol, ts FROM quarantined_bars WHERE symbol IS NOT NULL AND ts >= %(first)s::timestamptz
          UNION ALL
          SELECT symbol, ts FROM data_quality WHERE state = 'held back' AND ts >= %(first)s::timestamptz) r
    JOIN s ON r.ts >= s.day_start AND r.ts < s.day_end
)
SELECT y.symbol, s.session_date,
       CASE WHEN y.delisted_on IS NOT NULL AND s.session_date > y.delisted_on THEN 'delisted'
            WHEN q.symbol IS NOT NULL THEN 'quarantined'
            WHEN b.symbol IS NULL THEN 'missing'
            WHEN (%(hourly)s AND b.hourly < s.hourly_expected) OR (%(daily)s AND b.daily = 0) OR NOT b.closed
                THEN 'partial'
            ELSE 'complete' END AS status,
       coalesce(b.hourly, 0) AS hourly_bars, s.hourly_expected
FROM symbols y CROSS JOIN s
LEFT JOIN bars b ON b.symbol = y.symbol AND b.session_date = s.session_date
LEFT JOIN refused q ON q.symbol = y.symbol AND q.session_date = s.session_date
ORDER BY y.symbol, s.session_date
"""
STATUSES = ["complete", "partial", "missing", "quarantined", "delisted"]


def store_now() -> pd.Timestamp:
    """The store's clock: MFS_CLOCK when pinned (tests, drills), else now (UTC)."""
    pinned = pinned_clock()
    return pd.Timestamp(pinned) if pinned else pd.Timestamp.now(tz="UTC")


def recent_sessions(count: int, now: pd.Timestamp) -> pd.DataFrame:
    """The newest ``count`` NYSE sessions that have opened by ``now``: date, day bounds (New York
    midnights, UTC), hourly bars the session has (7; 4 on a half day)."""
    days = [d for d in calendar.sessions(now - pd.Timedelta(days=3 * count + 10), now)
            if calendar.session_bounds(d)[0] <= now][-count:]  # fmt: skip
    rows = []
    for day in days:
        open_, close = calendar.session_bounds(day)
        start = calendar.daily_bar_label(day)
        rows.append((day.date(), start, calendar.daily_bar_label(day + pd.Timedelta(days=1)),
                     -(-(close - open_) // pd.Timedelta(hours=1))))  # fmt: skip
    return pd.DataFrame(rows, columns=["session_date", "day_start", "day_end", "hourly_expected"])


def freshness(reader: Reader, sessions: int, intervals: Sequence[str]) -> pd.DataFrame:
    """One row per (symbol in the store, session): status, hourly bars stored and expected."""
    days = recent_sessions(sessions, store_now())
    if days.empty:
        return pd.DataFrame(columns=["symbol", "session_date", "status", "hourly_bars", "hourly_expected"])
    params = {
        "days": list(days["session_date"]),
        "starts": [t.isoformat() for t in days["day_start"]],
        "ends": [t.isoformat() for t in days["day_end"]],
        "hours": [int(h) for h in days["hourly_expected"]],
        "first": days["day_start"].min().isoformat(),
        "last": days["day_end"].max().isoformat(),
        "hourly": "1h" in intervals,
        "daily": "1d" in intervals,
    }
    return reader.frame(FRESHNESS_SQL, params)


def symbols(reader: Reader) -> pd.DataFrame:
    return reader.frame("SELECT symbol, active, listed_on, delisted_on, added_at FROM symbols ORDER BY symbol")


def _at(known_at: pd.Timestamp | None) -> str:
    return "infinity" if known_at is None else known_at.isoformat()


BARS_SQL = """
SELECT ts, open, high, low, close, volume, complete, known_from, reason
FROM (SELECT * FROM bar_versions
      WHERE symbol = %(symbol)s AND interval = %(interval)s
        AND known_from <= %(k)s::timestamptz AND %(k)s::timestamptz < known_to
      ORDER BY ts DESC LIMIT %(limit)s) v
ORDER BY ts
"""
CURRENT_BARS_SQL = """
SELECT ts, open, high, low, close, volume,
       ingested_at >= coalesce(closes_at, bar_closes_at(interval, ts)) AS complete,
       ingested_at AS known_from, NULL::text AS reason
FROM (SELECT * FROM market_data WHERE symbol = %(symbol)s AND interval = %(interval)s
      ORDER BY ts DESC LIMIT %(limit)s) m
ORDER BY ts
"""


def bars(reader: Reader, symbol: str, interval: str, known_at: pd.Timestamp | None, limit: int) -> pd.DataFrame:
    """The newest ``limit`` bars as known at ``known_at`` (None: now), partial ones flagged."""
    params = {"symbol": symbol, "interval": interval, "k": _at(known_at), "limit": limit}
    return reader.frame(CURRENT_BARS_SQL if known_at is None else BARS_SQL, params)


def features(
    reader: Reader, symbol: str, interval: str, names: Sequence[str], known_at: pd.Timestamp | None, since: pd.Timestamp
) -> pd.DataFrame:
    """Feature columns ``names`` (checked against the registry by the caller) from ``since`` on."""
    cols = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    where = sql.SQL("symbol = %(symbol)s AND interval = %(interval)s AND ts >= %(since)s")
    if known_at is None:
        query = sql.SQL("SELECT ts, {cols} FROM features WHERE {where} ORDER BY ts")
    else:
        query = sql.SQL(
            "SELECT ts, {cols} FROM feature_versions WHERE {where} "
            "AND known_from <= %(k)s::timestamptz AND %(k)s::timestamptz < known_to ORDER BY ts"
        )
    params = {"symbol": symbol, "interval": interval, "since": since, "k": _at(known_at)}
    return reader.frame(query.format(cols=cols, where=where), params)


def registry(reader: Reader) -> pd.DataFrame:
    """Every registered feature version, live ones first."""
    return reader.frame(
        """SELECT name, version, description, warmup, depends_on, added_at, filled_at, superseded_at,
                  retired_at, pruned_at,
                  CASE WHEN pruned_at IS NOT NULL THEN 'pruned' WHEN superseded_at IS NOT NULL THEN 'superseded'
                       WHEN retired_at IS NOT NULL THEN 'retired' ELSE 'active' END AS state
           FROM feature_registry ORDER BY (superseded_at IS NULL AND pruned_at IS NULL) DESC, name, added_at"""
    )


def chartable_features(reader: Reader) -> list[str]:
    """Active registry features whose column exists (what the symbol page can draw)."""
    frame = reader.frame(
        """SELECT r.name FROM feature_registry r
           WHERE r.superseded_at IS NULL AND r.pruned_at IS NULL AND r.retired_at IS NULL
             AND EXISTS (SELECT 1 FROM pg_attribute a  -- information_schema: ~50 ms a lookup
                         WHERE a.attrelid = 'features'::regclass AND a.attname = r.name AND NOT a.attisdropped)
           ORDER BY r.id"""
    )
    return frame["name"].tolist()


def anomalies(reader: Reader, symbol: str, interval: str, since: pd.Timestamp) -> pd.DataFrame:
    return reader.frame(
        """SELECT ts, kind, severity, state, detail FROM data_quality
           WHERE symbol = %s AND interval = %s AND ts >= %s ORDER BY ts""",
        (symbol, interval, since),
    )


def quarantined(reader: Reader, symbol: str, interval: str, since: pd.Timestamp) -> pd.DataFrame:
    return reader.frame(
        """SELECT ts, reason, quarantined_at FROM quarantined_bars
           WHERE symbol = %s AND interval = %s AND ts >= %s ORDER BY ts""",
        (symbol, interval, since),
    )


def corporate_actions(reader: Reader, symbol: str, known_at: pd.Timestamp | None) -> pd.DataFrame:
    """The splits and dividends known at ``known_at`` (None: now)."""
    known_at = known_at if known_at is not None else store_now()
    return reader.frame(
        """SELECT kind, ex_date, value, known_from FROM corporate_actions
           WHERE symbol = %s AND known_from <= %s::timestamptz AND %s::timestamptz < known_to ORDER BY ex_date""",
        (symbol, _at(known_at), _at(known_at)),
    )


def version_times(reader: Reader, symbol: str, interval: str) -> list[pd.Timestamp]:
    """The moments this series changed (a version stored): the stops of the time control."""
    frame = reader.frame(
        "SELECT DISTINCT known_from FROM bar_versions WHERE symbol = %s AND interval = %s ORDER BY 1",
        (symbol, interval),
    )
    return [pd.Timestamp(t) for t in frame["known_from"]]


def run_history(reader: Reader, limit: int = 500) -> pd.DataFrame:
    """The newest runs, Prefect and shell alike (pipeline_history)."""
    return reader.frame(
        """SELECT run_id, flow, status, started_at, finished_at,
                  extract(epoch FROM finished_at - started_at)::float AS seconds, parameters, error_summary
           FROM pipeline_history ORDER BY started_at DESC LIMIT %s""",
        (limit,),
    )


# Relations other parts of the store add (feature monitoring); shown when they exist and are readable.
MONITORING = ["feature_stats", "feature_drift", "feature_skew", "feature_audits"]


def readable_relations(reader: Reader, names: Sequence[str]) -> list[str]:
    frame = reader.frame(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relname = ANY(%s) AND has_table_privilege(c.oid, 'SELECT')""",
        (list(names),),
    )
    return [n for n in names if n in set(frame["relname"])]


def newest_rows(reader: Reader, relation: str, limit: int = 25) -> tuple[int, pd.DataFrame]:
    """(row count, newest ``limit`` rows) of a monitoring relation (its name from MONITORING)."""
    if relation not in MONITORING:
        raise ValueError(f"not a monitoring relation: {relation!r}")
    columns = reader.frame(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (relation,),
    )["attname"].tolist()
    newest = next((c for c in ("checked_at", "computed_at", "started_at") if c in columns), None)
    order = sql.SQL("ORDER BY {} DESC").format(sql.Identifier(newest)) if newest else sql.SQL("")
    name = sql.Identifier(relation)
    count = reader.scalar(sql.SQL("SELECT count(*) FROM {}").format(name))
    rows = reader.frame(sql.SQL("SELECT * FROM {} {} LIMIT %s").format(name, order), (limit,))
    return int(count), rows
