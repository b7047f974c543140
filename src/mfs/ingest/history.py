"""Stored history against Yahoo's current adjustment: resume after missed runs, re-adjust after
splits and dividends.

Yahoo adjusts history retroactively: after a split every earlier ``open/high/low/close/volume``
is served divided (hourly and daily alike), after a dividend every earlier daily ``adj_close``
is served lower. An incremental run rewrites only its window, so without this the store would
keep the old adjustment for everything older than the window — a step in the series at the
window's start that no indicator can tell from a real price move.

Where the fetch starts: the run's window, or earlier when the store stops before it (runs missed
for longer than ``ingest.incremental_days``): at the session of the series' second-newest stored
bar, which was final when written (the newest may have been the partial current bar). The gap is
filled, and the answer always overlaps bars stored by an earlier run.

Detection compares one bar the store and the answer have in common: the oldest stored bar the
fetch covers — a week old in an hourly run, so long final that a late revision of the last bars
does not count. Every split or ex-date since the last run lies after it, so Yahoo now serves it
with another close (split) or adj_close (dividend) exactly when the stored history is out of
date; a correction of one bar elsewhere does not touch it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mfs.calendar import daily_bar_label  # New York midnight of a bar's day: a fetch from there includes it
from mfs.market import NY
from mfs.storage.connection import connection
from mfs.storage.types import one_row

# Unchanged bars come back with the very floats that were stored (Yahoo's are float32-precise,
# ~6e-8); a quarterly dividend or a split moves an adjusted price by far more (≥ 1e-4).
REL_TOL = 1e-5


@dataclass(frozen=True)
class StoredSeries:
    """What the store holds of one symbol and interval, as far as this module needs."""

    resume_ts: pd.Timestamp  # the second-newest stored bar: final when it was written
    ref_ts: pd.Timestamp | None  # the oldest stored bar a fetch from resume_start() covers
    ref_close: float | None
    ref_adj_close: float | None
    held_from: pd.Timestamp | None = None  # the oldest bar held back and not yet cleared


def stored_series(
    interval: str, symbols: list[str], start: pd.Timestamp, floor: pd.Timestamp | None
) -> dict[str, StoredSeries]:
    """The stored state of ``symbols`` (those with at least two bars of ``interval``) for a run
    whose window starts at ``start``; one query, each lookup walking the primary key
    (symbol, interval, ts) from its newer end. (The series' first bar is read only when a history
    is re-adjusted, ``first_stored_bar``: it lies in the oldest, compressed chunk. With it, this
    query took 30–75 ms at 730 days of history against ~10 ms at 60, mostly that lookup — 200
    symbols, EXPLAIN ANALYZE, 2026-12-08.)"""
    if not symbols:
        return {}
    with connection() as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT f.symbol, n.ts, r.ts, r.close, r.adj_close,
                      (SELECT min(a.ts) FROM anomalies a
                       WHERE a.symbol = f.symbol AND a.interval = %(interval)s AND a.held AND a.resolved_at IS NULL)
               FROM unnest(%(symbols)s::text[]) AS f(symbol)
               CROSS JOIN LATERAL (SELECT m.ts FROM market_data m
                                   WHERE m.symbol = f.symbol AND m.interval = %(interval)s
                                   ORDER BY m.ts DESC LIMIT 1 OFFSET 1) n
               LEFT JOIN LATERAL (SELECT m.ts, m.close, m.adj_close FROM market_data m
                                  WHERE m.symbol = f.symbol AND m.interval = %(interval)s
                                    AND m.ts >= greatest(least(%(start)s, n.ts), %(floor)s)
                                  ORDER BY m.ts LIMIT 1) r ON true""",
            {
                "symbols": list(symbols),
                "interval": interval,
                "start": start.to_pydatetime(),
                "floor": floor.to_pydatetime() if floor is not None else None,
            },
        )
        rows = cur.fetchall()
    # No reference bar when everything stored is older than ``floor``: nothing Yahoo still serves.
    return {
        symbol: StoredSeries(
            pd.Timestamp(resume),
            None if ref is None else pd.Timestamp(ref),
            None if close is None else float(close),
            None if adj is None else float(adj),
            None if held is None else pd.Timestamp(held),
        )
        for symbol, resume, ref, close, adj, held in rows
    }


def resume_start(start: pd.Timestamp, stored: StoredSeries | None, floor: pd.Timestamp | None) -> pd.Timestamp:
    """Where a fetch must start: ``start``, or the session of the second-newest stored bar when
    the store stops before ``start``, or of the oldest bar held back (re-examined every run, so
    never forgotten when it leaves the window) — never before ``floor`` (the oldest bar Yahoo
    serves for the interval)."""
    if stored is None:
        return start
    begin = min(start, daily_bar_label(stored.resume_ts))
    if stored.held_from is not None:
        begin = min(begin, daily_bar_label(stored.held_from))
    return _not_before(begin, floor)


def first_stored_bar(symbol: str, interval: str) -> pd.Timestamp:
    """The series' first stored bar (it has at least two: ``stored_series`` found it)."""
    with connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT min(ts) FROM market_data WHERE symbol = %s AND interval = %s",
            (symbol, interval),
        )
        return pd.Timestamp(one_row(cur)[0])


def history_start(first_ts: pd.Timestamp, floor: pd.Timestamp | None) -> pd.Timestamp:
    """Where a re-adjusting fetch starts: the series' first stored bar (within ``floor``)."""
    return _not_before(daily_bar_label(first_ts), floor)


def _not_before(ts: pd.Timestamp, floor: pd.Timestamp | None) -> pd.Timestamp:
    return ts if floor is None else max(ts, floor)


@dataclass(frozen=True)
class Readjustment:
    """Yahoo's answer differs from the store at the reference bar: the history was re-adjusted."""

    ref_ts: pd.Timestamp
    changes: str  # "close 100 -> 25, adj_close 99 -> 24.75"
    cause: str | None  # the actions that explain it ("the 4-for-1 split of 2025-10-20"), None if none does

    def __str__(self) -> str:
        why = f" for {self.cause}" if self.cause else ", explained by no split or dividend Yahoo serves"
        return f"Yahoo re-adjusted the history before {self.ref_ts.isoformat()}{why} ({self.changes})"


# A re-adjusted close matches the splits after it within this (prices are rounded to 4 decimals).
SPLIT_MATCH = 0.02


def _cause(
    close_ratio: float | None, adj_changed: bool, actions: pd.DataFrame | None, after: pd.Timestamp
) -> str | None:
    """The splits (close changed by 1/∏R) or dividends (adj_close alone changed) served with ex-dates
    after the reference bar that explain a re-adjustment, in words; None when none do."""
    if actions is None or actions.empty:
        return None
    later = actions[pd.DatetimeIndex(actions["ex_date"]) > after.tz_convert(NY).tz_localize(None)]
    splits, dividends = later[later["kind"] == "split"], later[later["kind"] == "dividend"]
    if close_ratio is not None:
        product = float(np.prod(splits["value"])) if len(splits) else 1.0
        if len(splits) and abs(math.log(close_ratio * product)) <= SPLIT_MATCH:
            return " and ".join(
                f"the {v:g}-for-1 split of {pd.Timestamp(d).date()}"
                for d, v in zip(splits["ex_date"], splits["value"], strict=True)
            )
        return None
    if adj_changed and len(dividends):
        return " and ".join(
            f"the {v:g} dividend of {pd.Timestamp(d).date()}"
            for d, v in zip(dividends["ex_date"], dividends["value"], strict=True)
        )
    return None


def readjustment(
    bars: pd.DataFrame, stored: StoredSeries | None, actions: pd.DataFrame | None = None
) -> Readjustment | None:
    """How Yahoo's answer differs from the store at the reference bar, or None when it does not
    (or the answer lacks that bar: nothing to compare, nothing claimed); with the ``actions``
    served that explain it."""
    if stored is None or stored.ref_ts is None or bars.empty:
        return None
    hit = bars.loc[pd.DatetimeIndex(bars["ts"]) == stored.ref_ts]
    if hit.empty:
        return None
    changes = []
    close, adj = float(hit["close"].iloc[0]), float(hit["adj_close"].iloc[0])
    ref = stored.ref_close
    close_ratio = None
    if ref is not None and math.isfinite(close) and not math.isclose(close, ref, rel_tol=REL_TOL):
        changes.append(f"close {ref:g} -> {close:g}")
        close_ratio = close / ref
    adj_changed = (
        stored.ref_adj_close is not None
        and math.isfinite(adj)
        and not math.isclose(adj, stored.ref_adj_close, rel_tol=REL_TOL)
    )
    if adj_changed:
        changes.append(f"adj_close {stored.ref_adj_close:g} -> {adj:g}")
    if not changes:
        return None
    return Readjustment(stored.ref_ts, ", ".join(changes), _cause(close_ratio, adj_changed, actions, stored.ref_ts))
