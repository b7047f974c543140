"""Stored history follows Yahoo's re-adjustments (dividends, splits) and missed runs are filled
(mfs.ingest.history), through the real yfinance code and the offline Yahoo: after each
scenario the store equals what a fresh backfill would load at that moment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfs.aggregates import refresh
from mfs.config import get_config
from mfs.features import compute
from mfs.ingest import backfill, collect
from mfs.ingest.run import window_start
from mfs.market import MAX_HOURLY_DAYS
from mfs.orchestration.artifacts import summary_markdown
from mfs.sources.fake_yahoo import split_adjusted
from mfs.sources.synthetic import synthetic_bars
from tests.aggregates.aggregate_helpers import REFERENCE, features_reference
from tests.features.feature_helpers import FEATURE_NAMES
from tests.ingest.test_pipeline import rows, scalar

VALUES = ["ts", "open", "high", "low", "close", "adj_close", "volume"]
FEATURES_CHECKSUM = """SELECT md5(string_agg((symbol, interval, ts, feature_version, rsi_14, sma_200, obv,
                                              macd_signal, atr_14, bb_width)::text, '|' ORDER BY symbol, interval, ts))
                       FROM features"""


def served(symbol: str, interval: str, start, asof, split=None) -> pd.DataFrame:
    """What Yahoo serves at ``asof`` from ``start``: a fresh backfill would store exactly this."""
    asof = pd.Timestamp(asof)
    bars = synthetic_bars(symbol, interval, start, asof + pd.Timedelta(seconds=1), asof=asof)
    if split is not None:
        bars = split_adjusted(bars, pd.Timestamp(split[0]), split[1], asof)
    return bars[VALUES].reset_index(drop=True)


def stored(conn, symbol: str, interval: str) -> pd.DataFrame:
    return rows(conn, interval, symbol)[VALUES].reset_index(drop=True)


def assert_same(mine: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(mine) == len(expected) > 0
    pd.testing.assert_frame_equal(
        mine.astype({"volume": "int64"}), expected.astype({"volume": "int64"}), check_exact=True, check_dtype=False
    )


def test_a_dividend_after_missed_runs_readjusts_the_whole_stored_history(conn, fake_yahoo):
    # KO goes ex-dividend on 2025-09-25 (synthetic model); AAPL pays none. The store was last
    # updated three days before; the next run comes three weeks later, far past its 7-day window.
    before, after = "2025-09-22 21:10Z", "2025-10-15 21:10Z"
    backfill(["KO", "AAPL"], days=90, session=fake_yahoo(asof=before))
    first = {s: rows(conn, "1d", s)["ts"].min() for s in ("KO", "AAPL")}
    stale = stored(conn, "KO", "1d")

    report = collect(["KO", "AAPL"], "1d", session=fake_yahoo(asof=after))

    for symbol in ("KO", "AAPL"):  # the gap is filled and every stored bar is as Yahoo serves it now
        assert_same(stored(conn, symbol, "1d"), served(symbol, "1d", first[symbol], after))
    notes = report.notes
    assert len(notes) == 1 and notes[0].startswith("KO 1d: Yahoo re-adjusted the history") and "adj_close" in notes[0]
    now = stored(conn, "KO", "1d").set_index("ts")
    old = stale.set_index("ts")["adj_close"]
    assert (now.loc[old.index[:-1], "adj_close"] < old.iloc[:-1]).all()  # every bar before the ex-date moved
    assert scalar(conn, "SELECT counts->'notes' FROM pipeline_runs WHERE run_id = %s", report.run_id) == notes


def test_a_split_readjusts_hourly_and_daily_history_and_the_features_follow(conn, fake_yahoo):
    split = ("2025-10-20", 4.0)
    before, after = "2025-10-15 21:10Z", "2025-10-22 18:00Z"  # the next run: mid-session, after the split
    faults = {"PEP": f"split:{split[0]}:{split[1]:g}"}
    backfill(["PEP"], days=60, session=fake_yahoo(asof=before, faults=faults))
    compute(["PEP"])
    first = {i: rows(conn, i, "PEP")["ts"].min() for i in ("1h", "1d")}

    report = collect(["PEP"], session=fake_yahoo(asof=after, faults=faults))

    for interval in ("1h", "1d"):
        assert_same(stored(conn, "PEP", interval), served("PEP", interval, first[interval], after, split))
    assert sorted(n.split(":")[0] for n in report.notes) == ["PEP 1d", "PEP 1h"]
    assert "- PEP 1h: Yahoo re-adjusted the history" in summary_markdown("collect", [report], "completed")
    assert stored(conn, "PEP", "1h")["close"].iloc[0] < served("PEP", "1h", first["1h"], before)["close"].iloc[0] / 3
    assert report.counts().quarantined == 0  # the adjusted history has no jump at the split

    compute(["PEP"])  # incremental: every re-adjusted bar is stale, so all of them are recomputed
    incremental = scalar(conn, FEATURES_CHECKSUM)
    compute(["PEP"], full=True)
    assert scalar(conn, FEATURES_CHECKSUM) == incremental


def test_an_unchanged_history_is_not_fetched_again(conn, fake_yahoo):
    # At 11:10 NY the newest stored bar is partial; an hour later it has changed, the rest not.
    backfill(["KO", "MSFT"], days=30, session=fake_yahoo(asof="2025-11-25 16:10Z"))
    asof = pd.Timestamp("2025-11-25 17:15Z")
    report = collect(["KO", "MSFT"], session=fake_yahoo(asof=asof))
    assert not report.notes
    start = window_start(asof, get_config().ingest.incremental_days)
    for r in report.results:  # each fetched its window only (counted in bars: request counts vary
        # with yfinance's timezone probes, whose SQLite cache may be busy)
        assert r.fetched == len(served(r.symbol, r.stage.split("_")[1], start, asof)) > 0, r
    assert sum(r.updated for r in report.results if r.symbol == "KO") == 2  # the partial 1h and 1d bars


def test_hourly_bars_older_than_yahoos_limit_resume_at_the_limit(conn, fake_yahoo):
    # Nothing stored is within the 730 days Yahoo serves hourly bars for: fetch all it still has.
    backfill(["MSFT"], days=10, session=fake_yahoo(asof="2023-06-02 21:10Z"))
    later = "2025-11-25 21:10Z"
    report = collect(["MSFT"], "1h", session=fake_yahoo(asof=later))
    assert report.failed == [] and not report.notes
    floor = window_start(pd.Timestamp(later), MAX_HOURLY_DAYS)
    hourly = stored(conn, "MSFT", "1h")
    assert_same(hourly[hourly["ts"] >= floor].reset_index(drop=True), served("MSFT", "1h", floor, later))


COMPRESS_OLD_CHUNKS = """SELECT count(compress_chunk(c, if_not_compressed => true))
                         FROM show_chunks(%s::regclass, older_than => %s::timestamptz) c"""


@pytest.mark.edition("timescale")
def test_a_split_rewrites_compressed_history_and_the_aggregates_catch_up(conn, db, fake_yahoo):
    """The same split, with the history already in columnstore chunks (as the compression
    policy leaves everything older than the ingest window): the rewrite lands in the compressed
    chunks, the store equals a fresh backfill, the aggregates equal a from-scratch GROUP BY after
    the pipeline's refresh, and features incremental == full."""
    split = ("2025-10-20", 4.0)
    before, after = "2025-10-15 21:10Z", "2025-10-22 18:00Z"
    faults = {"PEP": f"split:{split[0]}:{split[1]:g}"}
    backfill(["PEP", "KO"], days=150, session=fake_yahoo(asof=before, faults=faults))
    compute(["PEP", "KO"])
    refresh()
    horizon = pd.Timestamp(before) - pd.Timedelta(days=get_config().ingest.incremental_days + 1)
    compressed = {t: scalar(conn, COMPRESS_OLD_CHUNKS, t, horizon) for t in ("market_data", "features")}
    conn.commit()
    assert compressed["market_data"] >= 3 and compressed["features"] >= 3, compressed
    first = {i: rows(conn, i, "PEP")["ts"].min() for i in ("1h", "1d")}
    untouched = stored(conn, "KO", "1h")

    report = collect(["PEP", "KO"], session=fake_yahoo(asof=after, faults=faults))
    refresh()

    for interval in ("1h", "1d"):
        assert_same(stored(conn, "PEP", interval), served("PEP", interval, first[interval], after, split))
    assert sorted(n.split(":")[0] for n in report.notes) == ["PEP 1d", "PEP 1h"]
    ko = stored(conn, "KO", "1h")
    pd.testing.assert_frame_equal(ko.iloc[: len(untouched) - 2], untouched.iloc[:-2])  # but the partial bars
    for name, reference in REFERENCE.items():
        key = "day" if name == "ohlcv_1d" else "week"
        assert query_all(conn, f"SELECT * FROM {name} ORDER BY symbol, {key}") == query_all(conn, reference), name

    compute(["PEP", "KO"])
    refresh()
    assert query_all(conn, "SELECT * FROM features_1d ORDER BY symbol, day") == query_all(conn, features_reference(db))
    incremental = feature_rows(conn)
    compute(["PEP", "KO"], full=True)
    full = feature_rows(conn)
    # PEP was recomputed whole; KO's new bars from a 450-bar look-back: equal to 1e-9 of the
    # column's scale (floating-point sums over another start), NULLs identical.
    assert incremental[["symbol", "interval", "ts"]].equals(full[["symbol", "interval", "ts"]])
    for name in FEATURE_NAMES:
        got, want = incremental[name].to_numpy(), full[name].to_numpy()
        assert np.array_equal(np.isnan(got), np.isnan(want)), name
        scale = max(np.nanmedian(np.abs(want)), 1e-300) if not np.isnan(want).all() else 1.0
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale, equal_nan=True, err_msg=name)


def feature_rows(conn) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(f"SELECT symbol, interval, ts, {', '.join(FEATURE_NAMES)} FROM features ORDER BY 1, 2, 3")
        frame = pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])
    conn.commit()
    return frame.astype({name: float for name in FEATURE_NAMES})


def query_all(conn, statement: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(statement)
        result = cur.fetchall()
    conn.commit()
    return result
