"""Stored history against Yahoo's current adjustment: resume after missed runs, re-adjust after
splits and dividends.

Yahoo adjusts history retroactively: after a split every earlier ``open/high/low/close/volume``
is served divided (hourly and daily alike), after a dividend every earlier daily ``adj_close``
is served lower. An incremental run rewrites only its window, so without this the store would
keep the old adjustment for everything older than the window — a step in the series at the
window's start that no indicator can tell from a real price move.

Detection needs one bar the store and the answer have in common, stored when it was already
final: the series' second-newest stored bar (the newest may have been the partial current bar).
Its close and adj_close as Yahoo serves them now equal the stored ones unless Yahoo re-adjusted
everything before it; a late correction of one bar elsewhere does not touch it. Every split or
ex-date since the last run lies after that bar, so comparing it catches them all, provided the
fetch reaches back to it: a run whose window starts after it (runs missed for longer than
``ingest.incremental_days``) starts at its session instead — which also fills the gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from mfs.calendar import daily_bar_label  # New York midnight of a bar's day: a fetch from there includes it
from mfs.storage.connection import connection

# Unchanged bars come back with the very floats that were stored; any real adjustment (a 0.01%
# dividend yield or more, any split) is far above this.
REL_TOL = 1e-6


@dataclass(frozen=True)
class StoredSeries:
    """What the store holds of one symbol and interval, as far as re-adjustment needs."""

    first_ts: pd.Timestamp
    ref_ts: pd.Timestamp  # the second-newest stored bar: final when it was written
    ref_close: float
    ref_adj_close: float | None


def stored_series(interval: str, symbols: list[str]) -> dict[str, StoredSeries]:
    """The stored state of ``symbols`` (those with at least two bars of ``interval``), one query;
    each lookup walks the primary key (symbol, interval, ts) from one end."""
    if not symbols:
        return {}
    with connection() as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT f.symbol, lo.ts, r.ts, r.close, r.adj_close
               FROM unnest(%(symbols)s::text[]) AS f(symbol)
               CROSS JOIN LATERAL (SELECT m.ts, m.close, m.adj_close FROM market_data m
                                   WHERE m.symbol = f.symbol AND m.interval = %(interval)s
                                   ORDER BY m.ts DESC LIMIT 1 OFFSET 1) r
               CROSS JOIN LATERAL (SELECT m.ts FROM market_data m
                                   WHERE m.symbol = f.symbol AND m.interval = %(interval)s
                                   ORDER BY m.ts LIMIT 1) lo""",
            {"symbols": list(symbols), "interval": interval},
        )
        rows = cur.fetchall()
    return {symbol: StoredSeries(pd.Timestamp(first), pd.Timestamp(ref), float(close),
                                 None if adj is None else float(adj))
            for symbol, first, ref, close, adj in rows}


def resume_start(start: pd.Timestamp, stored: StoredSeries | None, floor: pd.Timestamp | None) -> pd.Timestamp:
    """Where a fetch must start: ``start``, or earlier when the store stops before it (missed
    runs), so the answer overlaps the reference bar — but never before ``floor`` (the oldest
    bar Yahoo serves for the interval)."""
    if stored is None:
        return start
    begin = min(start, daily_bar_label(stored.ref_ts))
    return max(begin, floor) if floor is not None else begin


def history_start(stored: StoredSeries, floor: pd.Timestamp | None) -> pd.Timestamp:
    """Where a re-adjusting fetch starts: the series' first stored bar (within ``floor``)."""
    begin = daily_bar_label(stored.first_ts)
    return max(begin, floor) if floor is not None else begin


def readjustment(bars: pd.DataFrame, stored: StoredSeries | None) -> str | None:
    """How Yahoo's answer differs from the store at the reference bar, or None when it does not
    (or the answer lacks that bar: nothing to compare, nothing claimed)."""
    if stored is None or bars.empty:
        return None
    hit = bars.loc[pd.DatetimeIndex(bars["ts"]) == stored.ref_ts]
    if hit.empty:
        return None
    changes = []
    close, adj = float(hit["close"].iloc[0]), float(hit["adj_close"].iloc[0])
    if math.isfinite(close) and not math.isclose(close, stored.ref_close, rel_tol=REL_TOL):
        changes.append(f"close {stored.ref_close:g} -> {close:g}")
    if (stored.ref_adj_close is not None and math.isfinite(adj)
            and not math.isclose(adj, stored.ref_adj_close, rel_tol=REL_TOL)):
        changes.append(f"adj_close {stored.ref_adj_close:g} -> {adj:g}")
    if not changes:
        return None
    return f"Yahoo re-adjusted the history before {stored.ref_ts.isoformat()} ({', '.join(changes)})"
