"""The write paths, one per intent, all by binary COPY (``mfs.storage.copy_binary``): rows that
cannot conflict go straight into the table, the others through a staging table and an upsert
that touches only changed rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from psycopg2 import sql

from mfs.errors import StorageError
from mfs.storage.copy_binary import (
    Column,
    ColumnData,
    EncodedRows,
    check_unique_keys,
    copy_rows,
)
from mfs.storage.types import Cursor


@dataclass(frozen=True)
class UpsertCounts:
    staged: int
    inserted: int
    updated: int
    by: dict[str, tuple[int, int]] | None = None  # with count_by: value -> (inserted, updated)

    @property
    def unchanged(self) -> int:
        return self.staged - self.inserted - self.updated


def _take(data: ColumnData, mask: np.ndarray) -> dict[str, Any]:
    return {k: (v[mask] if isinstance(v, pd.DatetimeIndex) else np.asarray(v)[mask]) for k, v in data.items()}


def _after_newest(cur: Cursor, table: str, series: Sequence[str], time_col: str, data: ColumnData) -> np.ndarray:
    """Rows whose time is after the newest stored row of their series (so they cannot conflict).

    Takes a transaction-scoped advisory lock per series first (in a fixed order, so two writers
    never deadlock): a concurrent writer of the same series waits instead of racing the COPY.
    """
    combo = np.zeros(len(data[time_col]), dtype=np.int64)
    labels = []
    for c in series:
        codes, uniques = pd.factorize(pd.Series(np.asarray(data[c], dtype=object)))
        combo = combo * len(uniques) + codes
        labels.append(uniques)
    present, row_group = np.unique(combo, return_inverse=True)
    keys = []
    for code in present:  # decode each combination back to its series values (few: one per symbol)
        parts = []
        for uniques in reversed(labels):
            code, idx = divmod(int(code), len(uniques))
            parts.append(str(uniques[idx]))
        keys.append(parts[::-1])
    order = sorted(range(len(keys)), key=lambda k: keys[k])
    cur.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s || ':' || k, 0))"
        " FROM unnest(%s::text[]) WITH ORDINALITY AS u(k, o) ORDER BY o",
        (table, ["/".join(keys[k]) for k in order]),
    )
    cols = [sql.Identifier(c) for c in series]
    # Only stored rows at or after the batch's earliest time can be newer than one of its rows, so
    # the newest of those decides the same rows as the newest of all. The bound (a constant) leaves
    # the older chunks out of the plan: without it, the plan held every chunk and each series'
    # probe rescanned them all (one new hour of 200 symbols over 730 days of history: planned and
    # run in 18-95 ms, 4-9 ms with the bound; 4-25 ms over 60 days).
    stmt = sql.SQL(
        "SELECT (SELECT extract(epoch FROM max(t.{time})) FROM {table} t WHERE {match} AND t.{time} >= %s) "
        "FROM unnest({arrs}) WITH ORDINALITY AS s({names}, o) ORDER BY o"
    ).format(
        time=sql.Identifier(time_col),
        table=sql.Identifier(table),
        match=sql.SQL(" AND ").join(sql.SQL("t.{c} = s.{c}").format(c=c) for c in cols),
        arrs=sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in cols),
        names=sql.SQL(", ").join(cols),
    )
    times = pd.DatetimeIndex(data[time_col])
    since = times.min() if times.tz is not None else times.min().tz_localize("UTC")  # asi8 below: UTC
    cur.execute(stmt, [since.to_pydatetime(), *([k[j] for k in keys] for j in range(len(series)))])
    newest_s = np.array([np.nan if r[0] is None else float(r[0]) for r in cur.fetchall()])
    row_newest = newest_s[row_group]
    row_time = (times.asi8 // 1000) / 1e6  # epoch seconds, µs precision
    return np.isnan(row_newest) | (row_time > row_newest)


def _prepared(
    table: str, columns: Sequence[Column], data: ColumnData | EncodedRows, key: Sequence[str]
) -> tuple[ColumnData, list[bytes | memoryview] | None, int]:
    """``data`` checked against ``columns`` and ``key`` (unique, present): its columns, its prebuilt
    COPY payload when it came encoded, its number of rows."""
    chunks: list[bytes | memoryview] | None = None
    checked_key: tuple[str, ...] = ()
    if isinstance(data, EncodedRows):
        if list(data.columns) != list(columns):
            raise StorageError(f"write into {table}: the encoded rows have other columns than the write")
        chunks, checked_key = data.chunks, data.unique_key
        data = data.data
    names = [c.name for c in columns]
    missing = [k for k in key if k not in names]
    if missing:
        raise StorageError(f"write into {table}: key columns {missing} are not among the columns")
    n = len(next(iter(data.values()))) if data else 0
    if n and checked_key != tuple(key):
        check_unique_keys(f"write into {table}", data, key)
    return data, chunks, n


def upsert(
    cur: Cursor,
    table: str,
    columns: Sequence[Column],
    data: ColumnData | EncodedRows,
    *,
    key: Sequence[str],
    touch: Mapping[str, str] | None = None,
    count_by: str | None = None,
) -> UpsertCounts:
    """Insert new keys and update rows whose values differ; leave equal rows untouched.

    Unchanged rows are not rewritten (their ``touch`` columns, e.g. ``ingested_at``, keep their
    values), so re-running the same window leaves the table byte-identical. The caller owns the
    transaction: commit once per symbol batch so readers never see half a batch.
    ``touch`` maps extra columns to SQL expressions set on insert and on change (``now()``).
    ``count_by="symbol"`` also reports (inserted, updated) per value of that column in ``by``.
    ``data`` may be ``EncodedRows`` (see ``encode_rows``) of the same columns.
    """
    data, _, n = _prepared(table, columns, data, key)
    if n == 0:
        return UpsertCounts(0, 0, 0)
    return _staged_upsert(cur, table, columns, data, key, touch, count_by)


def insert_new_keys(
    cur: Cursor,
    table: str,
    columns: Sequence[Column],
    data: ColumnData | EncodedRows,
    *,
    key: Sequence[str],
    count_by: str | None = None,
) -> UpsertCounts:
    """Rows the caller knows are all new (a feature backfill, the next hour's rows), straight into
    ``table`` by binary COPY: several times faster than INSERT … ON CONFLICT, and an existing key
    is an error. Columns not given take their defaults (``upsert``'s ``touch`` must match them)."""
    data, chunks, n = _prepared(table, columns, data, key)
    if n == 0:
        return UpsertCounts(0, 0, 0)
    inserted = copy_rows(cur, table, columns, data, chunks)
    return UpsertCounts(staged=n, inserted=inserted, updated=0, by=_appended_by(data, count_by, None))


def append_series(
    cur: Cursor,
    table: str,
    columns: Sequence[Column],
    data: ColumnData | EncodedRows,
    *,
    key: Sequence[str],
    series: Sequence[str],
    touch: Mapping[str, str] | None = None,
    count_by: str | None = None,
) -> UpsertCounts:
    """Rows of time series (``series``: the columns naming one, e.g. symbol and interval; the last
    key column is the time): those after their series' newest stored row are appended by binary
    COPY, the rest (a correction, the partial bar again) go through ``upsert``. What an ingest
    writes: mostly new bars, a few revisited ones."""
    data, chunks, n = _prepared(table, columns, data, key)
    if n == 0:
        return UpsertCounts(0, 0, 0)
    fresh = _after_newest(cur, table, series, key[-1], data)
    if fresh.all():
        appended = copy_rows(cur, table, columns, data, chunks)
        return UpsertCounts(staged=n, inserted=appended, updated=0, by=_appended_by(data, count_by, None))
    if not fresh.any():
        return _staged_upsert(cur, table, columns, data, key, touch, count_by)
    appended = copy_rows(cur, table, columns, _take(data, fresh))
    by = _appended_by(data, count_by, fresh)
    rest = _staged_upsert(cur, table, columns, _take(data, ~fresh), key, touch, count_by)
    if by is not None:
        for value, (ins, upd) in (rest.by or {}).items():
            prev = by.get(value, (0, 0))
            by[value] = (prev[0] + ins, prev[1] + upd)
    return UpsertCounts(staged=n, inserted=appended + rest.inserted, updated=rest.updated, by=by)


def _appended_by(data: ColumnData, count_by: str | None, mask: np.ndarray | None) -> dict | None:
    if count_by is None:
        return None
    values = np.asarray(data[count_by], dtype=object)
    if mask is not None:
        values = values[mask]
    counts = pd.Series(values).value_counts(sort=False)  # hashing, 3x faster than np.unique on str
    return {str(u): (int(c), 0) for u, c in counts.items()}


def _staged_upsert(
    cur: Cursor,
    table: str,
    columns: Sequence[Column],
    data: ColumnData,
    key: Sequence[str],
    touch: Mapping[str, str] | None,
    count_by: str | None = None,
) -> UpsertCounts:
    names = [c.name for c in columns]
    stage, staged = stage_rows(cur, table, columns, data)
    touch = dict(touch or {})
    value_cols = [c for c in columns if c.name not in key]
    select_exprs = [sql.Identifier(c.name) for c in columns] + [sql.SQL(expr) for expr in touch.values()]
    insert_cols = [sql.Identifier(n) for n in names] + [sql.Identifier(t) for t in touch]
    set_items = [sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c.name)) for c in value_cols] + [
        sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(t)) for t in touch
    ]
    target = sql.Identifier(table)
    changed = sql.SQL("({}) IS DISTINCT FROM ({})").format(
        sql.SQL(", ").join(sql.SQL("{}.{}").format(target, sql.Identifier(c.name)) for c in value_cols),
        sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c.name)) for c in value_cols),
    )
    stmt = sql.SQL(
        """WITH up AS (
             INSERT INTO {target} ({cols}) SELECT {exprs} FROM {stage}
             ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE {changed}
             RETURNING (xmax = 0) AS inserted, {group} AS grp)
           SELECT grp, count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up GROUP BY grp"""
    ).format(
        target=target,
        cols=sql.SQL(", ").join(insert_cols),
        exprs=sql.SQL(", ").join(select_exprs),
        stage=sql.Identifier(stage),
        key=sql.SQL(", ").join(sql.Identifier(k) for k in key),
        sets=sql.SQL(", ").join(set_items),
        changed=changed if value_cols else sql.SQL("false"),
        group=sql.SQL("{}.{}::text").format(target, sql.Identifier(count_by)) if count_by else sql.SQL("''"),
    )
    cur.execute(stmt)
    rows = cur.fetchall()
    inserted, updated = sum(r[1] for r in rows), sum(r[2] for r in rows)
    by = {r[0]: (r[1], r[2]) for r in rows} if count_by else None
    cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(stage)))
    return UpsertCounts(staged=staged, inserted=inserted, updated=updated, by=by)


def stage_rows(
    cur: Cursor, table: str, columns: Sequence[Column], data: ColumnData, *, constraints: bool = True
) -> tuple[str, int]:
    """``data`` in an empty session-temporary table with ``table``'s layout; returns (its name,
    rows). ``constraints=False``: only ``columns``, typed as in ``table``, without its NOT NULLs
    (rows that update some columns of existing rows). Named after the columns: a session that
    staged rows before ``table`` gained a column gets a new staging table with it."""
    names = ",".join(c.name for c in columns)
    stage = f"_stage_{table}_{hashlib.sha256(f'{names}:{constraints}'.encode()).hexdigest()[:8]}"
    template = (
        "CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        if constraints
        else "CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS"
        " AS SELECT {columns} FROM {table} WITH NO DATA"
    )
    cur.execute(
        sql.SQL(template).format(
            stage=sql.Identifier(stage),
            table=sql.Identifier(table),
            columns=sql.SQL(", ").join(sql.Identifier(c.name) for c in columns),
        )
    )
    cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(stage)))
    return stage, copy_rows(cur, stage, columns, data)
