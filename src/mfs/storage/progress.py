"""Which series have something for a feature run to do, known without reading a bar (sql/071).

Ingest counts, in the transaction that writes them, one change of every series whose bars it
changed (``series_changes``); a feature batch records, per series it brought up to date, the
count it saw (``features_progress``), read in the batch's own snapshot. Writes of bars or
feature rows by anything else are counted per statement in ``unaccounted_writes``: after one,
every series is compared in full again. Writers that account for their writes say so with
``set_accounted_write`` (the statement trigger then counts nothing). And whether the definitions
file changed since the registry last synced it (``feature_definitions_synced``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

ACCOUNTED_WRITE = "mfs.accounted_write"


def set_accounted_write(cur) -> None:
    """This transaction's writes of bars or feature rows are accounted for per series."""
    cur.execute("SELECT set_config(%s, 'on', true)", (ACCOUNTED_WRITE,))


def count_series_changes(cur, interval: str, symbols: Sequence[str]) -> None:
    """One more change of each series whose bars this transaction changed."""
    if symbols:
        cur.execute(
            "INSERT INTO series_changes AS c (symbol, interval, changes) SELECT s, %s, 1 FROM unnest(%s::text[]) AS s "
            "ON CONFLICT (symbol, interval) DO UPDATE SET changes = c.changes + 1",
            (interval, list(symbols)),
        )


def change_counts(cur, symbols: Sequence[str], interval: str) -> tuple[dict[str, int], int]:
    """Per symbol its count of changes (0 when never counted), and the unaccounted writes."""
    cur.execute(
        "SELECT s, coalesce(c.changes, 0) FROM unnest(%s::text[]) AS s "
        "LEFT JOIN series_changes c ON c.symbol = s AND c.interval = %s",
        (list(symbols), interval),
    )
    changes = dict(cur.fetchall())
    cur.execute("SELECT writes FROM unaccounted_writes")
    return changes, int(cur.fetchone()[0])


def record_progress(
    cur, interval: str, changes: dict[str, int], unaccounted: int, feature_version: int, symbols: Sequence[str]
) -> None:
    """``symbols``' feature rows are up to date with ``changes`` (as counted in the caller's snapshot)."""
    if symbols:
        cur.execute(
            """INSERT INTO features_progress AS p (symbol, interval, changes_seen, unaccounted_seen, feature_version)
               SELECT s, %s, n, %s, %s FROM unnest(%s::text[], %s::bigint[]) AS u(s, n)
               ON CONFLICT (symbol, interval) DO UPDATE SET changes_seen = EXCLUDED.changes_seen,
                   unaccounted_seen = EXCLUDED.unaccounted_seen, feature_version = EXCLUDED.feature_version""",
            (interval, unaccounted, feature_version, list(symbols), [changes[s] for s in symbols]),
        )


def series_to_update(cur, symbols: Sequence[str], interval: str, feature_version: int) -> list[str]:
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


def record_synced_definitions(cur, source: str, memory: int) -> None:
    """The registry is in line with the definitions ``source`` (file text), whose memory is ``memory``."""
    cur.execute(_RECORD_SYNCED, (hashlib.sha256(source.encode()).hexdigest(), memory))


def synced_memory(cur, source: str) -> int | None:
    """The memory recorded with ``source`` when it is the text the registry last synced, the
    feature columns are as then and no live version awaits its fill; else None."""
    cur.execute(_SYNCED_MEMORY, (hashlib.sha256(source.encode()).hexdigest(),))
    row = cur.fetchone()
    return int(row[0]) if row else None
