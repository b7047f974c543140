"""Updates of existing rows only (a column filled over the whole history): the rows of a table
whose key is staged get the staged values where they differ; nothing is inserted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from psycopg2 import sql

from mfs.storage.bulk import Column, ColumnData, check_unique_keys, stage_rows


def update_existing(
    cur,
    table: str,
    columns: Sequence[Column],
    data: ColumnData,
    *,
    key: Sequence[str],
    touch: Mapping[str, str] | None = None,
    count_by: str,
) -> dict[str, int]:
    """Set the non-key ``columns`` of the rows of ``table`` whose key is in ``data`` and whose
    values differ (``touch`` columns set too, as in ``upsert``); keys not in ``table`` are ignored.
    Returns the rows updated per value of ``count_by``."""
    if not len(next(iter(data.values()), ())):
        return {}
    check_unique_keys(f"update of {table}", data, key)
    stage, _ = stage_rows(cur, table, columns, data, constraints=False)
    value_cols = [c.name for c in columns if c.name not in key]
    target, staged = sql.Identifier(table), sql.Identifier(stage)
    sets = [sql.SQL("{c} = s.{c}").format(c=sql.Identifier(c)) for c in value_cols]
    sets += [sql.SQL("{} = {}").format(sql.Identifier(t), sql.SQL(expr)) for t, expr in (touch or {}).items()]
    stmt = sql.SQL(
        """WITH up AS (
             UPDATE {target} t SET {sets} FROM {stage} s
             WHERE {match} AND ({old}) IS DISTINCT FROM ({new})
             RETURNING t.{group}::text AS grp)
           SELECT grp, count(*) FROM up GROUP BY grp"""
    ).format(
        target=target,
        sets=sql.SQL(", ").join(sets),
        stage=staged,
        match=sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in key),
        old=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in value_cols),
        new=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in value_cols),
        group=sql.Identifier(count_by),
    )
    cur.execute(stmt)
    counts = {grp: int(n) for grp, n in cur.fetchall()}
    cur.execute(sql.SQL("TRUNCATE {}").format(staged))
    return counts
