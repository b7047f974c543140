"""Every version of a batch of symbols' rows, read in one binary COPY; and the SQL function's answers.

Both reads select the same record: fixed-width and NOT NULL fields only (a NULL would change the
record's length), so the COPY payload is a plain numpy record array — exact bits, no text
conversion on either side. NULLs travel as sentinels: NaN for double precision (the dataset shows
both as NaN anyway), the type's minimum for integers (-32768 for hour_et/dow_et, which are 0–23 and
0–6; INT64_MIN for a volume, never negative), -1 for a NULL ``complete`` (a feature row written
before bar_ingested_at existed), '-infinity' for a NULL closes_at (a hand-written row: its symbol
is left to the SQL function, which reads it with bar_closes_at()).

Times stay PostgreSQL's binary timestamptz (µs since 2000-01-01, infinity = INT64_MAX) until the
frame is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mfs.storage.connection import connect, reader_url
from mfs.storage.records import PG_INF, PG_NINF, copy_records, native, record_dtype
from mfs.storage.types import Connection, Cursor

NULL_INT = {"int2": np.iinfo(np.int16).min, "int8": np.iinfo(np.int64).min}
_WIRE = {"float8": ">f8", "int2": ">i2", "int8": ">i8"}
_NULL_SQL = {"float8": "'NaN'::float8", "int2": "(-32768)::int2", "int8": "(-9223372036854775808)::int8"}
# The leading fields of every record, after k (the symbol's or the entity's 1-based position).
_TIME_FIELDS = [("ts", ">i8"), ("closes_at", ">i8"), ("known_from", ">i8"), ("known_to", ">i8"), ("complete", ">i4")]


@dataclass(frozen=True)
class Source:
    """A kind of versioned row: its current table and revision table (``known_from``: the column
    that is a version's known_from; complete: ``fetched >= closes_at``, as in the views of
    sql/050_point_in_time.sql), its "as of" SQL function (the oracle, and the fallback) and its
    value columns with their PostgreSQL types."""

    name: str
    table: str
    revisions: str
    known_from: str
    fetched: str
    function: str
    columns: tuple[tuple[str, str], ...]

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def pgtype(self, column: str) -> str:
        return dict(self.columns)[column]


FEATURE_SOURCE = Source(
    "features",
    "features",
    "features_revisions",
    "computed_at",
    "bar_ingested_at",
    "features_asof",
    (),  # the store's columns, asked by feature_source: a registry may have added or retired some
)
_PG_TYPES = {"double precision": "float8", "smallint": "int2", "integer": "int4", "bigint": "int8"}


def feature_source(url: str | None = None, conn: Connection | None = None) -> Source:
    """The features source with the store's feature columns (the registry's, in column order):
    a feature added to the definitions is in every dataset once its column exists."""
    own = conn is None
    conn = conn or connect(url or reader_url(), application_name="mfs-dataset")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name, sql_type FROM mfs_feature_columns()")
            columns = tuple((name, _PG_TYPES.get(kind, "float8")) for name, kind in cur.fetchall())
    finally:
        if own:
            conn.close()
    return dataclasses.replace(FEATURE_SOURCE, columns=columns)


BAR_SOURCE = Source(
    "bars",
    "market_data",
    "market_data_revisions",
    "ingested_at",
    "ingested_at",
    "bars_asof",
    (
        ("open", "float8"),
        ("high", "float8"),
        ("low", "float8"),
        ("close", "float8"),
        ("adj_close", "float8"),
        ("volume", "int8"),
    ),
)


@dataclass
class Records:
    """Decoded time fields (native byte order, PostgreSQL µs) of the COPY's records; the values
    stay in ``raw`` until asked for, since only the chosen versions' values are ever needed.
    ``rows``: each row's position in ``raw`` after a sort or a filter (None: the same)."""

    raw: np.ndarray
    k: np.ndarray
    ts: np.ndarray
    closes_at: np.ndarray
    known_from: np.ndarray
    known_to: np.ndarray
    complete: np.ndarray
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.k)

    def take(self, index: np.ndarray) -> Records:
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return Records(
            self.raw,
            self.k[index],
            self.ts[index],
            self.closes_at[index],
            self.known_from[index],
            self.known_to[index],
            self.complete[index],
            index if self.rows is None else self.rows[index],
        )

    def values(self, column: str, index: np.ndarray) -> np.ndarray:
        """``column`` of the rows ``index``, in native byte order."""
        return native(self.raw[column][index if self.rows is None else self.rows[index]])


def _dtype(source: Source, columns: Sequence[str]) -> np.dtype:
    return record_dtype([("k", ">i4"), *_TIME_FIELDS] + [(c, _WIRE[source.pgtype(c)]) for c in columns])


def _fields(source: Source, columns: Sequence[str], a: str, known_from: str, known_to: str, complete: str) -> str:
    fields = [
        f"{a}.ts",
        f"coalesce({a}.closes_at, '-infinity')",
        known_from,
        known_to,
        f"coalesce(({complete})::int4, -1)",
    ] + [f"coalesce({a}.{c}, {_NULL_SQL[source.pgtype(c)]})" for c in columns]
    return ", ".join(fields)


def _copy(cur: Cursor, query: str, params: tuple, dtype: np.dtype) -> Records:
    rec = copy_records(cur, query, params, dtype)

    def native(name: str, kind: type = np.int64) -> np.ndarray:
        return rec[name].astype(kind)

    return Records(
        rec,
        native("k"),
        native("ts"),
        native("closes_at"),
        native("known_from"),
        native("known_to"),
        native("complete", np.int8),
    )


def read_versions(
    cur: Cursor,
    source: Source,
    columns: Sequence[str],
    symbols: Sequence[str],
    interval: str,
    lo: int | None,
    hi: int,
    *,
    valid_at: int | None = None,
) -> Records:
    """Every version (current rows and revisions) of ``symbols``' rows of ``interval`` with
    ``lo <= ts <= hi`` (PostgreSQL µs; ``lo`` None = no lower bound), in no particular order;
    ``k`` is the symbol's 1-based position in ``symbols``. ``valid_at``: of the revisions, only the
    complete ones valid then. The tables are read directly, not through the versions view (whose
    columns the fields repeat): its extra projection costs ~15 % on a large read."""
    kf, fetched = source.known_from, source.fetched
    where = " AND {a}.ts <= %s" + ("" if lo is None else " AND {a}.ts >= %s")
    bounds: tuple = (pg_literal(hi),) + (() if lo is None else (pg_literal(lo),))
    join = (
        "FROM unnest(%s::text[]) WITH ORDINALITY AS w(symbol, k) "
        "JOIN {t} {a} ON {a}.symbol = w.symbol AND {a}.interval = %s"
    )
    current = "SELECT w.k::int4, " + _fields(
        source, columns, "c", f"c.{kf}", "'infinity'::timestamptz", f"c.{fetched} >= c.closes_at"
    )
    revised = "SELECT w.k::int4, " + _fields(
        source, columns, "r", f"r.{kf}", "r.known_to", f"r.{fetched} >= r.closes_at"
    )
    query = (
        f"{current} {join.format(t=source.table, a='c')}{where.format(a='c')} UNION ALL "
        f"{revised} {join.format(t=source.revisions, a='r')}{where.format(a='r')}"
    )
    params: tuple = (list(symbols), interval, *bounds) * 2
    if valid_at is not None:
        query += f" AND r.{kf} <= %s AND %s < r.known_to AND r.{fetched} >= r.closes_at"
        params += (pg_literal(valid_at),) * 2
    return _copy(cur, query, params, _dtype(source, columns))


def read_function(
    cur: Cursor,
    source: Source,
    columns: Sequence[str],
    symbols: Sequence[str],
    at: np.ndarray,
    *,
    known_at: int | None,
    interval: str,
    tolerance_us: int | None,
    mode: str,
) -> Records:
    """The SQL function's answers for the pairs (symbols[i], at[i]) (``at`` in PostgreSQL µs);
    ``k`` is the pair's 1-based position. A pair without an answer has no record."""
    query = (
        f"SELECT a.entity::int4, {_fields(source, columns, 'a', 'a.known_from', 'a.known_to', 'a.complete')} "
        f"FROM {source.function}(%s::text[], %s::timestamptz[], %s::timestamptz, %s, %s::interval, %s) a"
    )
    params = (
        list(symbols),
        "{" + ",".join(pg_literals(at)) + "}",
        None if known_at is None else pg_literal(known_at),
        interval,
        None if tolerance_us is None else f"{tolerance_us} microseconds",
        mode,
    )
    return _copy(cur, query, params, _dtype(source, columns))


def symbols_without_rows(cur: Cursor, source: Source, symbols: Sequence[str], interval: str) -> list[str]:
    """Those of ``symbols`` that have no current row of ``interval`` at all."""
    cur.execute(
        f"SELECT s FROM unnest(%s::text[]) AS s WHERE NOT EXISTS "
        f"(SELECT 1 FROM {source.table} t WHERE t.symbol = s AND t.interval = %s)",
        (list(symbols), interval),
    )
    return [r[0] for r in cur.fetchall()]


_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")


def pg_literals(pg_us: np.ndarray) -> list[str]:
    """Finite PostgreSQL µs timestamps as timestamptz literals, vectorised."""
    text = np.datetime_as_string(_PG_EPOCH + np.asarray(pg_us, dtype=np.int64).astype("timedelta64[us]"), unit="us")
    return [t + "Z" for t in text.tolist()]


def pg_literal(pg_us: int) -> str:
    """A PostgreSQL µs timestamp as a timestamptz literal (exact to the µs)."""
    if pg_us == PG_INF:
        return "infinity"
    if pg_us == PG_NINF:
        return "-infinity"
    return str(_PG_EPOCH + np.timedelta64(int(pg_us), "us")) + "Z"
