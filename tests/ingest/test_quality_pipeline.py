"""Market-aware data quality end to end: the offline Yahoo serves real-world defects and events
through the real yfinance code; the store keeps every real bar, holds back only on evidence,
re-examines what it holds, and records actions and anomalies as facts with times."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfs.aggregates import refresh
from mfs.features import compute
from mfs.ingest import backfill, collect
from mfs.sources.synthetic import synthetic_dividends
from mfs.sources.yahoo import fetch_history
from mfs.storage.lifecycle import store_status
from tests.ingest.test_pipeline import rows, scalar

VALUES = ["ts", "open", "high", "low", "close", "adj_close", "volume"]
SHIFT_DAY = "2025-11-12"
BEFORE, AFTER = "2025-11-10 21:10Z", "2025-11-14 21:10Z"  # runs two days before and after it


def anomalies(conn, symbol: str) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(
            """SELECT interval, ts, kind, severity, held, detail, resolved_at, resolution, bar
               FROM anomalies WHERE symbol = %s ORDER BY interval, ts, kind""",
            (symbol,),
        )
        frame = pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])
    conn.commit()
    return frame


def served(session, symbol: str, interval: str, start) -> pd.DataFrame:
    """What the offline Yahoo serves now, through yfinance: what the store must hold."""
    return fetch_history(symbol, interval, pd.Timestamp(start), session=session)[VALUES]


def assert_stored_as_served(conn, session, symbol: str, interval: str) -> None:
    mine = rows(conn, interval, symbol)[VALUES].reset_index(drop=True)
    expected = served(session, symbol, interval, mine["ts"].min())
    assert len(mine) == len(expected) > 0
    pd.testing.assert_frame_equal(
        mine.astype({"volume": "int64"}), expected.astype({"volume": "int64"}), check_exact=True, check_dtype=False
    )


@pytest.mark.parametrize("factor", [0.3, 0.1, 2.5])
@pytest.mark.parametrize("where", ["backfill", "hourly window"])
def test_a_genuine_level_shift_is_stored_whole_with_one_anomaly(conn, fake_yahoo, factor, where):
    faults = {"PEP": f"level_shift:{SHIFT_DAY}:{factor}"}
    if where == "backfill":
        report = backfill(["PEP"], days=30, session=fake_yahoo(asof=AFTER, faults=faults))
    else:
        backfill(["PEP"], days=30, session=fake_yahoo(asof=BEFORE, faults=faults))
        report = collect(["PEP"], session=fake_yahoo(asof=AFTER, faults=faults))
    assert report.extra["status"] == "completed" and not report.failed
    session = fake_yahoo(asof=AFTER, faults=faults)
    found = anomalies(conn, "PEP")
    for interval in ("1h", "1d"):
        assert_stored_as_served(conn, session, "PEP", interval)
        mine = found[found["interval"] == interval]
        assert list(mine["kind"]) == ["level_shift"] and not mine["held"].any()
        assert mine["ts"].iloc[0].tz_convert("America/New_York").date().isoformat() == SHIFT_DAY
    assert scalar(conn, "SELECT count(*) FROM quarantine") == 0
    compute(["PEP"])
    refresh()
    # features and aggregates run across the move
    after = pd.Timestamp(SHIFT_DAY, tz="America/New_York")
    assert scalar(conn, "SELECT count(*) FROM features WHERE symbol = 'PEP' AND ts >= %s", after) == scalar(
        conn, "SELECT count(*) FROM market_data WHERE symbol = 'PEP' AND ts >= %s", after
    )
    daily = scalar(conn, "SELECT max(high) FROM ohlcv_1d WHERE symbol = 'PEP' AND day >= %s", after)
    stored = scalar(
        conn, "SELECT max(high) FROM market_data WHERE symbol = 'PEP' AND interval = '1h' AND ts >= %s", after
    )
    assert daily == stored


@pytest.mark.parametrize("factor", [10.0, 100.0])
def test_a_reverting_spike_is_held_back_and_features_are_not_poisoned(conn, db, fake_yahoo, factor):
    spike = pd.Timestamp("2025-11-12 16:30Z")  # 11:30 New York
    faults = {"KO": f"spike:{spike.isoformat()}:{factor:g}"}
    report = backfill(["KO"], days=30, session=fake_yahoo(asof=AFTER, faults=faults))
    assert report.extra["anomalies"]["held_back"] == 1
    hourly = rows(conn, "1h", "KO").set_index("ts")
    assert spike not in hourly.index
    assert {spike - pd.Timedelta(hours=1), spike + pd.Timedelta(hours=1)} <= set(hourly.index)
    found = anomalies(conn, "KO")
    held = found[found["held"]]
    assert list(held["kind"]) == ["power_of_ten"] and held["ts"].iloc[0] == spike
    assert held["bar"].iloc[0]["close"] == pytest.approx(hourly["close"].median() * factor, rel=0.1)
    assert held["resolved_at"].isna().all()
    compute(["KO"])
    sma = scalar(conn, "SELECT max(sma_20) FROM features WHERE symbol = 'KO' AND interval = '1h'")
    assert sma < hourly["close"].max() * 1.01  # no ×10 price inside any average
    quality = store_status(db)["data_quality"]  # what `mfs status` shows
    assert (quality["open_high"], quality["held_back"]) == (1, 1)


def test_a_spike_on_the_newest_bar_is_served_at_once_then_held_and_retracted(conn, fake_yahoo):
    spike = pd.Timestamp("2025-11-14 15:30Z")  # the 10:30 bar
    faults = {"KO": f"spike:{spike.isoformat()}:10"}
    backfill(["KO"], days=20, session=fake_yahoo(asof="2025-11-14 15:50Z", faults=faults))
    assert spike in set(rows(conn, "1h", "KO")["ts"])  # a live model sees a crash (or a bad tick) at once
    first = anomalies(conn, "KO")
    assert list(first["kind"]) == ["level_shift"] and "not yet confirmed" in first["detail"].iloc[0]

    report = collect(["KO"], "1h", session=fake_yahoo(asof="2025-11-14 17:10Z", faults=faults))

    assert spike not in set(rows(conn, "1h", "KO")["ts"])
    found = anomalies(conn, "KO").set_index("kind")
    assert found.loc["power_of_ten", "held"] and pd.isna(found.loc["power_of_ten", "resolved_at"])
    assert found.loc["level_shift", "resolution"].startswith("retracted")
    assert report.extra["anomalies"]["held_back"] == 1
    reason = scalar(
        conn, "SELECT reason FROM market_data_revisions WHERE symbol = 'KO' AND interval = '1h' AND ts = %s", spike
    )
    assert reason == "held_back"  # what was served at 10:50 stays replayable


def test_an_unadjusted_split_holds_the_new_bars_until_yahoo_readjusts_the_history(conn, fake_yahoo):
    day = "2025-11-12"  # Yahoo re-adjusts the history once the day's 11:30 bar has started
    faults = {"PEP": f"unadjusted_split:{day}:4:2"}
    backfill(["PEP"], days=30, session=fake_yahoo(asof=BEFORE, faults=faults))
    compute(["PEP"])
    split_open = pd.Timestamp(day, tz="America/New_York").tz_convert("UTC")
    for asof in ("2025-11-12 15:05Z", "2025-11-12 16:05Z"):  # 10:05 and 11:05 New York: not yet
        report = collect(["PEP"], session=fake_yahoo(asof=asof, faults=faults))
        compute(["PEP"])
        assert report.extra["status"] == "completed"
        assert scalar(conn, "SELECT count(*) FROM market_data WHERE symbol = 'PEP' AND ts >= %s", split_open) == 0
        assert scalar(conn, "SELECT count(*) FROM features WHERE symbol = 'PEP' AND ts >= %s", split_open) == 0
        held = anomalies(conn, "PEP")
        assert set(held["kind"]) == {"unadjusted_split"} and held["held"].all() and held["resolved_at"].isna().all()
    assert report.extra["anomalies"]["high"] >= 1 or report.extra["anomalies"]["new"] == 0

    final = fake_yahoo(asof="2025-11-12 17:05Z", faults=faults)  # 12:05: the history is re-adjusted
    report = collect(["PEP"], session=final)

    assert any("the 4-for-1 split of 2025-11-12" in note for note in report.notes)
    for interval in ("1h", "1d"):
        assert_stored_as_served(conn, final, "PEP", interval)
    found = anomalies(conn, "PEP")
    assert found["resolved_at"].notna().all() and found["resolution"].str.startswith("cleared").all()
    reasons = scalar(
        conn,
        "SELECT array_agg(DISTINCT reason) FROM market_data_revisions WHERE symbol = 'PEP' AND ts < %s",
        split_open,
    )
    assert reasons == ["readjustment: the 4-for-1 split of 2025-11-12"]
    compute(["PEP"])
    assert scalar(conn, "SELECT count(*) FROM features WHERE symbol = 'PEP' AND ts >= %s", split_open) > 0


def test_a_phantom_split_is_held_and_named_in_the_readjustment(conn, fake_yahoo):
    faults = {"MSFT": "phantom_split:2025-11-12:2"}
    backfill(["MSFT"], days=30, session=fake_yahoo(asof=BEFORE, faults=faults))
    report = collect(["MSFT"], session=fake_yahoo(asof=AFTER, faults=faults))
    found = anomalies(conn, "MSFT")
    assert set(found.loc[found["held"], "kind"]) == {"phantom_split"}
    assert report.extra["anomalies"]["high"] > 0


def test_splits_and_dividends_land_in_corporate_actions_as_known_then(conn, fake_yahoo, config_env):
    faults = {"PEP": ["split:2025-11-12:4", "dividend:2025-11-06:0.5"]}
    config_env(MFS_CLOCK="2025-11-10T21:10:00Z")
    backfill(["PEP"], days=30, session=fake_yahoo(asof=BEFORE, faults=faults))
    config_env(MFS_CLOCK="2025-11-14T21:10:00Z")
    collect(["PEP"], session=fake_yahoo(asof=AFTER, faults=faults))

    def known_at(when: str) -> set:
        with conn.cursor() as cur:
            cur.execute(
                """SELECT kind, ex_date::text, value FROM corporate_actions
                   WHERE symbol = 'PEP' AND known_from <= %s AND %s < known_to""",
                (when, when),
            )
            found = set(cur.fetchall())
        conn.commit()
        return found

    assert known_at("2025-11-11T00:00Z") == {("dividend", "2025-11-06", 0.5)}  # the split was not known yet
    assert known_at("2025-11-15T00:00Z") == {("dividend", "2025-11-06", 0.5), ("split", "2025-11-12", 4.0)}
    # the re-adjustment of the history names the split
    reasons = scalar(conn, "SELECT array_agg(DISTINCT reason) FROM market_data_revisions WHERE symbol = 'PEP'")
    assert "readjustment: the 4-for-1 split of 2025-11-12" in reasons


def test_the_synthetic_markets_own_dividends_are_recorded(conn, fake_yahoo):
    backfill(["KO"], days=200, session=fake_yahoo(asof=AFTER))
    paid = synthetic_dividends("KO", rows(conn, "1d", "KO")["ts"].min(), AFTER, asof=AFTER)
    with conn.cursor() as cur:
        cur.execute("SELECT ex_date::text, value FROM corporate_actions WHERE symbol = 'KO' AND kind = 'dividend'")
        stored = sorted(cur.fetchall())
    conn.commit()
    expected = [
        (str(ts.tz_convert("America/New_York").date()), amount)
        for ts, amount in zip(paid["ts"], paid["amount"], strict=True)
    ]
    assert stored == expected and len(stored) >= 2  # quarterly ex-dates of the synthetic model
    assert anomalies(conn, "KO").empty


def test_cross_checks_through_the_real_parsing(conn, fake_yahoo):
    stale = pd.Timestamp("2025-11-07 15:30Z")
    missing = pd.Timestamp("2025-11-05 17:30Z")
    faults = {
        "AAPL": "daily_off:2025-11-06:1.05",
        "MSFT": f"stale:{stale.isoformat()}:4",
        "NVDA": f"missing:{missing.isoformat()}",
    }
    backfill(["AAPL", "MSFT", "NVDA", "JPM"], days=20, session=fake_yahoo(asof=BEFORE, faults=faults))
    found = {s: anomalies(conn, s) for s in ("AAPL", "MSFT", "NVDA", "JPM")}
    assert list(found["AAPL"]["kind"]) == ["daily_mismatch"] and "outside the daily" in found["AAPL"]["detail"].iloc[0]
    msft = found["MSFT"].set_index("kind")
    assert sorted(msft.index) == ["daily_mismatch", "stale"] and msft.loc["stale", "ts"] == stale
    assert "hourly volume" in msft.loc["daily_mismatch", "detail"]  # frozen hours traded nothing
    assert list(found["NVDA"]["kind"]) == ["gap"] and found["NVDA"]["ts"].iloc[0] == missing
    assert found["JPM"].empty  # the clean series raises none of them

    corrected = {"JPM": "correct:2025-11-10T16:30Z:1.03"}  # Yahoo rewrites a past close by 3%, no action
    collect(["JPM"], "1h", session=fake_yahoo(asof=AFTER, faults=corrected))
    jpm = anomalies(conn, "JPM")
    assert list(jpm["kind"]) == ["unexplained_revision"] and "3.0" in jpm["detail"].iloc[0]


def test_a_clean_run_and_its_rerun_record_nothing(conn, fake_yahoo):
    symbols = ["AAPL", "MSFT", "KO", "XOM", "SPY"]
    backfill(symbols, days=60, session=fake_yahoo(asof=BEFORE))
    report = collect(symbols, session=fake_yahoo(asof=AFTER))
    collect(symbols, session=fake_yahoo(asof=AFTER))
    assert scalar(conn, "SELECT count(*) FROM anomalies") == 0
    assert report.extra.get("anomalies", {}).get("new", 0) == 0
    assert np.isfinite(scalar(conn, "SELECT count(*) FROM corporate_actions"))


def test_a_held_bar_is_re_examined_after_it_leaves_the_window_and_released_when_corrected(conn, fake_yahoo):
    spike = pd.Timestamp("2025-11-05 16:30Z")
    faults = {"KO": f"spike:{spike.isoformat()}:100"}
    backfill(["KO"], days=30, session=fake_yahoo(asof="2025-11-06 21:10Z", faults=faults))
    later = "2025-11-20 21:10Z"  # two weeks on: the spike is far outside the 7-day window
    collect(["KO"], "1h", session=fake_yahoo(asof=later, faults=faults))
    held = anomalies(conn, "KO")
    assert list(held["kind"]) == ["power_of_ten"] and held["resolved_at"].isna().all()  # still held, not forgotten

    report = collect(["KO"], "1h", session=fake_yahoo(asof=later))  # Yahoo has corrected the tick

    released = anomalies(conn, "KO")
    assert released["resolution"].iloc[0].startswith("cleared") and released["resolved_at"].notna().all()
    assert spike in set(rows(conn, "1h", "KO")["ts"])
    assert report.extra["anomalies"]["resolved"] == 1


def test_with_newest_jump_hold_a_crash_waits_one_bar_then_is_stored_as_confirmed(conn, fake_yahoo, config_env):
    config_env(MFS_QUALITY__NEWEST_JUMP="hold")
    faults = {"PEP": f"level_shift:{SHIFT_DAY}:0.3"}
    first_bar = pd.Timestamp(SHIFT_DAY, tz="America/New_York") + pd.Timedelta(hours=9, minutes=30)
    backfill(["PEP"], days=20, session=fake_yahoo(asof=first_bar + pd.Timedelta(minutes=20), faults=faults))
    assert first_bar not in set(rows(conn, "1h", "PEP")["ts"])  # held: nothing confirms it yet

    collect(["PEP"], "1h", session=fake_yahoo(asof=first_bar + pd.Timedelta(minutes=80), faults=faults))

    assert first_bar in set(rows(conn, "1h", "PEP")["ts"])
    hourly = anomalies(conn, "PEP").query("interval == '1h'")
    assert list(hourly["kind"]) == ["level_shift"]
    assert hourly["resolution"].iloc[0].startswith("confirmed")


def test_a_readjustment_no_action_explains_is_rewritten_and_recorded_as_high(conn, fake_yahoo):
    backfill(["IBM"], days=30, session=fake_yahoo(asof=BEFORE))
    # Yahoo now serves the whole history halved, and no split or dividend with it
    halved = {"IBM": "level_shift:2025-01-02:0.5"}
    report = collect(["IBM"], "1h", session=fake_yahoo(asof=AFTER, faults=halved))
    assert any("explained by no split or dividend" in note for note in report.notes)
    found = anomalies(conn, "IBM")
    assert list(found["kind"]) == ["unexplained_readjustment"] and found["severity"].iloc[0] == "high"
    assert report.extra["anomalies"]["high"] == 1
    reasons = scalar(conn, "SELECT array_agg(DISTINCT reason) FROM market_data_revisions WHERE symbol = 'IBM'")
    assert reasons == ["readjustment: unexplained"]
