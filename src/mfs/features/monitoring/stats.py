"""Statistics of the feature values a run wrote and of the newest bar's cross-section
(``feature_stats``, sql/090), computed in the database in one statement per scope and interval.

Rows written by the run are those of its symbols whose ``computed_at`` lies between the run's
start and its end on the store's clock (a row a run left unchanged keeps its older ``computed_at``). A value
inside a feature's warm-up (the first ``warmup`` bars of a symbol's stored history, NULL by
definition) is not counted: a NULL fraction beyond the warm-up is a fact about the data (flat
prices, zero volume), not about the indicator's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg2 import sql

from mfs.storage.clock import set_write_context
from mfs.storage.connection import connection
from mfs.storage.types import Cursor

QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
# A run that wrote more rows (a full backfill) is described by a deterministic sample of about this
# many: the statistics sort every value of every feature (a year of 500 symbols: 33 million), and
# the median of 20,000 rows lies within 0.7 percentile points of the population's (95 %).
MAX_ROWS = 20_000
SPAN = 1 << 20  # the sample is drawn on 20 bits of a hash of (symbol, ts)
# What the run's artifact shows of each row (the table has every column).
SHOWN = ("interval", "scope", "feature", "symbols", "rows", "null_fraction", "min", "mean", "std", "p50", "max")

_ROWS = {
    # The rows the run wrote: its symbols' rows computed since it started.
    "written": sql.SQL(
        "SELECT * FROM features f WHERE f.symbol = ANY(%(symbols)s) AND f.interval = %(interval)s "
        "AND f.computed_at BETWEEN %(since)s AND mfs_now() "
        "AND (hashtextextended(f.symbol || f.ts::text, 0) & 1048575) < %(keep)s"
    ),
    # The newest row of each of its symbols: what latest_features serves.
    "cross_section": sql.SQL(
        "SELECT * FROM features_latest f WHERE f.symbol = ANY(%(symbols)s) AND f.interval = %(interval)s"
    ),
}

# A value inside its feature's warm-up is NULL by definition, so only NULLs need the test: per
# symbol with a NULL among the rows, its first (longest warm-up + 1) bar labels — a NULL of a
# feature of warm-up w is beyond it when its bar is at or after label w + 1. One index probe per
# such symbol (an hourly run has almost none); MATERIALIZED, or the planner probes once per value.
_FIRSTS = """firsts AS MATERIALIZED (
    SELECT s.symbol, (SELECT array_agg(f.ts ORDER BY f.ts) FROM (
                          SELECT f.ts FROM features f WHERE f.symbol = s.symbol AND f.interval = %(interval)s
                          ORDER BY f.ts LIMIT %(longest)s + 1) f) AS labels
    FROM (SELECT DISTINCT r.symbol FROM rows_ r WHERE NOT (r IS NOT NULL)) s)"""


def _statement(scope: str, columns: Sequence[tuple[str, str | None, int]]) -> sql.Composed:
    """The INSERT … SELECT of one scope: the rows, unpivoted to (feature, version, value, beyond
    its warm-up) — each feature's name, version and warm-up written in as literals, so no value is
    joined to anything — then one group per feature."""
    unpivot = sql.SQL(", ").join(
        sql.SQL("({}, {}, r.{}::float8, r.ts >= k.labels[{}])").format(
            sql.Literal(name), sql.Literal(version), sql.Identifier(name), sql.Literal(warmup + 1)
        )
        for name, version, warmup in columns
    )
    return sql.SQL(
        "WITH rows_ AS MATERIALIZED ({rows}), {firsts}, "
        "values_ AS (SELECT r.ts, x.feature, x.version, x.value FROM rows_ r LEFT JOIN firsts k USING (symbol) "
        "CROSS JOIN LATERAL (VALUES {unpivot}) AS x(feature, version, value, beyond) "
        "WHERE x.value IS NOT NULL OR x.beyond), "
        "grouped AS (SELECT feature, version, max(ts) AS newest_ts, count(*) AS rows, "
        "count(*) FILTER (WHERE value IS NULL) AS nulls, min(value) AS min, max(value) AS max, avg(value) AS mean, "
        "stddev_pop(value) AS std, percentile_cont(%(quantiles)s::float8[]) WITHIN GROUP (ORDER BY value) AS q "
        "FROM values_ GROUP BY feature, version) "
        "INSERT INTO feature_stats (run_id, interval, scope, feature, version, newest_ts, symbols, rows, nulls, "
        "null_fraction, min, max, mean, std, p01, p25, p50, p75, p99) "
        "SELECT %(run_id)s, %(interval)s, %(scope)s, feature, version, newest_ts, "
        "(SELECT count(DISTINCT symbol) FROM rows_), rows, nulls, "
        "nulls::float8 / rows, min, max, mean, std, q[1], q[2], q[3], q[4], q[5] FROM grouped"
    ).format(firsts=sql.SQL(_FIRSTS), rows=_ROWS[scope], unpivot=unpivot)


def _columns(cur: Cursor) -> list[tuple[str, str | None, int]]:
    """(name, registered version, warm-up) of every feature column of the store."""
    cur.execute(
        """SELECT c.name, r.version, coalesce(r.warmup, 0)
           FROM mfs_feature_columns() c
           LEFT JOIN feature_registry r ON r.name = c.name AND r.superseded_at IS NULL AND r.pruned_at IS NULL"""
    )
    return cur.fetchall()


def record(
    run_id: str | None, symbols: Sequence[str], intervals: Sequence[str], since: Any, written: int = 0
) -> list[dict[str, Any]]:
    """Write the statistics of the run's rows (``since``: its start on the store's clock; a sample
    of about MAX_ROWS when it wrote more, ``written``) and of its symbols' newest rows, per
    interval; returns the rows written (for the run's artifact)."""
    if not symbols:
        return []
    with connection() as conn, conn.cursor() as cur:
        set_write_context(cur, run_id=run_id)
        columns = _columns(cur)
        if not columns:
            return []
        params: dict[str, Any] = {
            "run_id": run_id,
            "symbols": list(symbols),
            "since": since,
            "longest": max(w for _, _, w in columns),
            "quantiles": list(QUANTILES),
            # a row is kept when 20 bits of its key's hash are below this: every row up to MAX_ROWS
            "keep": SPAN if written <= MAX_ROWS else max(1, MAX_ROWS * SPAN // written),
        }
        cur.execute("SELECT mfs_now()")
        (started,) = cur.fetchone() or (None,)
        for interval in intervals:
            for scope in _ROWS:
                cur.execute(_statement(scope, columns), {**params, "interval": interval, "scope": scope})
        cur.execute(
            sql.SQL(
                "SELECT {} FROM feature_stats WHERE computed_at = %s AND run_id IS NOT DISTINCT FROM %s "
                "ORDER BY interval, scope, feature"
            ).format(sql.SQL(", ").join(map(sql.Identifier, SHOWN))),
            (started, run_id),
        )
        return [dict(zip(SHOWN, row, strict=True)) for row in cur.fetchall()]


def rows_of_run(run_id: str) -> list[dict[str, Any]]:
    """The statistics a run recorded (the SHOWN columns), as its artifact lists them."""
    with connection() as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM feature_stats WHERE run_id = %s ORDER BY interval, scope, feature").format(
                sql.SQL(", ").join(map(sql.Identifier, SHOWN))
            ),
            (run_id,),
        )
        return [dict(zip(SHOWN, row, strict=True)) for row in cur.fetchall()]
