"""The reference: the SQL functions features_asof / bars_asof, called as a SQL user would (one
call, ordinary text results through psycopg2), and a row-by-row, bit-by-bit comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.features.feature_helpers import FEATURE_NAMES

TIME_COLUMNS = ["ts", "closes_at", "known_from", "known_to"]


def sql_asof(
    conn,
    entities: pd.DataFrame,
    *,
    known_at=None,
    interval: str = "1h",
    tolerance: str | None = None,
    mode: str = "known",
    columns=FEATURE_NAMES,
    function: str = "features_asof",
) -> pd.DataFrame:
    """One row per entity row (entity order); no answer: NaN/NaT/None. known_to infinity -> NaT."""
    at = [t.to_pydatetime() for t in pd.DatetimeIndex(entities["at"]).tz_convert("UTC")]
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT entity, ts, closes_at, known_from, nullif(known_to, 'infinity'), complete, {', '.join(columns)} "
            f"FROM {function}(%s::text[], %s::timestamptz[], %s::timestamptz, %s, %s::interval, %s)",
            (list(entities["symbol"]), at, known_at, interval, tolerance, mode),
        )
        rows = cur.fetchall()
    conn.rollback()
    got = pd.DataFrame(rows, columns=["entity", *TIME_COLUMNS, "complete", *columns])
    full = pd.DataFrame({"entity": np.arange(1, len(entities) + 1)}).merge(got, on="entity", how="left")
    for name in TIME_COLUMNS:
        full[name] = pd.to_datetime(full[name], utc=True)
    return full


def _bits(values) -> np.ndarray:
    arr = np.asarray(pd.to_numeric(pd.Series(values), errors="raise").astype(float), dtype=np.float64)
    return np.where(np.isnan(arr), 0, arr.view(np.int64)), np.isnan(arr)


def assert_same(got: pd.DataFrame, want: pd.DataFrame, columns=FEATURE_NAMES) -> None:
    """Same chosen version per entity row (ts, its times, complete) and bit-identical values."""
    assert len(got) == len(want)
    for name in TIME_COLUMNS:
        a = pd.DatetimeIndex(got[name]).as_unit("us")
        b = pd.DatetimeIndex(want[name]).as_unit("us")
        diff = np.flatnonzero(~((a == b) | (a.isna() & b.isna())))
        assert not len(diff), f"{name} differs at rows {diff[:10].tolist()}: {a[diff[:3]]} vs {b[diff[:3]]}"
    a = got["complete"].astype("boolean")
    b = want["complete"].astype("boolean")
    assert (a.isna() == b.isna()).all() and (a.fillna(False) == b.fillna(False)).all(), "complete differs"
    for name in columns:
        (ab, an), (bb, bn) = _bits(got[name]), _bits(want[name])
        diff = np.flatnonzero((an != bn) | (ab != bb))
        assert not len(diff), f"{name} differs at rows {diff[:10].tolist()}"


def sql_latest(conn, interval: str = "1h") -> pd.DataFrame:
    """``latest_features`` as a SQL user reads it (ordered by symbol; NULL as None/NaT)."""
    with conn.cursor() as cur:
        cur.execute('SELECT * FROM latest_features WHERE interval = %s ORDER BY symbol COLLATE "C"', (interval,))
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
    return pd.DataFrame(rows, columns=names)


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """The same columns in the same order, and row by row the same values: floats bit for bit
    (NULL = NaN), times to the µs (NULL = NaT), everything else equal (NULL = <NA>/None)."""
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for name in want.columns:
        if pd.api.types.is_datetime64_any_dtype(got[name]):
            a = pd.DatetimeIndex(got[name]).as_unit("us")
            b = pd.DatetimeIndex(pd.to_datetime(want[name], utc=True)).as_unit("us")
            diff = np.flatnonzero(~((a == b) | (a.isna() & b.isna())))
        elif pd.api.types.is_float_dtype(got[name]):
            (ab, an), (bb, bn) = _bits(got[name]), _bits(want[name].astype(float))
            diff = np.flatnonzero((an != bn) | (ab != bb))
        else:
            a = [None if pd.isna(v) else v for v in got[name]]
            b = [None if pd.isna(v) else v for v in want[name]]
            diff = np.flatnonzero([x != y for x, y in zip(a, b, strict=True)])
        assert not len(diff), f"{name} differs at rows {diff[:10].tolist()}"
