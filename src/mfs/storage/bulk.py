"""The one write path: binary COPY into a staging table, then an upsert that touches only
rows whose values changed.

Binary COPY because the text path (pandas ``to_csv`` + text COPY) is where the replaced system
and our first measurements lost their time (mission.md §6). Rows are encoded with numpy record
arrays: rows that share their text values (one symbol, one interval) form one fixed-width block.
Floats travel as float8 and NaN becomes NULL in the upsert (``NULLIF(x, 'NaN')``), so warm-up
values are NULL in the table, never NaN and never 0.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from psycopg2 import sql

from mfs.errors import StorageError

PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in µs since the Unix epoch
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
_FIXED = {"float8": (">f8", 8), "int8": (">i8", 8), "int4": (">i4", 4), "int2": (">i2", 2),
          "timestamptz": (">i8", 8), "bool": ("?", 1)}
PG_TYPES = {"float8": "double precision", "int8": "bigint", "int4": "integer", "int2": "smallint",
            "timestamptz": "timestamptz", "bool": "boolean", "text": "text"}


@dataclass(frozen=True)
class Column:
    name: str
    pgtype: str  # a key of PG_TYPES


@dataclass(frozen=True)
class UpsertCounts:
    staged: int
    inserted: int
    updated: int

    @property
    def unchanged(self) -> int:
        return self.staged - self.inserted - self.updated


def _to_array(col: Column, values: object, n: int) -> np.ndarray:
    if col.pgtype == "timestamptz":
        ts = pd.DatetimeIndex(values)
        if ts.tz is None:
            raise StorageError(f"column {col.name}: timestamps must be timezone-aware (UTC)")
        us = ts.tz_convert("UTC").as_unit("us").asi8
        return us - PG_EPOCH_US
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise StorageError(f"column {col.name}: expected {n} values, got shape {arr.shape}")
    if col.pgtype in ("int8", "int4", "int2"):
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise StorageError(f"column {col.name}: integer column has NaN/inf values")
        return arr.astype(np.int64)
    if col.pgtype == "float8":
        return arr.astype(np.float64)
    return arr


def encode_copy_binary(columns: Sequence[Column], data: Mapping[str, object]) -> bytes:
    """PostgreSQL binary COPY payload for ``columns`` (no NULLs; NaN floats are sent as NaN)."""
    n = len(next(iter(data.values()))) if data else 0
    arrays = {c.name: _to_array(c, data[c.name], n) for c in columns}
    text_cols = [c for c in columns if c.pgtype == "text"]
    # Group rows by their combination of text values: each group is one fixed-width block.
    if text_cols:
        codes = []
        uniques = []
        for c in text_cols:
            code, uniq = pd.factorize(pd.Series(arrays[c.name], dtype=object), use_na_sentinel=True)
            if (code < 0).any():
                raise StorageError(f"column {c.name}: text column has missing values")
            codes.append(code)
            uniques.append([str(u).encode() for u in uniq])
        combo = np.zeros(n, dtype=np.int64)
        for code, uniq in zip(codes, uniques):
            combo = combo * len(uniq) + code
        order = np.argsort(combo, kind="stable")
        bounds = np.flatnonzero(np.diff(combo[order])) + 1
        groups = np.split(order, bounds) if n else []
    else:
        groups = [np.arange(n)] if n else []
    out = io.BytesIO()
    out.write(_HEADER)
    for rows in groups:
        fields = [("n", ">i2")]
        texts = {}
        for i, c in enumerate(columns):
            if c.pgtype == "text":
                idx = text_cols.index(c)
                texts[c.name] = uniques[idx][codes[idx][rows[0]]]
                fields += [(f"l{i}", ">i4"), (f"v{i}", f"S{max(len(texts[c.name]), 1)}")]
            else:
                fields += [(f"l{i}", ">i4"), (f"v{i}", _FIXED[c.pgtype][0])]
        rec = np.empty(len(rows), dtype=np.dtype(fields))
        rec["n"] = len(columns)
        for i, c in enumerate(columns):
            if c.pgtype == "text":
                value = texts[c.name]
                if not value:
                    raise StorageError(f"column {c.name}: empty text values are not supported")
                rec[f"l{i}"] = len(value)
                rec[f"v{i}"] = value
            else:
                rec[f"l{i}"] = _FIXED[c.pgtype][1]
                rec[f"v{i}"] = arrays[c.name][rows]
        out.write(rec.tobytes())
    out.write(_TRAILER)
    return out.getvalue()


def copy_rows(cur, table: str, columns: Sequence[Column], data: Mapping[str, object]) -> int:
    """Binary COPY ``data`` into ``table``; returns the row count."""
    payload = encode_copy_binary(columns, data)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    )
    cur.copy_expert(stmt.as_string(cur), io.BytesIO(payload))
    return cur.rowcount


def upsert(
    cur,
    table: str,
    columns: Sequence[Column],
    data: Mapping[str, object],
    *,
    key: Sequence[str],
    touch: Mapping[str, str] | None = None,
    new_keys_only: bool = False,
) -> UpsertCounts:
    """Stage ``data`` by binary COPY, then insert new keys and update rows whose values differ.

    Unchanged rows are not rewritten (their ``touch`` columns, e.g. ``ingested_at``, keep their
    values), so re-running the same window leaves the table byte-identical. The caller owns the
    transaction: commit once per symbol batch so readers never see half a batch.
    ``touch`` maps extra columns to SQL expressions set on insert and on change (``now()``).
    ``new_keys_only=True``: the caller knows none of the keys exist yet (a feature backfill), so a
    plain INSERT is used (~40% faster than ON CONFLICT on wide rows); an existing key is an error.
    """
    names = [c.name for c in columns]
    missing = [k for k in key if k not in names]
    if missing:
        raise StorageError(f"upsert into {table}: key columns {missing} are not among the columns")
    n = len(next(iter(data.values()))) if data else 0
    if n == 0:
        return UpsertCounts(0, 0, 0)
    keys = pd.DataFrame({k: data[k] for k in key})
    if keys.duplicated().any():
        dup = keys[keys.duplicated(keep=False)].head(3).to_dict("records")
        raise StorageError(f"upsert into {table}: duplicate keys in one batch, e.g. {dup}")
    stage = f"_stage_{table}"
    cur.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS").format(
            sql.Identifier(stage), sql.Identifier(table)
        )
    )
    cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(stage)))
    staged = copy_rows(cur, stage, columns, data)
    touch = dict(touch or {})
    value_cols = [c for c in columns if c.name not in key]
    select_exprs = [
        sql.SQL("NULLIF({c}, 'NaN'::float8)").format(c=sql.Identifier(c.name)) if c.pgtype == "float8"
        else sql.Identifier(c.name)
        for c in columns
    ] + [sql.SQL(expr) for expr in touch.values()]
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
             RETURNING (xmax = 0) AS inserted)
           SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"""
    ).format(
        target=target,
        cols=sql.SQL(", ").join(insert_cols),
        exprs=sql.SQL(", ").join(select_exprs),
        stage=sql.Identifier(stage),
        key=sql.SQL(", ").join(sql.Identifier(k) for k in key),
        sets=sql.SQL(", ").join(set_items),
        changed=changed if value_cols else sql.SQL("false"),
    )
    if new_keys_only:
        stmt = sql.SQL("INSERT INTO {target} ({cols}) SELECT {exprs} FROM {stage}").format(
            target=target, cols=sql.SQL(", ").join(insert_cols), exprs=sql.SQL(", ").join(select_exprs),
            stage=sql.Identifier(stage))
    cur.execute(stmt)
    inserted, updated = (cur.rowcount, 0) if new_keys_only else cur.fetchone()
    cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(stage)))
    return UpsertCounts(staged=staged, inserted=inserted, updated=updated)
