"""Helpers of the aggregate tests (imported by module path, e.g. by tests/storage and tests/ingest too):
synthetic hourly bars and features written through the real write path (``mfs.storage.bulk.upsert``)
on the real NYSE calendar, and from-scratch reference queries."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mfs import calendar
from mfs.ingest.write import MARKET_DATA_COLUMNS
from mfs.market import NY
from mfs.storage import bulk, copy_binary
from mfs.storage.connection import connect

# The columns of market_data these helpers write (the rest take their defaults).
BAR_COLUMNS = [c for c in MARKET_DATA_COLUMNS if c.name not in ("adj_close", "source")]
FEATURE_SUBSET = ["return_1", "sma_5", "rsi_14", "obv", "hour_et", "dow_et"]


def make_bars(symbol: str, start: str, end: str, seed: int = 0, scale: float = 1.0) -> pd.DataFrame:
    """Valid hourly bars (Yahoo labels) of every session from ``start`` to ``end``."""
    ts = calendar.hourly_bar_starts(start, end)
    rng = np.random.default_rng(seed)
    close = 100 * scale * np.exp(np.cumsum(rng.normal(0, 0.004, len(ts))))
    open_ = close * np.exp(rng.normal(0, 0.002, len(ts)))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.003, len(ts)))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.003, len(ts)))
    volume = rng.integers(1_000, 1_000_000, len(ts))
    return pd.DataFrame(
        {
            "symbol": symbol,
            "interval": "1h",
            "ts": ts,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


def write_bars(url: str, bars: pd.DataFrame, *, with_closes: bool = True) -> bulk.UpsertCounts:
    """``bars`` upserted into market_data; ``with_closes=False`` for a store whose schema predates
    the bars' ``closes_at``."""
    columns = [c for c in BAR_COLUMNS if with_closes or c.name != "closes_at"]
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            data = {c.name: bars[c.name].to_numpy() for c in columns if c.name != "closes_at"}
            data["ts"] = pd.DatetimeIndex(bars["ts"])
            if with_closes:
                data["closes_at"] = calendar.bar_closes("1h", data["ts"])
            counts = bulk.upsert(
                cur, "market_data", columns, data, key=["symbol", "interval", "ts"], touch={"ingested_at": "now()"}
            )
        conn.commit()
        return counts
    finally:
        conn.close()


def write_features(url: str, bars: pd.DataFrame, version: int = 1) -> bulk.UpsertCounts:
    """A few feature columns derived from the bars (values only need to differ per bar; the
    last bar of every third day has a NULL rsi_14, so "last value" must keep the NULL)."""
    ts = pd.DatetimeIndex(bars["ts"])
    ny = ts.tz_convert(NY)
    rsi = (bars["close"].to_numpy() % 100).copy()
    last_of_day = ~pd.Series(ny.date).duplicated(keep="last").to_numpy()
    rsi[last_of_day & (ny.day % 3 == 0)] = np.nan
    data = {
        "symbol": bars["symbol"].to_numpy(),
        "interval": bars["interval"].to_numpy(),
        "ts": ts,
        "feature_version": np.full(len(bars), version),
        "return_1": bars["close"].pct_change().to_numpy(),
        "sma_5": bars["close"].rolling(5).mean().to_numpy(),
        "rsi_14": rsi,
        "obv": bars["volume"].cumsum().to_numpy(dtype=float),
        "hour_et": ny.hour.to_numpy(),
        "dow_et": ny.dayofweek.to_numpy(),
    }
    columns = [
        copy_binary.Column("symbol", "text"),
        copy_binary.Column("interval", "text"),
        copy_binary.Column("ts", "timestamptz"),
        copy_binary.Column("feature_version", "int4"),
    ] + [copy_binary.Column(c, "int2" if c.endswith("_et") else "float8") for c in FEATURE_SUBSET]
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            counts = bulk.upsert(
                cur, "features", columns, data, key=["symbol", "interval", "ts"], touch={"computed_at": "now()"}
            )
        conn.commit()
        return counts
    finally:
        conn.close()


def query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()
    finally:
        conn.close()


def execute(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    """Run and commit one statement (``query`` only reads)."""
    conn = connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def columns_of(url: str, relation: str) -> list[str]:
    rows = query(
        url,
        """SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0
                         AND NOT attisdropped ORDER BY attnum""",
        (relation,),
    )
    return [r[0] for r in rows]


# The newest fetch of each symbol's hourly bars per New York day, against its session's close.
_FETCHED_DAYS = """SELECT m.symbol, s.day_start, s.close_utc, max(m.ingested_at) AS fetched
                   FROM market_data m JOIN market_sessions s ON m.ts >= s.day_start AND m.ts < s.day_end
                   WHERE m.interval = '1h' GROUP BY 1, 2, 3"""
# From-scratch references over the raw hypertables: the definition every aggregate must equal —
# its New York date, and partial while its session (a session of its week) is running or every
# bar of it was fetched before the close.
REFERENCE = {
    "ohlcv_1d": f"""WITH fetched AS ({_FETCHED_DAYS})
                   SELECT m.symbol, time_bucket('1 day', m.ts, 'America/New_York') AS day,
                          first(m.open, m.ts), max(m.high), min(m.low), last(m.close, m.ts),
                          sum(m.volume)::bigint, count(*),
                          (time_bucket('1 day', m.ts, 'America/New_York') AT TIME ZONE 'America/New_York')::date,
                          coalesce(bool_or(f.close_utc > mfs_now() OR f.fetched < f.close_utc), false)
                   FROM market_data m
                   LEFT JOIN fetched f
                          ON f.symbol = m.symbol AND f.day_start = time_bucket('1 day', m.ts, 'America/New_York')
                   WHERE m.interval = '1h' GROUP BY 1, 2 ORDER BY 1, 2""",
    "ohlcv_1w": f"""WITH fetched AS ({_FETCHED_DAYS}),
                        weeks AS (SELECT symbol, time_bucket('1 week', ts, 'America/New_York') AS week,
                                         first(open, ts), max(high), min(low), last(close, ts),
                                         sum(volume)::bigint, count(*)
                                  FROM market_data WHERE interval = '1h' GROUP BY 1, 2)
                   SELECT w.*, (w.week AT TIME ZONE 'America/New_York')::date,
                          EXISTS (SELECT 1 FROM market_sessions s
                                  LEFT JOIN fetched f ON f.symbol = w.symbol AND f.day_start = s.day_start
                                  WHERE s.day_start >= w.week
                                    AND s.session_date < (w.week AT TIME ZONE 'America/New_York')::date + 7
                                    AND (s.close_utc > mfs_now() OR f.fetched < s.close_utc))
                   FROM weeks w ORDER BY 1, 2""",
}


def features_reference(url: str) -> str:
    cols = [c for c in columns_of(url, "features_1d") if c not in ("symbol", "day", "last_ts")]
    exprs = ", ".join(f"last({c}, ts)" for c in cols)
    return f"""SELECT symbol, time_bucket('1 day', ts, 'America/New_York'), max(ts), {exprs}
               FROM features WHERE interval = '1h' GROUP BY 1, 2 ORDER BY 1, 2"""
