"""``latest_features``: the rows the view of that name serves — every symbol's newest feature
row, or a list's — as a DataFrame, for a model that polls all of them.

The rows are read as one fixed-width bytea each (``latest_features_packed``, sql/074): one value
per row for the server to send instead of 45, and a payload numpy views as records (8,000
symbols into a DataFrame: ~10 ms, against ~21 ms for the bytes alone of a binary COPY of the view
and ~150 ms through a cursor). A row without a packed form (a hand-written symbol outside the
packed alphabet) is read through the view itself. Everything is read in one transaction that
locks both tables before its snapshot is taken, so the layout read from the catalog is the one
the rows were packed with (each row carries its layout's number, checked), and the answer is one
state of the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from psycopg2 import errors, sql

from mfs.errors import StorageError
from mfs.market import check_interval, normalize_symbols
from mfs.storage.connection import connect, reader_url
from mfs.storage.copy_binary import PG_EPOCH_US
from mfs.storage.records import PG_NINF, copy_records, native, to_utc_or_nat
from mfs.storage.types import Connection, Cursor, one_row

_WIRE = {
    "text": "S16",
    "double precision": ">f8",
    "smallint": ">i2",
    "integer": ">i4",
    "bigint": ">i8",
    "timestamp with time zone": ">i8",
}
_TIME = "timestamp with time zone"
# Every query takes the same two parameters; symbols NULL = every symbol (the client binds the
# values, so the planner sees the constant and drops the condition or probes the key).
_WANTED = "interval = %(interval)s AND (%(symbols)s::text[] IS NULL OR symbol = ANY(%(symbols)s::text[]))"
_LAYOUT = (
    "SELECT array_agg(name ORDER BY attnum), array_agg(sql_type ORDER BY attnum), "
    "array_agg(not_null ORDER BY attnum), mfs_latest_layout_id(), "
    f"EXISTS (SELECT 1 FROM latest_features_packed WHERE {_WANTED} AND packed IS NULL), "
    "(SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute "
    " WHERE attrelid = 'latest_features'::regclass AND attnum > 0 AND NOT attisdropped) "
    "FROM mfs_latest_layout()"
)
_LOCKED_LAYOUT = f"LOCK TABLE latest_features, latest_features_packed IN ACCESS SHARE MODE; {_LAYOUT}"
_BEGIN_LOCKED_LAYOUT = f"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; {_LOCKED_LAYOUT}"
_PACKED = f"SELECT packed FROM latest_features_packed WHERE {_WANTED} AND packed IS NOT NULL"
_UNPACKED = (
    "SELECT {columns} FROM latest_features WHERE symbol IN "
    f"(SELECT symbol FROM latest_features_packed WHERE {_WANTED} AND packed IS NULL) AND interval = %(interval)s"
)


@dataclass(frozen=True)
class Field:
    name: str
    sql_type: str
    not_null: bool


@dataclass(frozen=True)
class Layout:
    """The packed row's fields (every column of latest_features but interval), in order."""

    fields: tuple[Field, ...]
    number: int  # mfs_latest_layout_id(): what every packed row of this layout starts with

    @property
    def dtype(self) -> np.dtype:
        """A COPY row of one bytea: field count, length, layout number, then the packed fields."""
        fields = [(f.name, _WIRE[f.sql_type]) for f in self.fields]
        return np.dtype([("n", ">i2"), ("len", ">i4"), ("layout", ">i4"), *fields])


def latest_features(
    symbols: Iterable[str] | str | None = None,
    *,
    interval: str = "1h",
    url: str | None = None,
    conn: Connection | None = None,
) -> pd.DataFrame:
    """The newest feature row of every symbol with rows of ``interval`` (``symbols``: of those
    only; a symbol without rows has none), ordered by symbol: the columns of ``latest_features``
    in its order, ``complete`` false for a row whose bar had not closed when it was fetched (the
    current hour's); NULL as NaN (doubles), <NA> (integers, booleans) or NaT (times, in UTC).
    ``conn``: an open psycopg2 connection to read on (e.g. one that polls every hour; its
    transaction is left as is); else a read-only connection to ``url`` (default: the store)."""
    interval = check_interval(interval)
    wanted = None if symbols is None else normalize_symbols(symbols)
    own = conn is None
    if conn is None:
        conn = connect(url or reader_url(), autocommit=True, application_name="mfs latest_features")
    block = conn.autocommit  # then the read opens (and ends) its own REPEATABLE READ transaction
    try:
        with conn.cursor() as cur:
            try:
                return _read(cur, interval, wanted, begin=block)
            finally:
                if block and not conn.closed:
                    cur.execute("ROLLBACK")
    finally:
        if own:
            conn.close()


def _read(cur: Cursor, interval: str, wanted: list[str] | None, *, begin: bool) -> pd.DataFrame:
    # The lock comes before the first query, so the snapshot is taken after it: no change of the
    # columns (and of the packed rows with them) can fall between the layout and the rows. One
    # round trip.
    params = {"interval": interval, "symbols": wanted}
    try:
        cur.execute(_BEGIN_LOCKED_LAYOUT if begin else _LOCKED_LAYOUT, params)
    except errors.UndefinedTable:
        raise StorageError("this store has no latest_features_packed yet: run `mfs db up` (migration 074)") from None
    names, types, not_null, number, unpacked, view_columns = one_row(cur)
    layout = Layout(tuple(map(Field, names, types, not_null)), number)
    rec = copy_records(cur, _PACKED, params, layout.dtype)
    if not bool(np.all(rec["layout"] == number)):  # only a change of the columns that did not rebuild them
        raise StorageError(
            "latest_features_packed was packed with other columns than latest_features has now: "
            "the store's owner can rebuild it with SELECT mfs_rebuild_latest_packed()"
        )
    columns = _packed_columns(rec, layout)
    if unpacked:
        select = sql.SQL(", ").join(sql.Identifier(f.name) for f in layout.fields)
        cur.execute(sql.SQL(_UNPACKED).format(columns=select), params)
        columns = _merged(columns, _row_columns(cur.fetchall(), layout))
    return _frame(columns, layout, interval, view_columns)


def _packed_columns(rec: np.ndarray, layout: Layout) -> dict[str, np.ndarray]:
    """Each field as its own native array, rows by symbol (bytewise); the sentinels stay. The rows
    are reordered as raw bytes, then each field converted on its own: a reorder field by field
    costs ~10× more (5 ms for 8,000 rows), and a byte-order conversion of the whole structured
    array ~2× more than the fields' one by one (2.0 against 1.1 ms, measured)."""
    order = _symbol_order(rec["symbol"])
    if order is not None:
        rec = rec.view(np.uint8).reshape(len(rec), rec.dtype.itemsize)[order].view(rec.dtype).reshape(-1)
    out = {f.name: native(rec[f.name]) for f in layout.fields if f.sql_type != "text"}
    return {"symbol": np.array(rec["symbol"].tobytes().decode("ascii").split(), dtype=object), **out}


def _symbol_order(symbols: np.ndarray) -> np.ndarray | None:
    """The order sorting space-padded 16-byte symbols bytewise (None: they are in order): each as
    two big-endian 64-bit halves, compared as numbers."""
    halves = np.ascontiguousarray(symbols).view(">u8").reshape(-1, 2).astype(np.uint64)
    hi, lo = halves[:, 0], halves[:, 1]
    if bool(np.all((hi[1:] > hi[:-1]) | ((hi[1:] == hi[:-1]) & (lo[1:] >= lo[:-1])))):
        return None
    return np.lexsort((lo, hi))


def _row_columns(rows: list[tuple], layout: Layout) -> dict[str, np.ndarray]:
    """Rows read through the view, as the same arrays with the same sentinels."""
    out: dict[str, np.ndarray] = {}
    for i, f in enumerate(layout.fields):
        values = [r[i] for r in rows]
        if f.sql_type == "text":
            out[f.name] = np.array(values, dtype=object)
        elif f.sql_type == "double precision":
            out[f.name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        elif f.sql_type == _TIME:
            unix_us = pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("us").asi8
            out[f.name] = np.where(pd.isna(values), PG_NINF, unix_us - PG_EPOCH_US)
        else:
            dtype = np.dtype(_WIRE[f.sql_type]).newbyteorder("=")
            out[f.name] = np.array([np.iinfo(dtype).min if v is None else v for v in values], dtype=dtype)
    return out


def _merged(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    both = {name: np.concatenate([a[name], b[name]]) for name in a}
    order = np.argsort(both["symbol"], kind="stable")
    return {name: values[order] for name, values in both.items()}


def _complete(data: dict[str, object], interval: str) -> pd.arrays.BooleanArray:
    """The view's ``complete``: the row's bar was fetched after it closed. A row without
    ``closes_at`` (only a hand-written one) is judged by the calendar, as the view does with
    bar_closes_at; without ``bar_ingested_at`` it is unknown (<NA>), as in SQL."""
    ingested = pd.DatetimeIndex(data["bar_ingested_at"])
    closes = pd.DatetimeIndex(data["closes_at"])
    if closes.isna().any():
        from mfs import calendar  # deferred: exchange_calendars, ~70 ms (importtime): only for such a row

        closes = closes.where(closes.notna(), calendar.bar_closes(interval, pd.DatetimeIndex(data["ts"])))
    return pd.arrays.BooleanArray(np.asarray(ingested >= closes), np.asarray(ingested.isna() | closes.isna()))


def _frame(columns: dict[str, np.ndarray], layout: Layout, interval: str, view_columns: list[str]) -> pd.DataFrame:
    n = len(columns["symbol"])
    data: dict[str, object] = {"symbol": columns["symbol"], "interval": np.full(n, interval, dtype=object)}
    for f in layout.fields:
        values = columns[f.name]
        if f.sql_type == _TIME:
            data[f.name] = to_utc_or_nat(values)
        elif f.sql_type in ("smallint", "integer", "bigint") and not f.not_null:
            values = np.ascontiguousarray(values)
            data[f.name] = pd.arrays.IntegerArray(values, values == np.iinfo(values.dtype).min)
        elif f.sql_type != "text":
            data[f.name] = values
    data["complete"] = _complete(data, interval)
    data = {name: data[name] for name in view_columns}  # the view's order: ts, closes_at, complete first
    # Not consolidated into one block per dtype: that copy of every float column cost 1.5 ms of
    # 8,000 rows' ~4 ms conversion (measured); pandas consolidates later only where an operation needs it.
    return pd.DataFrame(data, copy=False)
