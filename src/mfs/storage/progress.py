"""Which series have something for a feature run to do, known without reading a bar (sql/071),
and from which bar on (sql/072).

Ingest counts, in the transaction that writes them, one change of every series whose bars it
changed (``series_changes``) and logs the earliest bar each change may have touched
(``series_change_log``); a feature batch records, per series it brought up to date, the count it
saw (``features_progress``), read in the batch's own snapshot, and drops the log entries it has
seen. Writes of bars or
feature rows by anything else are counted per statement in ``unaccounted_writes``: after one,
every series is compared in full again. Writers that account for their writes say so with
``set_accounted_write`` (the statement trigger then counts nothing). And whether the definitions
file changed since the registry last synced it (``feature_definitions_synced``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from mfs.storage.types import Cursor

ACCOUNTED_WRITE = "mfs.accounted_write"


def set_accounted_write(cur: Cursor) -> None:
    """This transaction's writes of bars or feature rows are accounted for per series."""
    cur.execute("SELECT set_config(%s, 'on', true)", (ACCOUNTED_WRITE,))


def count_series_changes(cur: Cursor, interval: str, changed_from: Mapping[str, datetime]) -> None:
    """One more change of each series whose bars this transaction changed, logged with the earliest
    bar time it may have changed (``changed_from``: per symbol)."""
    if changed_from:
        cur.execute(
            """WITH counted AS (
                 INSERT INTO series_changes AS c (symbol, interval, changes)
                 SELECT s, %(interval)s, 1 FROM unnest(%(symbols)s::text[]) AS s
                 ON CONFLICT (symbol, interval) DO UPDATE SET changes = c.changes + 1
                 RETURNING symbol, changes)
               INSERT INTO series_change_log AS l (symbol, interval, change, changed_from)
               SELECT counted.symbol, %(interval)s, counted.changes, f.changed_from
               FROM counted JOIN unnest(%(symbols)s::text[], %(from)s::timestamptz[]) AS f(symbol, changed_from)
                 USING (symbol)
               -- an entry left behind by a count that was reset: the earlier bound covers both
               ON CONFLICT (symbol, interval, change)
                 DO UPDATE SET changed_from = least(l.changed_from, EXCLUDED.changed_from)""",
            {"interval": interval, "symbols": list(changed_from), "from": list(changed_from.values())},
        )


class SeriesChanges(NamedTuple):
    """A batch's view of its series' changes, in its snapshot."""

    counts: dict[str, int]  # per symbol, its count of changes (0 when never counted)
    unaccounted: int  # the count of unaccounted writes
    # Per symbol, where its unseen changes begin (PostgreSQL µs): UNCHANGED when it has none,
    # absent when its bars must be compared with its feature rows in full.
    changed_from: dict[str, int]


UNCHANGED = 2**62  # a changed_from after every bar
PG_EPOCH = "2000-01-01T00:00:00Z"  # the origin of PostgreSQL µs, the unit batches read times in

# Per symbol: its change count, and where its unseen changes begin (NULL: compare in full).
_CHANGES = """
SELECT s, coalesce(c.changes, 0),
       CASE WHEN p.symbol IS NULL OR p.feature_version <> %(version)s OR p.unaccounted_seen <> u.writes THEN NULL
            WHEN coalesce(c.changes, 0) = p.changes_seen THEN %(unchanged)s
            ELSE (SELECT CASE WHEN count(*) = c.changes - p.changes_seen
                              THEN (extract(epoch FROM min(l.changed_from) - %(epoch)s) * 1000000)::bigint END
                  FROM series_change_log l
                  WHERE l.symbol = s AND l.interval = %(interval)s AND l.change > p.changes_seen)
       END,
       u.writes
FROM unnest(%(symbols)s::text[]) AS s
CROSS JOIN unaccounted_writes u
LEFT JOIN series_changes c ON c.symbol = s AND c.interval = %(interval)s
LEFT JOIN features_progress p ON p.symbol = s AND p.interval = %(interval)s
"""


def series_changes(cur: Cursor, symbols: Sequence[str], interval: str, feature_version: int) -> SeriesChanges:
    """Per symbol its count of changes and where the changes its feature rows have not seen begin;
    and the unaccounted writes. A series is compared in full when it has no progress recorded, was
    brought up to date under another feature version or before an unaccounted write, or has a
    change without its log entry."""
    cur.execute(
        _CHANGES,
        {
            "symbols": list(symbols),
            "interval": interval,
            "version": feature_version,
            "unchanged": UNCHANGED,
            "epoch": PG_EPOCH,
        },
    )
    rows = cur.fetchall()
    unaccounted = int(rows[0][3]) if rows else 0
    return SeriesChanges(
        {s: int(n) for s, n, _, _ in rows}, unaccounted, {s: int(f) for s, _, f, _ in rows if f is not None}
    )


def record_progress(
    cur: Cursor, interval: str, seen: SeriesChanges, feature_version: int, symbols: Sequence[str]
) -> None:
    """``symbols``' feature rows are up to date with the changes ``seen`` (counted in the caller's
    snapshot); the log entries of those changes are no longer needed."""
    if symbols:
        counts = [seen.counts[s] for s in symbols]
        cur.execute(
            """INSERT INTO features_progress AS p (symbol, interval, changes_seen, unaccounted_seen, feature_version)
               SELECT s, %s, n, %s, %s FROM unnest(%s::text[], %s::bigint[]) AS u(s, n)
               ON CONFLICT (symbol, interval) DO UPDATE SET changes_seen = EXCLUDED.changes_seen,
                   unaccounted_seen = EXCLUDED.unaccounted_seen, feature_version = EXCLUDED.feature_version""",
            (interval, seen.unaccounted, feature_version, list(symbols), counts),
        )
        cur.execute(
            "DELETE FROM series_change_log l USING unnest(%s::text[], %s::bigint[]) AS u(s, n) "
            "WHERE l.symbol = u.s AND l.interval = %s AND l.change <= u.n",
            (list(symbols), counts, interval),
        )


def series_to_update(cur: Cursor, symbols: Sequence[str], interval: str, feature_version: int) -> list[str]:
    """Those of ``symbols`` (in their order) whose bars or feature rows may have changed since their
    features were last brought up to date: never recorded, a change counted since, another feature
    version, or any unaccounted write since."""
    cur.execute(
        """SELECT s FROM unnest(%s::text[]) WITH ORDINALITY AS u(s, k)
           LEFT JOIN series_changes c ON c.symbol = s AND c.interval = %s
           LEFT JOIN features_progress p ON p.symbol = s AND p.interval = %s
           WHERE p.symbol IS NULL OR p.changes_seen <> coalesce(c.changes, 0) OR p.feature_version <> %s
              OR p.unaccounted_seen <> (SELECT writes FROM unaccounted_writes)
           ORDER BY k""",
        (list(symbols), interval, interval, feature_version),
    )
    return [s for (s,) in cur.fetchall()]


# The feature columns with their types, as one text (fixed SQL, composed once here).
_COLUMNS = "(SELECT coalesce(string_agg(name || ' ' || sql_type, ', '), '') FROM mfs_feature_columns())"
_RECORD_SYNCED = (
    "INSERT INTO feature_definitions_synced (source_sha256, columns, memory) VALUES (%s, " + _COLUMNS + ", %s) "
    "ON CONFLICT (one) DO UPDATE SET source_sha256 = EXCLUDED.source_sha256, columns = EXCLUDED.columns, "
    "memory = EXCLUDED.memory, synced_at = now()"
)
_SYNCED_MEMORY = (
    "SELECT memory FROM feature_definitions_synced WHERE source_sha256 = %s AND columns = " + _COLUMNS + " "
    "AND NOT EXISTS (SELECT 1 FROM feature_registry WHERE filled_at IS NULL AND superseded_at IS NULL "
    "AND retired_at IS NULL AND pruned_at IS NULL)"
)


def record_synced_definitions(cur: Cursor, source: str, memory: int) -> None:
    """The registry is in line with the definitions ``source`` (file text), whose memory is ``memory``."""
    cur.execute(_RECORD_SYNCED, (hashlib.sha256(source.encode()).hexdigest(), memory))


def synced_memory(cur: Cursor, source: str) -> int | None:
    """The memory recorded with ``source`` when it is the text the registry last synced, the
    feature columns are as then and no live version awaits its fill; else None."""
    cur.execute(_SYNCED_MEMORY, (hashlib.sha256(source.encode()).hexdigest(),))
    row = cur.fetchone()
    return int(row[0]) if row else None
