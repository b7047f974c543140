"""The binary COPY + upsert write path, against the real hypertable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfs.errors import StorageError
from mfs.ingest.write import MARKET_DATA_COLUMNS
from mfs.storage.bulk import append_series, insert_new_keys, upsert
from mfs.storage.copy_binary import Column, encode_copy_binary, encode_rows

BAR_COLUMNS = MARKET_DATA_COLUMNS
KEY = ["symbol", "interval", "ts"]


def bars(symbols=("AAPL", "BRK-B"), n=5, close=100.0) -> dict:
    ts = pd.date_range("2024-03-08 14:30", periods=n, freq="h", tz="UTC")
    frames = []
    for s in symbols:
        frames.append(
            pd.DataFrame(
                {
                    "symbol": s,
                    "interval": "1h",
                    "ts": ts,
                    "open": close,
                    "high": close + 1,
                    "low": close - 1,
                    "close": close + np.arange(n) * 0.25,
                    "adj_close": np.nan,
                    "volume": np.arange(n) * 1000 + 7,
                    "source": "test",
                    "closes_at": ts + pd.Timedelta(hours=1),
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    return {c: df[c].to_numpy() if c != "ts" else df[c] for c in df.columns}


def table_rows(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT symbol, interval, ts, open, high, low, close, adj_close, volume, source, ingested_at"
            " FROM market_data ORDER BY symbol, ts"
        )
        return cur.fetchall()


def test_insert_then_noop_then_update(conn) -> None:
    data = bars()
    with conn.cursor() as cur:
        counts = upsert(cur, "market_data", BAR_COLUMNS, data, key=KEY, touch={"ingested_at": "now()"})
    conn.commit()
    assert (counts.staged, counts.inserted, counts.updated) == (10, 10, 0)
    first = table_rows(conn)
    assert first[0][2] == pd.Timestamp("2024-03-08 14:30", tz="UTC").to_pydatetime()
    assert first[0][7] is None, "NaN must be stored as NULL"
    assert first[3][6] == 100.75 and first[3][8] == 3007

    with conn.cursor() as cur:
        again = upsert(cur, "market_data", BAR_COLUMNS, data, key=KEY, touch={"ingested_at": "now()"})
    conn.commit()
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 10)
    assert table_rows(conn) == first, "re-running the same rows must leave the table identical"

    changed = bars(symbols=("AAPL",))
    changed["close"] = changed["close"].copy()
    changed["close"][-1] = 100.5
    with conn.cursor() as cur:
        upd = upsert(cur, "market_data", BAR_COLUMNS, changed, key=KEY, touch={"ingested_at": "now()"})
    conn.commit()
    assert (upd.inserted, upd.updated, upd.unchanged) == (0, 1, 4)
    rows = table_rows(conn)
    assert rows[4][6] == 100.5 and rows[4][10] >= first[4][10]  # touched (this machine's clock is coarse)
    assert rows[:4] == first[:4]


def test_encoded_rows_are_sent_as_built_only_when_every_row_is_new(conn) -> None:
    """The ingest encodes a batch ahead of its write; when part of it already exists, only the
    new rows may be COPYed and the rest upserted — the prebuilt payload holds all of them."""
    kwargs = {"key": KEY, "touch": {"ingested_at": "now()"}, "series": ("symbol", "interval"), "count_by": "symbol"}
    with conn.cursor() as cur:
        first = append_series(cur, "market_data", BAR_COLUMNS, encode_rows(BAR_COLUMNS, bars(n=3)), **kwargs)
    conn.commit()
    assert (first.inserted, first.updated, first.by) == (6, 0, {"AAPL": (3, 0), "BRK-B": (3, 0)})

    later = bars(n=5)
    later["close"] = later["close"].copy()
    later["close"][2] = 100.6  # AAPL's third bar corrected; two new bars per symbol
    with conn.cursor() as cur:
        second = append_series(cur, "market_data", BAR_COLUMNS, encode_rows(BAR_COLUMNS, later), **kwargs)
    conn.commit()
    assert (second.inserted, second.updated, second.by) == (4, 1, {"AAPL": (2, 1), "BRK-B": (2, 0)})
    closes = [100.0, 100.25, 100.6, 100.75, 101.0, 100.0, 100.25, 100.5, 100.75, 101.0]
    assert [r[6] for r in table_rows(conn)] == closes

    with conn.cursor() as cur, pytest.raises(StorageError, match="other columns"):
        upsert(cur, "market_data", BAR_COLUMNS[:-1], encode_rows(BAR_COLUMNS, later), key=KEY)
    conn.rollback()


def test_a_batch_decides_new_rows_by_each_series_newest_stored_row_from_its_earliest_time_on(conn) -> None:
    """Only stored rows from the batch's earliest time on are read: a series whose rows all lie in
    older chunks is appended to; a stored row inside the batch's span is corrected, not copied."""
    kwargs = {"key": KEY, "touch": {"ingested_at": "now()"}, "series": ("symbol", "interval"), "count_by": "symbol"}
    january = bars(symbols=("BRK-B",), n=3)
    january["ts"] = january["ts"] - pd.Timedelta(days=60)  # two chunks (30 days) before March
    with conn.cursor() as cur:
        append_series(cur, "market_data", BAR_COLUMNS, january, **kwargs)
        append_series(cur, "market_data", BAR_COLUMNS, bars(symbols=("AAPL",), n=3), **kwargs)
    conn.commit()
    later = bars(n=5)
    later["close"] = later["close"].copy()
    later["close"][2] = 100.6  # AAPL's third bar, stored, corrected
    with conn.cursor() as cur:
        counts = append_series(cur, "market_data", BAR_COLUMNS, encode_rows(BAR_COLUMNS, later), **kwargs)
    conn.commit()
    assert (counts.inserted, counts.updated, counts.by) == (7, 1, {"AAPL": (2, 1), "BRK-B": (5, 0)})
    assert len(table_rows(conn)) == 13


def test_duplicate_keys_in_one_batch_are_refused(conn) -> None:
    data = bars(symbols=("AAPL",))
    doubled = {
        k: np.concatenate([np.asarray(v), np.asarray(v)]) if k != "ts" else pd.DatetimeIndex(list(v) * 2)
        for k, v in data.items()
    }
    with conn.cursor() as cur, pytest.raises(StorageError, match="duplicate keys"):
        upsert(cur, "market_data", BAR_COLUMNS, doubled, key=KEY)
    conn.rollback()
    # Encoded ahead of the write: checked when encoded with the key, else by the upsert.
    with pytest.raises(StorageError, match="rows to encode: duplicate keys"):
        encode_rows(BAR_COLUMNS, doubled, key=KEY)
    with conn.cursor() as cur, pytest.raises(StorageError, match="write into market_data: duplicate keys"):
        upsert(cur, "market_data", BAR_COLUMNS, encode_rows(BAR_COLUMNS, doubled), key=KEY)
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM market_data WHERE symbol = 'AAPL'")
        assert cur.fetchone()[0] == 0


def test_insert_new_keys_inserts_with_nulls_and_refuses_an_existing_key(conn) -> None:
    import psycopg2

    data = bars(symbols=("AAPL",))
    with conn.cursor() as cur:
        counts = insert_new_keys(cur, "market_data", BAR_COLUMNS, data, key=KEY)
    conn.commit()
    assert (counts.staged, counts.inserted, counts.updated) == (5, 5, 0)
    assert table_rows(conn)[0][7] is None, "NaN must be stored as NULL on the plain-INSERT path too"
    with conn.cursor() as cur, pytest.raises(psycopg2.errors.UniqueViolation):
        insert_new_keys(cur, "market_data", BAR_COLUMNS, data, key=KEY)
    conn.rollback()


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(StorageError, match="timezone-aware"):
        encode_copy_binary([Column("ts", "timestamptz")], {"ts": pd.date_range("2024-01-01", periods=2)})


def test_check_constraints_stop_impossible_bars(conn) -> None:
    import psycopg2

    data = bars(symbols=("AAPL",), n=1)
    data["low"] = np.array([500.0])
    with conn.cursor() as cur, pytest.raises(psycopg2.errors.CheckViolation):
        upsert(cur, "market_data", BAR_COLUMNS, data, key=KEY)
    conn.rollback()


def test_binary_copy_round_trip_with_nulls_and_mixed_text_lengths(conn) -> None:
    """Texts of several lengths, NULL texts and NaN floats survive COPY exactly (NaN -> NULL)."""
    from mfs.storage.copy_binary import copy_rows

    n = 1000
    rng = np.random.default_rng(7)
    names = np.array(["A", "BRK-B", "^GSPC", "EURUSD=X", None], dtype=object)[rng.integers(0, 5, n)]
    x = rng.normal(size=n)
    x[rng.random(n) < 0.3] = np.nan
    y = rng.normal(size=n) * 1e300
    ts = pd.Timestamp("1999-12-31 23:00", tz="America/New_York") + pd.to_timedelta(
        rng.integers(0, 10**12, n), unit="us"
    )
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE rt (i bigint, name text, ts timestamptz, x double precision, y double precision,"
            " ok boolean)"
        )
        copy_rows(
            cur,
            "rt",
            [
                Column("i", "int8"),
                Column("name", "text"),
                Column("ts", "timestamptz"),
                Column("x", "float8"),
                Column("y", "float8"),
                Column("ok", "bool"),
            ],
            {"i": np.arange(n), "name": names, "ts": ts, "x": x, "y": y, "ok": x > 0},
        )
        cur.execute("SELECT i, name, ts, x, y, ok FROM rt ORDER BY i")
        rows = cur.fetchall()
    conn.rollback()
    assert len(rows) == n
    for i, (idx, name, t, xv, yv, ok) in enumerate(rows):
        assert idx == i and name == names[i] and yv == y[i] and ok == bool(x[i] > 0)
        assert pd.Timestamp(t) == ts[i]
        assert (xv is None) if np.isnan(x[i]) else xv == x[i]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_table_refuses_non_finite_prices(conn, bad) -> None:
    """NaN compares above every number in PostgreSQL: the table needs its own finite check."""
    import psycopg2

    with conn.cursor() as cur, pytest.raises(psycopg2.errors.CheckViolation, match="market_data_prices_finite"):
        cur.execute(
            "INSERT INTO market_data (symbol, interval, ts, open, high, low, close, volume)"
            " VALUES ('AAPL', '1h', now(), 100, %s, 99, 100, 1)",
            (float(bad),),
        )
    conn.rollback()
