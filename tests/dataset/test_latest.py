"""``mfs.dataset.latest_features``: the rows of the ``latest_features`` view (read as packed rows,
sql/074), compared value by value with the view as a SQL user reads it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pytest
from psycopg2 import errors

from mfs.dataset import latest_features
from mfs.errors import IntervalError, StorageError, SymbolError
from mfs.storage.connection import connect
from tests.dataset.oracle import assert_same_rows, sql_latest


@contextmanager
def _rolled_back(url: str) -> Iterator:
    """A connection whose transaction is rolled back after the block: the module's store stays as
    built."""
    conn = connect(url)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


# Outside the packed alphabet: a space and lower case; and 17 characters.
ODD_SYMBOLS = ("odd symbol", "ABCDEFGHIJKLMNOPQ")


@pytest.fixture
def reader(pit_store):
    """A connection with the reader role's rights (autocommit, as a polling client keeps one)."""
    conn = connect(pit_store.url, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SET ROLE mfs_reader")
    yield conn
    conn.close()


def test_equals_the_view_row_for_row(pit_store, reader) -> None:
    frame = latest_features(conn=reader)
    want = sql_latest(reader)
    assert_same_rows(frame, want)
    assert frame["symbol"].tolist() == sorted(pit_store.symbols)
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert frame["feature_version"].dtype == "int32" and frame["hour_et"].dtype == "Int16"
    with pytest.raises(errors.InsufficientPrivilege):  # the reader reads the views only
        reader.cursor().execute("SELECT packed FROM features_latest_packed")
    # On its own connection (read-only, REPEATABLE READ), the same rows.
    assert_same_rows(latest_features(url=pit_store.url), want)


def test_a_list_of_symbols_and_bad_arguments(pit_store, reader) -> None:
    want = sql_latest(reader)
    got = latest_features(["ko", "AAPL", "ZZZZ"], conn=reader)  # upper-cased; ZZZZ has no rows
    assert got["symbol"].tolist() == ["AAPL", "KO"]
    assert_same_rows(got, want[want["symbol"].isin(["AAPL", "KO"])].reset_index(drop=True))
    assert latest_features("MSFT", url=pit_store.url)["symbol"].tolist() == ["MSFT"]
    assert_same_rows(latest_features(interval="1d", conn=reader), sql_latest(reader, "1d"))
    nothing = latest_features(["ZZZZ"], conn=reader)
    assert nothing.empty and list(nothing.columns) == list(want.columns)
    with pytest.raises(IntervalError, match="interval must be one of 1h, 1d, got '5m'"):
        latest_features(interval="5m")
    with pytest.raises(SymbolError, match="not a valid ticker"):
        latest_features(["AAPL", "DROP TABLE;"])


def test_nulls_and_rows_without_a_packed_form(pit_store) -> None:
    """Hand-written NULLs travel as NULLs; a symbol outside the packed alphabet is read through
    the view, in its place among the others."""
    with _rolled_back(pit_store.url) as conn:  # its transaction is rolled back: the module's store stays as built
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE features SET sma_200 = NULL, hour_et = NULL, bar_ingested_at = NULL, closes_at = NULL "
                "WHERE symbol = 'MSFT' AND interval = '1h' "
                "AND ts = (SELECT max(ts) FROM features WHERE symbol = 'MSFT' AND interval = '1h')"
            )
            for symbol in ODD_SYMBOLS:  # written by hand: the bars and feature rows of KO under another name
                for table in ("market_data", "features"):
                    cur.execute(
                        f"CREATE TEMP TABLE copied AS SELECT * FROM {table} WHERE symbol = 'KO'; "
                        f"UPDATE copied SET symbol = %s; INSERT INTO {table} SELECT * FROM copied; DROP TABLE copied",
                        (symbol,),
                    )
            cur.execute("SELECT symbol FROM features_latest_packed WHERE packed IS NULL AND interval = '1h' ORDER BY 1")
            assert [r[0] for r in cur.fetchall()] == sorted(ODD_SYMBOLS)
        frame = latest_features(conn=conn)  # in the caller's transaction: its own rows are seen
        assert frame["symbol"].tolist() == sorted([*pit_store.symbols, *ODD_SYMBOLS])
        assert_same_rows(frame, sql_latest(conn))
        msft = frame.set_index("symbol").loc["MSFT"]
        assert pd.isna(msft["sma_200"]) and pd.isna(msft["hour_et"]) and pd.isna(msft["closes_at"])
        assert pd.isna(msft["bar_ingested_at"]) and pd.notna(msft["rsi_14"])
        odd = frame.set_index("symbol").loc[list(ODD_SYMBOLS)].drop(columns="computed_at")
        ko = frame.set_index("symbol").loc[["KO", "KO"]].drop(columns="computed_at")
        pd.testing.assert_frame_equal(odd.reset_index(drop=True), ko.reset_index(drop=True))


def test_packed_rows_of_another_layout_are_refused(pit_store) -> None:
    with _rolled_back(pit_store.url) as conn:  # rolled back
        with conn.cursor() as cur:  # as if the columns had changed without the rows being rebuilt
            cur.execute("UPDATE features_latest_packed SET packed = overlay(packed PLACING int4send(1) FROM 1 FOR 4)")
        with pytest.raises(StorageError, match="packed with other columns than latest_features has now"):
            latest_features(conn=conn)


def test_the_packed_rows_follow_an_update_of_the_newest_rows(pit_store) -> None:
    with _rolled_back(pit_store.url) as conn:  # rolled back
        with conn.cursor() as cur:  # features_latest updated in place (the runs delete and insert)
            cur.execute("UPDATE features_latest SET rsi_14 = 12.5 WHERE symbol = 'KO'")
            cur.execute("UPDATE features_latest SET symbol = 'KO2' WHERE symbol = 'MSFT'")
        frame = latest_features(conn=conn)
        assert "MSFT" not in set(frame["symbol"]) and frame.set_index("symbol").loc["KO", "rsi_14"] == 12.5
        assert_same_rows(frame, sql_latest(conn))


def test_a_row_whose_bar_had_not_closed_is_served_flagged_not_complete(pit_store) -> None:
    """The current hour's row is served (the freshest value) with complete = false, beside its
    bar's closes_at; a row fetched after its close is complete. A row without closes_at (written by
    hand) is judged by the calendar, in SQL and in the DataFrame alike."""
    with _rolled_back(pit_store.url) as conn:  # rolled back
        with conn.cursor() as cur:  # AAPL's newest bar fetched ten minutes before it closed
            cur.execute(
                "UPDATE features_latest SET bar_ingested_at = closes_at - interval '10 minutes' WHERE symbol = 'AAPL'"
            )
            cur.execute(  # MSFT's and KO's fetched a minute after; KO's close left for the calendar
                "UPDATE features_latest SET bar_ingested_at = closes_at + interval '1 minute', "
                "closes_at = CASE WHEN symbol = 'KO' THEN NULL ELSE closes_at END WHERE symbol IN ('MSFT', 'KO')"
            )
        want = sql_latest(conn)
        assert list(want.columns[:5]) == ["symbol", "interval", "ts", "closes_at", "complete"]
        complete = dict(zip(want["symbol"], want["complete"], strict=True))
        assert complete["AAPL"] is False and complete["MSFT"] is True and complete["KO"] is True
        frame = latest_features(conn=conn)
        assert_same_rows(frame, want)
        assert str(frame["complete"].dtype) == "boolean"
        assert frame[~frame["complete"]]["symbol"].tolist() == ["AAPL"]
