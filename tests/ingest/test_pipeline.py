"""Acceptance: collect/backfill through the real yfinance code, the offline Yahoo and the real
database (issue 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfs.cli.main import main
from mfs.errors import RunFailedError, ValidationError
from mfs.ingest import backfill, collect
from mfs.market import NY
from mfs.sources.synthetic import synthetic_bars

ASOF = pd.Timestamp("2025-11-28 16:10", tz="UTC")  # day after Thanksgiving, a half day, 11:10 NY
CHECKSUM = """SELECT md5(string_agg(m::text, '|' ORDER BY symbol, interval, ts)) FROM market_data m"""


def rows(conn, interval: str, symbol: str | None = None) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(
            """SELECT symbol, ts, open, high, low, close, adj_close, volume, source, ingested_at
                       FROM market_data WHERE interval = %s AND (%s IS NULL OR symbol = %s)
                       ORDER BY symbol, ts""",
            (interval, symbol, symbol),
        )
        cols = [d[0] for d in cur.description]
        frame = pd.DataFrame(cur.fetchall(), columns=cols)
    conn.commit()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def scalar(conn, query: str, *args):
    with conn.cursor() as cur:
        cur.execute(query, args)
        value = cur.fetchone()[0]
    conn.commit()
    return value


def result(report, symbol: str, interval: str = "1h"):
    return next(r for r in report.results if r.symbol == symbol and r.stage == f"collect_{interval}")


@pytest.mark.parametrize("interval", ["1h", "1d"])
def test_two_symbols_land_as_yahoo_serves_them(conn, fake_yahoo, interval):
    report = collect(["AAPL", "MSFT"], interval, days=14, session=fake_yahoo(asof=ASOF))
    assert [r.status for r in report.results] == ["ok", "ok"]
    stored = rows(conn, interval)
    for symbol in ("AAPL", "MSFT"):
        mine = stored[stored["symbol"] == symbol].reset_index(drop=True)
        expected = synthetic_bars(symbol, interval, mine["ts"].min(), ASOF, asof=ASOF)
        assert len(mine) == len(expected) == result(report, symbol, interval).inserted > 0
        assert list(mine["ts"]) == list(expected["ts"])
        for col in ("open", "high", "low", "close", "volume"):
            np.testing.assert_allclose(mine[col].astype(float), expected[col].astype(float))
        if interval == "1h":
            assert mine["adj_close"].isna().all()
        else:
            np.testing.assert_allclose(mine["adj_close"].astype(float), expected["adj_close"])
            assert (mine["ts"].dt.tz_convert(NY).dt.strftime("%H:%M") == "00:00").all()
    assert set(stored["source"]) == {"synthetic"}
    assert scalar(conn, "SELECT count(*) FROM symbols WHERE symbol IN ('AAPL', 'MSFT')") == 2
    assert scalar(conn, "SELECT status FROM pipeline_runs WHERE run_id = %s", report.run_id) == "completed"
    # hourly and daily never mix
    other = "1d" if interval == "1h" else "1h"
    assert scalar(conn, "SELECT count(*) FROM market_data WHERE interval = %s", other) == 0


def test_hourly_bars_around_dst_and_half_days(conn, fake_yahoo):
    collect(["JPM"], "1h", days=10, session=fake_yahoo(asof="2025-11-05 22:00Z"))  # DST ended Nov 2
    collect(["JPM"], "1h", days=3, session=fake_yahoo(asof=ASOF))
    with conn.cursor() as cur:
        cur.execute("""SELECT (ts AT TIME ZONE 'America/New_York')::date AS day, count(*),
                              min(ts), array_agg(DISTINCT to_char(ts AT TIME ZONE 'America/New_York', 'MI'))
                       FROM market_data WHERE symbol = 'JPM' AND interval = '1h' GROUP BY 1 ORDER BY 1""")
        days = {str(d): (n, first, minutes) for d, n, first, minutes in cur.fetchall()}
    conn.commit()
    assert days["2025-10-31"][:2] == (7, pd.Timestamp("2025-10-31 13:30", tz="UTC"))  # EDT: 09:30 = 13:30Z
    assert days["2025-11-03"][:2] == (7, pd.Timestamp("2025-11-03 14:30", tz="UTC"))  # EST: 09:30 = 14:30Z
    assert days["2025-11-26"][0] == 7
    assert "2025-11-27" not in days  # Thanksgiving
    assert days["2025-11-28"][0] == 2  # 09:30 done, 10:30 partial at 11:10 NY
    assert all(minutes == ["30"] for _n, _f, minutes in days.values())
    collect(["JPM"], "1h", days=3, session=fake_yahoo(asof="2025-11-28 23:00Z"))
    assert (
        scalar(
            conn,
            """SELECT count(*) FROM market_data WHERE symbol = 'JPM' AND interval = '1h'
                           AND (ts AT TIME ZONE 'America/New_York')::date = '2025-11-28'""",
        )
        == 4
    )


def test_rerun_changes_nothing_and_next_run_finishes_the_partial_bar(conn, fake_yahoo):
    first = collect(["AAPL", "XOM"], "1h", days=7, session=fake_yahoo(asof=ASOF))
    before = scalar(conn, CHECKSUM)
    again = collect(["AAPL", "XOM"], "1h", days=7, session=fake_yahoo(asof=ASOF))
    assert scalar(conn, CHECKSUM) == before
    assert sum(r.inserted + r.updated for r in again.results) == 0
    assert sum(r.fetched for r in again.results) == sum(r.inserted for r in first.results)

    partial = rows(conn, "1h", "AAPL").iloc[-1]
    later = collect(["AAPL", "XOM"], "1h", days=7, session=fake_yahoo(asof="2025-11-28 17:45Z"))
    # at 12:45 NY: 10:30 finished (updated), 11:30 final and 12:30 partial (inserted)
    assert [(r.inserted, r.updated) for r in later.results] == [(2, 1), (2, 1)]
    now = rows(conn, "1h", "AAPL").set_index("ts")
    final = now.loc[partial["ts"]]
    assert final["volume"] > partial["volume"]
    assert final["ingested_at"] >= partial["ingested_at"]  # touched (this machine's clock is coarse)
    expected = synthetic_bars(
        "AAPL", "1h", partial["ts"], partial["ts"] + pd.Timedelta(hours=1), asof="2025-11-28 23:00Z"
    )
    assert final["close"] == expected["close"].iloc[0]  # the 10:30 bar is final by 12:45 NY
    untouched = now[now.index < partial["ts"]]
    assert (untouched["ingested_at"] <= partial["ingested_at"]).all()


def test_unknown_symbol_fails_alone_and_the_command_exits_non_zero(conn, fake_yahoo, monkeypatch, capsys):
    report = collect(["AAPL", "ZZZZQ", "MSFT"], "1d", days=10, session=fake_yahoo(asof=ASOF), raise_on_failure=False)
    bad = result(report, "ZZZZQ", "1d")
    assert bad.status == "failed" and "No data found, symbol may be delisted" in bad.reason
    assert {r.symbol for r in report.results if r.status == "ok"} == {"AAPL", "MSFT"}
    assert scalar(conn, "SELECT count(DISTINCT symbol) FROM market_data") == 2
    assert scalar(conn, "SELECT status FROM pipeline_runs WHERE run_id = %s", report.run_id) == "failed"
    assert "delisted" in scalar(
        conn, "SELECT reason FROM symbol_runs WHERE run_id = %s AND symbol = 'ZZZZQ'", report.run_id
    )
    with pytest.raises(RunFailedError, match="ZZZZQ"):
        collect(["AAPL", "ZZZZQ"], "1d", days=10, session=fake_yahoo(asof=ASOF))

    monkeypatch.setenv("MFS_SYNTHETIC_ASOF", ASOF.isoformat())
    code = main(["collect", "--offline", "--symbols", "JNJ,ZZZZQ", "--interval", "1d", "--days", "5"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "JNJ" in out and "ZZZZQ" in out and "delisted" in out
    assert "1 symbol(s) failed" in err
    assert scalar(conn, "SELECT count(*) FROM market_data WHERE symbol = 'JNJ'") > 0


def test_rate_limit_then_success_is_retried_and_stored(conn, fake_yahoo):
    session = fake_yahoo(asof=ASOF, faults={"AAPL": "rate_limit:3"})
    report = collect(["AAPL", "MSFT"], "1d", days=10, session=session)
    assert result(report, "AAPL", "1d").status == "ok"
    assert session.synthetic_yahoo.chart_requests["AAPL"] >= 4  # three 429s, then an answer
    assert (
        scalar(conn, "SELECT count(*) FROM market_data WHERE symbol = 'AAPL'")
        == result(report, "AAPL", "1d").inserted
        > 0
    )


def test_every_request_waits_for_the_run_s_budget_and_the_report_counts_them(conn, fake_yahoo, config_env):
    config_env(MFS_INGEST__REQUESTS_PER_S="50")
    session = fake_yahoo(asof=ASOF, faults={"AAPL": "rate_limit:3"})
    slots = []
    report = collect(["AAPL", "MSFT"], "1d", days=10, session=session, request_slot=lambda: slots.append(1))
    requests = report.extra["yahoo_requests"]
    # Every attempt waited for a slot; all but the two that answered were refused with a 429
    # (three 429s in all: yfinance's timezone lookup of an uncached symbol is a request too).
    assert len(slots) == requests["requests"] == requests["rate_limited"] + 2 >= 3
    assert requests["budget_per_s"] == 50 and requests["first_request_at"] <= requests["last_request_at"]
    unbudgeted = collect(["MSFT"], "1d", days=10, session=fake_yahoo(asof=ASOF))
    assert unbudgeted.extra["yahoo_requests"]["budget_per_s"] is None


def test_permanent_rate_limit_fails_after_bounded_attempts(conn, fake_yahoo, config_env):
    config_env(MFS_INGEST__MAX_ATTEMPTS="3")
    session = fake_yahoo(asof=ASOF, faults={"MSFT": "rate_limit"})
    report = collect(["AAPL", "MSFT"], "1d", days=10, session=session, raise_on_failure=False)
    failed = result(report, "MSFT", "1d")
    assert failed.status == "failed"
    assert "429" in failed.reason and "after 3 attempts" in failed.reason
    assert session.synthetic_yahoo.chart_requests["MSFT"] == 6  # 3 attempts × (request + yfinance's own retry)
    assert result(report, "AAPL", "1d").status == "ok"


def test_damaged_responses_are_retried_then_fail_clearly(conn, fake_yahoo, config_env):
    config_env(MFS_INGEST__MAX_ATTEMPTS="2")
    session = fake_yahoo(asof=ASOF, faults={"PEP": "malformed", "KO": "truncated", "V": "timeout:1", "MA": "empty"})
    report = collect(["PEP", "KO", "V", "MA"], "1d", days=10, session=session, raise_on_failure=False)
    status = {r.symbol: (r.status, r.reason or "") for r in report.results}
    assert status["V"][0] == "ok"
    assert status["PEP"][0] == status["KO"][0] == "failed"
    assert "malformed" in status["PEP"][1] and "after 2 attempts" in status["PEP"][1]
    assert status["MA"][0] == "failed" and "no price data" in status["MA"][1]


def test_bad_bars_are_quarantined_and_the_good_ones_stored(conn, fake_yahoo):
    report = collect(["AAPL", "MSFT"], "1h", days=10, session=fake_yahoo(asof=ASOF, faults={"AAPL": "bad_bars"}))
    aapl = result(report, "AAPL")
    assert aapl.status == "ok"
    assert aapl.quarantine_reasons == {
        "not_finite": 1,
        "non_positive": 1,
        "range": 1,
        "bad_volume": 1,
        "outside_session": 1,
    }
    # The ×10 bar is a bar (plausible on its own), but its neighbours agree with each other: it is
    # held back as an anomaly, not quarantined.
    assert aapl.quarantined == 5 and aapl.inserted == aapl.fetched - 6
    assert report.counts().quarantine_reasons["range"] == 1
    assert report.extra["anomalies"]["by_kind"] == {"power_of_ten": 1}
    assert report.extra["anomalies"]["held_back"] == 1
    with conn.cursor() as cur:
        cur.execute("SELECT reason, raw, run_id, source, interval FROM quarantine WHERE symbol = 'AAPL'")
        quarantined = cur.fetchall()
    conn.commit()
    assert len(quarantined) == 5
    assert all(run == report.run_id and src == "synthetic" and iv == "1h" for _r, _raw, run, src, iv in quarantined)
    raw = next(raw for reason, raw, *_ in quarantined if reason.startswith("bad_volume"))
    assert raw["volume"] == -100
    assert scalar(conn, "SELECT count(*) FROM market_data WHERE symbol = 'AAPL'") == aapl.inserted
    assert result(report, "MSFT").quarantined == 0


def test_backfill_loads_both_intervals_and_caps_hourly_history(conn, fake_yahoo):
    report = backfill(["AAPL"], days=800, session=fake_yahoo(asof=ASOF))
    assert report.flow == "backfill" and not report.failed
    assert any("730" in note for note in report.notes)
    oldest = {iv: scalar(conn, "SELECT min(ts) FROM market_data WHERE interval = %s", iv) for iv in ("1h", "1d")}
    assert ASOF - oldest["1h"] <= pd.Timedelta(days=730)
    assert ASOF - oldest["1d"] > pd.Timedelta(days=790)
    # daily bars agree with the hourly bars of the same session, in the database
    mismatches = scalar(
        conn,
        """
        WITH h AS (SELECT symbol, (ts AT TIME ZONE 'America/New_York')::date AS day,
                          first(open, ts) o, max(high) hi, min(low) lo, last(close, ts) c, sum(volume) v
                   FROM market_data WHERE interval = '1h' GROUP BY 1, 2)
        SELECT count(*) FROM h JOIN market_data d ON d.symbol = h.symbol AND d.interval = '1d'
               AND (d.ts AT TIME ZONE 'America/New_York')::date = h.day
        WHERE (d.open, d.high, d.low, d.close, d.volume) IS DISTINCT FROM (h.o, h.hi, h.lo, h.c, h.v)""",
    )
    assert mismatches == 0
    with pytest.raises(ValidationError, match="730 days"):
        collect(["AAPL"], "1h", days=800, session=fake_yahoo(asof=ASOF))


def test_offline_backfill_command_end_to_end(conn, fake_yahoo, config_env, capsys):
    config_env(MFS_SYNTHETIC_ASOF=ASOF.isoformat(), MFS_SYMBOLS="AAPL,BRK-B")
    assert main(["backfill", "--offline", "--days", "30"]) == 0
    out = capsys.readouterr().out
    assert "backfill: 4 ok, 0 failed" in out
    assert scalar(conn, "SELECT count(DISTINCT (symbol, interval)) FROM market_data") == 4


def test_a_window_without_sessions_is_not_a_failure(conn, fake_yahoo):
    # Sunday noon, one day back: Saturday and Sunday only — Yahoo has no bars and none are due.
    report = collect(
        ["AAPL", "ZZZZQ"], "1h", days=1, session=fake_yahoo(asof="2025-11-30 17:00Z"), raise_on_failure=False
    )
    assert result(report, "AAPL").status == "ok" and result(report, "AAPL").fetched == 0
    assert result(report, "ZZZZQ").status == "failed"  # an unknown symbol is still unknown
    assert scalar(conn, "SELECT count(*) FROM market_data") == 0
