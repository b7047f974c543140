"""Serving views against the NYSE calendar (computed in Python by mfs.calendar), and the SQL of
the SQL reference (docs/sql.md), run as mfs_reader exactly as a user would paste it."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.engine import make_url

from mfs import aggregates, calendar, provisioning
from mfs.market import NY
from mfs.storage.connection import connect
from mfs.storage.sessions import sync_sessions
from tests.aggregates.aggregate_helpers import execute, make_bars, query, write_bars, write_features


@pytest.fixture
def settled_clock() -> None:
    """The views read the server's now(), the test reads Python's: if the newest expected bar
    (hourly or daily) is about to change, wait until it has, so both see the same one."""
    margin = pd.Timedelta(seconds=10)  # far longer than a test here takes
    now = pd.Timestamp.now(tz="UTC")
    for interval in ("1h", "1d"):
        if calendar.latest_expected_bar(now, interval) != calendar.latest_expected_bar(now + margin, interval):
            time.sleep(margin.total_seconds())
            return


def _recent_bars(symbol: str, sessions_back: int, skip: int | None = None, end_back: int = 0, seed: int = 0):
    now = pd.Timestamp.now(tz="UTC")
    days = calendar.sessions(now - pd.Timedelta(days=90), now)
    days = days[days.map(lambda d: calendar.session_bounds(d)[0] <= now)]  # sessions that have opened
    start, end = days[-sessions_back], days[-1 - end_back]
    bars = make_bars(symbol, start, end, seed=seed)
    bars = bars[bars["ts"] <= now]
    if skip is not None:
        day = days[-skip]
        bars = bars[pd.DatetimeIndex(bars["ts"]).tz_convert(NY).normalize().tz_localize(None) != day]
    return bars.reset_index(drop=True), days


def test_freshness_and_missing_sessions_follow_the_calendar(agg_db, settled_clock) -> None:
    sync_sessions()
    aapl, days = _recent_bars("AAPL", 30, skip=12)
    msft, _ = _recent_bars("MSFT", 30, end_back=3, seed=1)
    write_bars(agg_db, aapl)
    write_bars(agg_db, msft)
    aggregates.refresh()  # as every pipeline run does: days below a continuous aggregate's watermark need it
    now = pd.Timestamp.now(tz="UTC")
    expected = calendar.latest_expected_bar(now, "1h")

    fresh = {
        r[0]: r[1:]
        for r in query(
            agg_db,
            """SELECT symbol, newest_bar, expected_bar, lag, up_to_date
                                                    FROM data_freshness WHERE interval = '1h'""",
        )
    }
    assert fresh["AAPL"] == (aapl["ts"].max(), expected, pd.Timedelta(0), True)
    assert fresh["MSFT"][0] == msft["ts"].max() and fresh["MSFT"][1] == expected
    assert fresh["MSFT"][2] == expected - msft["ts"].max() and fresh["MSFT"][3] is False

    missing = query(agg_db, "SELECT symbol, session_date FROM missing_sessions WHERE interval = '1h' ORDER BY 1, 2")
    assert [r[1] for r in missing if r[0] == "AAPL"] == [days[-12].date()]
    assert [r[1] for r in missing if r[0] == "MSFT"] == [d.date() for d in days[-3:]]


def test_daily_bar_freshness_and_latest_features(agg_db, settled_clock) -> None:
    sync_sessions()
    aapl, _days = _recent_bars("AAPL", 10)
    write_bars(agg_db, aapl)
    write_features(agg_db, aapl)
    daily = aapl.groupby(pd.DatetimeIndex(aapl["ts"]).tz_convert(NY).normalize().tz_localize(None)).agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    )
    daily = daily.assign(symbol="AAPL", interval="1d", ts=[calendar.daily_bar_label(d) for d in daily.index])
    write_bars(agg_db, daily.reset_index(drop=True))
    row = query(
        agg_db,
        "SELECT newest_bar, expected_bar, up_to_date FROM data_freshness WHERE symbol = 'AAPL' AND interval = '1d'",
    )
    label = calendar.latest_expected_bar(pd.Timestamp.now(tz="UTC"), "1d")
    assert row == [(label, label, True)]
    latest = query(agg_db, "SELECT symbol, interval, ts, obv FROM latest_features")
    assert latest == [("AAPL", "1h", aapl["ts"].max(), float(aapl["volume"].sum()))]


def _documented_sql(project_root: Path) -> list[str]:
    text = (project_root / "docs" / "sql.md").read_text()
    return re.findall(r"```sql\n(.*?)```", text, flags=re.S)


def test_documented_queries_run_as_the_reader(agg_db, project_root, monkeypatch) -> None:
    blocks = _documented_sql(project_root)
    assert len(blocks) >= 5, "the SQL reference (docs/sql.md) lost its examples"
    sync_sessions()
    for i, symbol in enumerate(("AAPL", "MSFT", "NVDA")):
        bars, _ = _recent_bars(symbol, 30, seed=i)
        write_bars(agg_db, bars)
        write_features(agg_db, bars)
    aggregates.refresh()
    # what the quality checks record (the data-quality queries read it)
    execute(
        agg_db,
        """INSERT INTO anomalies (symbol, interval, ts, kind, severity, held, detail)
           VALUES ('AAPL', '1h', now() - interval '1 day', 'spike', 'warning', true, 'close 10x both neighbours'),
                  ('MSFT', '1d', now() - interval '2 days', 'level_shift', 'warning', false, 'close 30 percent below');
           INSERT INTO corporate_actions (symbol, kind, ex_date, value, source, known_from)
           VALUES ('AAPL', 'split', '2026-10-20', 4, 'test', '2026-10-21'),
                  ('MSFT', 'dividend', '2026-10-15', 0.83, 'test', '2026-10-16')""",
    )
    # what feature monitoring records (the monitoring queries read it): statistics, a drift
    # verdict, an audit, and AAPL's last days served partial before their complete values
    execute(
        agg_db,
        """INSERT INTO feature_stats (interval, scope, feature, symbols, rows, nulls, null_fraction, mean, p50)
           VALUES ('1h', 'cross_section', 'rsi_14', 3, 3, 0, 0, 51.5, 50.2);
           INSERT INTO feature_drift_checks (interval, symbol_group, feature, recent_from, recent_to, reference_from,
                                             reference_to, recent_values, reference_values, psi, threshold, status)
           VALUES ('1h', 'all', 'rsi_14', current_date - 7, current_date, current_date - 90, current_date - 8,
                   105, 1260, 0.31, 2.0, 'ok');
           INSERT INTO feature_audits (seconds, symbols, intervals, columns, rows_compared, values_compared,
                                       tolerance, worst_rel_diff, worst, mismatching_rows, passed)
           VALUES (0.4, '{AAPL}', '{1h}', '{rsi_14}', 210, 210, 1e-9, 3e-14, '{"symbol": "AAPL", "feature": "rsi_14"}',
                   0, true);
           UPDATE features SET bar_ingested_at = coalesce(closes_at, bar_closes_at(interval, ts))
           WHERE symbol = 'AAPL' AND interval = '1h' AND ts > now() - interval '5 days';
           INSERT INTO features_revisions
           SELECT now(), 'bar_revised', NULL, f.* FROM features f
           WHERE symbol = 'AAPL' AND interval = '1h' AND ts > now() - interval '5 days';
           UPDATE features_revisions SET bar_ingested_at = bar_ingested_at - interval '30 minutes',
                  computed_at = computed_at - interval '2 hours', rsi_14 = rsi_14 + 1
           WHERE symbol = 'AAPL' AND interval = '1h' AND bar_ingested_at IS NOT NULL""",
    )
    password = secrets.token_urlsafe(16)
    monkeypatch.setenv("MFS_READER_PASSWORD", password)
    provisioning.sync_role_passwords(agg_db)
    reader = connect(
        make_url(agg_db).set(username="mfs_reader", password=password).render_as_string(hide_password=False),
        autocommit=True,
    )
    try:
        with reader.cursor() as cur:
            for block in blocks:
                cur.execute(block)
                assert cur.fetchall(), f"documented query returned nothing on recent data:\n{block}"
    finally:
        reader.close()


@pytest.mark.parametrize("days", [None, 3650])
def test_retention_keeps_recent_and_aggregated_history(agg_db, days, config_env) -> None:
    config_env(MFS_AGGREGATES__RETENTION_DAYS="null")  # None: retention not configured
    write_bars(agg_db, make_bars("AAPL", "2024-03-04", "2024-03-08"))
    aggregates.refresh()
    recent, _ = _recent_bars("AAPL", 3)
    write_bars(agg_db, recent)
    aggregates.refresh()
    before = query(agg_db, "SELECT count(*) FROM ohlcv_1d")
    result = aggregates.retention(retention_days=days)
    old = query(agg_db, "SELECT count(*) FROM market_data WHERE ts < '2025-01-01'")[0][0]
    if days is None:
        assert result["dropped"] == {} and old == 35
    else:
        # 2024 is within ten years: nothing dropped; with a window shorter than the data, old chunks go.
        assert old == 35
        result = aggregates.retention(retention_days=100)
        assert len(result["dropped"]["market_data"]) >= 1
        assert query(agg_db, "SELECT count(*) FROM market_data WHERE ts < '2025-01-01'") == [(0,)]
        assert query(agg_db, "SELECT count(*) FROM market_data") == [(len(recent),)]
    assert query(agg_db, "SELECT count(*) FROM ohlcv_1d") == before  # the aggregates keep their history


def test_retention_gives_way_to_a_query_reading_old_chunks(agg_db, config_env) -> None:
    write_bars(agg_db, make_bars("AAPL", "2024-03-04", "2024-03-08"))
    recent, _ = _recent_bars("AAPL", 3)
    write_bars(agg_db, recent)
    config_env(MFS_AGGREGATES__RETENTION_LOCK_TIMEOUT_S="0.3")
    reader = connect(agg_db)  # a long analytical query, still open on 2024's chunk
    pool = ThreadPoolExecutor(1)  # a retention that waited for the lock must fail this test, not hang it
    try:
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM market_data WHERE ts < '2025-01-01'")
        result = pool.submit(aggregates.retention, retention_days=100).result(timeout=20)
        assert "market_data" in result["skipped"] and "market_data" not in result["dropped"]
        assert query(agg_db, "SELECT count(*) FROM market_data WHERE ts < '2025-01-01'") == [(35,)]
    finally:
        reader.rollback()  # releases a retention still waiting, so the pool can shut down
        reader.close()
        pool.shutdown()
        config_env.undo()
    result = aggregates.retention(retention_days=100)  # the next run, the query gone
    assert result["skipped"] == {} and len(result["dropped"]["market_data"]) >= 1
    assert query(agg_db, "SELECT count(*) FROM market_data") == [(len(recent),)]


def _sessions_as_of(url: str, clock: str | None) -> tuple[list[tuple], list[tuple]]:
    conn = connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:
            if clock:  # the store's clock (mfs_now), as the tests' synthetic market pins it
                cur.execute("SELECT set_config('mfs.clock', %s, false)", (clock,))
            cur.execute("SELECT session_date, bar_count, partial FROM ohlcv_1d WHERE symbol = 'AAPL' ORDER BY day")
            daily = cur.fetchall()
            cur.execute("SELECT week_start, bar_count, partial FROM ohlcv_1w WHERE symbol = 'AAPL' ORDER BY week")
            return daily, cur.fetchall()
    finally:
        conn.close()


def test_daily_and_weekly_rows_name_their_session_and_say_whether_final(agg_db) -> None:
    """session_date is the New York date (day stays its midnight in UTC); a row is partial while
    its session runs, or when every bar of it was fetched before the close and never since."""
    sync_sessions()
    write_bars(agg_db, make_bars("AAPL", "2024-03-04", "2024-03-08"))  # Monday to Friday, 7 bars each
    # Wednesday's bars last fetched at 15:40 New York: its 15:30 bar was stored partial.
    execute(agg_db, "UPDATE market_data SET ingested_at = '2024-03-06 20:40Z' WHERE ts::date = '2024-03-06'")
    aggregates.refresh()
    days = [dt.date(2024, 3, d) for d in range(4, 9)]

    daily, weekly = _sessions_as_of(agg_db, None)  # now: every session is over
    assert daily == [(day, 7, day == dt.date(2024, 3, 6)) for day in days]
    assert weekly == [(dt.date(2024, 3, 4), 35, True)]  # Wednesday is not final

    daily, weekly = _sessions_as_of(agg_db, "2024-03-08 17:00Z")  # Friday 12:00 New York
    assert [d[2] for d in daily] == [False, False, True, False, True]
    assert weekly == [(dt.date(2024, 3, 4), 35, True)]

    execute(agg_db, "UPDATE market_data SET ingested_at = '2024-03-06 22:00Z' WHERE ts::date = '2024-03-06'")
    aggregates.refresh()  # refetched after the close: final
    daily, weekly = _sessions_as_of(agg_db, None)
    assert [d[2] for d in daily] == [False] * 5 and weekly == [(dt.date(2024, 3, 4), 35, False)]
