"""The stored per-session histograms of the monitored features (``feature_drift_counts``,
sql/093): each complete session is read from ``features`` once, the first time a drift check
needs it, counted on the fixed grid of ``histograms`` and kept; a check then reads the counts of
its 65 sessions and only the sessions not counted yet (after a session's close: that one, 3,500
rows at 500 symbols) from ``features``. Counts are per symbol group (its members, hashed), feature
and registered version: a changed definition is counted again from its new values.

A session is counted as the store holds it at that first check: a later revision of one of its
bars (a Yahoo correction) changes its values in ``features`` but not its counts. ``force`` (a
forced check) counts the window again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from psycopg2 import sql
from psycopg2.extras import execute_values

from mfs.features.monitoring.histograms import Histograms
from mfs.market import NY
from mfs.storage.records import copy_records, native, record_dtype
from mfs.storage.types import Cursor


@dataclass
class Window:
    """Values of the monitored features for a run of sessions, pooled over symbols: per row its session."""

    sessions: np.ndarray  # datetime64[D], one per row
    values: dict[str, np.ndarray]  # feature -> float64 (NaN for NULL)

    def histograms(self, days: np.ndarray) -> dict[str, Histograms]:
        """Every feature's histograms over the sessions ``days``."""
        return {name: Histograms.of_values(self.sessions, values, days) for name, values in self.values.items()}


def load_window(
    cur: Cursor,
    interval: str,
    names: Sequence[str],
    first: np.datetime64,
    last: np.datetime64,
    symbols: Sequence[str] | None = None,
) -> Window:
    """Every stored value of ``names`` for bars of the sessions ``first`` … ``last`` (New York
    dates), of ``symbols`` (default: every symbol), by binary COPY into numpy (NULL sent as NaN):
    65 sessions of 100 symbols' hourly rows took ~1 s through a cursor's tuples."""

    start = pd.Timestamp(str(first)).tz_localize(NY).tz_convert("UTC")
    end = (pd.Timestamp(str(last)) + pd.Timedelta(days=1)).tz_localize(NY).tz_convert("UTC")
    query = sql.SQL(
        "SELECT ((f.ts AT TIME ZONE 'America/New_York')::date - date '2000-01-01')::int4, {} FROM features f "
        "WHERE f.interval = %s AND f.ts >= %s AND f.ts < %s AND (%s::text[] IS NULL OR f.symbol = ANY(%s::text[]))"
    ).format(sql.SQL(", ").join(sql.SQL("coalesce(f.{}::float8, 'NaN')").format(sql.Identifier(n)) for n in names))
    dtype = record_dtype([("day", ">i4"), *((f"v{i}", ">f8") for i in range(len(names)))])
    rec = copy_records(
        cur, query.as_string(cur), (interval, start.to_pydatetime(), end.to_pydatetime(), symbols, symbols), dtype
    )
    days = native(rec["day"]).astype("int64") + np.datetime64("2000-01-01", "D").astype("int64")
    return Window(days.astype("datetime64[D]"), {n: native(rec[f"v{i}"]) for i, n in enumerate(names)})


def members_key(members: Sequence[str] | None) -> str:
    """What identifies a group's symbols: '' for every symbol, else a hash of the sorted list."""
    return "" if members is None else hashlib.md5(",".join(sorted(members)).encode()).hexdigest()


def session_histograms(
    cur: Cursor,
    interval: str,
    group: str,
    members: Sequence[str] | None,
    versions: dict[str, str],
    days: np.ndarray,
    recount: bool = False,
) -> dict[str, Histograms]:
    """The histograms of every feature of ``versions`` (name -> registered version) over the
    sessions ``days`` for the group: stored counts, and the sessions without them read from
    ``features``, counted and stored (all of them when ``recount``)."""
    key = members_key(members)
    stored = {} if recount else _stored(cur, interval, group, key, versions, days)
    missing = [d for d in days if any((name, d) not in stored for name in versions)]
    if missing:
        window = load_window(cur, interval, list(versions), missing[0], missing[-1], members)
        span = days[(days >= missing[0]) & (days <= missing[-1])]
        fresh = window.histograms(span)
        rows = []
        for name, h in fresh.items():
            for i, day in enumerate(span):
                stored[name, day] = h.sparse(i)
                rows.append((interval, group, key, name, versions[name], str(day), *_encoded(*stored[name, day])))
        _store(cur, rows)
    return {name: Histograms.of_sessions(days, [stored[name, d] for d in days]) for name in versions}


def _encoded(bins: np.ndarray, counts: np.ndarray) -> tuple[bytes, bytes]:
    return bins.astype("<i4").tobytes(), counts.astype("<i8").tobytes()


def _stored(
    cur: Cursor, interval: str, group: str, key: str, versions: dict[str, str], days: np.ndarray
) -> dict[tuple[str, np.datetime64], tuple[np.ndarray, np.ndarray]]:
    cur.execute(
        """SELECT c.feature, c.session, c.bins, c.counts FROM feature_drift_counts c
           JOIN unnest(%s::text[], %s::text[]) AS v(feature, version) USING (feature, version)
           WHERE c.interval = %s AND c.symbol_group = %s AND c.members = %s AND c.session BETWEEN %s AND %s""",
        (list(versions), list(versions.values()), interval, group, key, str(days[0]), str(days[-1])),
    )
    return {
        (name, np.datetime64(day, "D")): (np.frombuffer(bins, "<i4"), np.frombuffer(counts, "<i8"))
        for name, day, bins, counts in cur.fetchall()
    }


def _store(cur: Cursor, rows: list[tuple]) -> None:

    execute_values(
        cur,
        """INSERT INTO feature_drift_counts (interval, symbol_group, members, feature, version, session, bins, counts)
           VALUES %s ON CONFLICT (interval, symbol_group, members, feature, version, session) DO UPDATE
           SET bins = EXCLUDED.bins, counts = EXCLUDED.counts, counted_at = EXCLUDED.counted_at""",
        rows,
        template="(%s, %s, %s, %s, %s, %s::date, %s::bytea, %s::bytea)",
    )


def prune(cur: Cursor, interval: str, before: np.datetime64) -> None:
    """Drop the counts of sessions before ``before`` (the oldest a regular check reads)."""
    cur.execute("DELETE FROM feature_drift_counts WHERE interval = %s AND session < %s", (interval, str(before)))
