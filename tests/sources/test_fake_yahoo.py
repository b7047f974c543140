"""The offline Yahoo, read through the real yfinance code: the synthetic market, and real
recorded daily bars (bokeh_sampledata's public-domain Quandl WIKI prices: AAPL, GOOG, IBM, MSFT,
2000-01-03 … 2013-03-01) served through the same adapter."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
import requests

from mfs.calendar import daily_bar_label
from mfs.errors import ConfigError, RateLimitedError, SymbolNotFoundError
from mfs.market import NY
from mfs.sources.fake_yahoo import SyntheticYahoo, _mount, faults_from_environment, parse_faults
from mfs.sources.synthetic import synthetic_bars
from mfs.sources.yahoo import TransientSourceError, fetch_history

ASOF = pd.Timestamp("2025-11-28 16:00", tz="UTC")
START = pd.Timestamp("2025-11-20", tz="America/New_York")
RECORDED_SYMBOLS = ("AAPL", "GOOG", "IBM", "MSFT")


@lru_cache(maxsize=1)
def recorded_bars() -> pd.DataFrame:
    """All recorded daily bars: symbol, ts (daily_bar_label), open … adj_close, volume."""
    from bokeh_sampledata.stocks import data

    frame = data[data["ticker"].isin(RECORDED_SYMBOLS)].copy()
    frame["ts"] = pd.DatetimeIndex([daily_bar_label(d) for d in pd.to_datetime(frame["date"])])
    frame["volume"] = frame["volume"].astype(np.int64)
    frame = frame.rename(columns={"ticker": "symbol"})
    return frame[["symbol", "ts", "open", "high", "low", "close", "adj_close", "volume"]].reset_index(drop=True)


def recorded_provider(symbol, interval, start, end, asof):
    """A SyntheticYahoo provider: the recorded daily bars; hourly requests get none."""
    if symbol not in RECORDED_SYMBOLS:
        return None
    bars = recorded_bars()
    if interval != "1d":
        return bars.iloc[0:0].drop(columns="symbol")
    day_start = start.tz_convert(NY).normalize().tz_convert("UTC")
    mask = (bars["symbol"] == symbol) & (bars["ts"] >= day_start) & (bars["ts"] < end) & (bars["ts"] <= asof)
    return bars.loc[mask].drop(columns="symbol").reset_index(drop=True)


def recorded_session(asof="2013-03-01 21:00Z", faults=None) -> requests.Session:
    """The offline Yahoo serving the recorded bars instead of synthetic ones; other symbols are
    unknown."""
    return _mount(
        SyntheticYahoo(
            asof=asof, faults=faults, provider=recorded_provider, universe=RECORDED_SYMBOLS, source_name="recorded"
        )
    )


@pytest.mark.parametrize("interval", ["1h", "1d"])
def test_yfinance_parses_the_synthetic_market(fake_yahoo, interval):
    bars = fetch_history("AAPL", interval, START, session=fake_yahoo(asof=ASOF))
    expected = synthetic_bars("AAPL", interval, START, ASOF, asof=ASOF)
    assert list(bars["ts"]) == list(expected["ts"])
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(bars[col].to_numpy(float), expected[col].to_numpy(float))
    if interval == "1h":
        assert bars["adj_close"].isna().all()  # Yahoo sends none for intraday
    else:
        np.testing.assert_allclose(bars["adj_close"], expected["adj_close"])


def test_unknown_symbol_gets_yahoos_reason(fake_yahoo):
    with pytest.raises(SymbolNotFoundError, match="No data found, symbol may be delisted"):
        fetch_history("ZZZZQ", "1d", START, session=fake_yahoo(asof=ASOF))


def test_faults_reach_yfinance_as_typed_errors(fake_yahoo):
    session = fake_yahoo(asof=ASOF, faults={"KO": "rate_limit", "PEP": "malformed", "V": "truncated", "MA": "timeout"})
    with pytest.raises(RateLimitedError, match="429"):
        fetch_history("KO", "1d", START, session=session)
    for symbol in ("PEP", "V"):
        with pytest.raises(TransientSourceError, match="malformed"):
            fetch_history(symbol, "1d", START, session=session)
    with pytest.raises(TransientSourceError, match="Timeout"):
        fetch_history("MA", "1d", START, session=session)


def test_fault_spec_is_checked():
    assert parse_faults({"aapl": ["rate_limit:2", "bad_bars:nan"]}) == {"AAPL": {"rate_limit": 2, "bad_bars": ("nan",)}}
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults({"AAPL": "explode"})
    with pytest.raises(ValueError, match="unknown bad-bar kinds"):
        parse_faults({"AAPL": "bad_bars:purple"})


def test_recorded_daily_bars_come_through_unchanged(_yfinance_cache_dir):
    from mfs.sources.yahoo import clear_request_cache

    clear_request_cache()
    bars = fetch_history("IBM", "1d", pd.Timestamp("2012-01-01", tz="America/New_York"), session=recorded_session())
    source = recorded_bars()
    source = source[(source["symbol"] == "IBM") & (source["ts"] >= bars["ts"].iloc[0])]
    assert len(bars) == len(source) > 250
    np.testing.assert_allclose(bars["close"], source["close"])
    np.testing.assert_allclose(bars["adj_close"], source["adj_close"])
    assert (bars["volume"].to_numpy() == source["volume"].to_numpy()).all()


def test_faults_and_events_can_be_set_from_the_shell(db):
    """MFS_SYNTHETIC_FAULTS drives `mfs collect --offline`: the delisted symbol fails with Yahoo's
    reason, the others are stored; a value that does not parse is one line naming the variable."""
    from tests.reliability.reliability_helpers import error_lines, mfs_env, run_mfs

    drill = run_mfs(
        mfs_env(db, MFS_SYNTHETIC_FAULTS='{"KO": "delisted"}'),
        "collect",
        "--offline",
        "--symbols",
        "KO,PEP",
        "--interval",
        "1d",
        "--days",
        "5",
    )
    assert drill.returncode == 1
    assert "KO\tcollect_1d\tfailed" in drill.stdout and "symbol may be delisted (HTTP 404)" in drill.stdout
    assert "PEP\tcollect_1d\tok" in drill.stdout
    for bad, says in (
        ("{not json", "MFS_SYNTHETIC_FAULTS is not JSON"),
        ('{"KO": "meteor"}', "MFS_SYNTHETIC_FAULTS: "),
        ('["KO"]', "MFS_SYNTHETIC_FAULTS must map symbols"),
    ):
        refused = run_mfs(mfs_env(db, MFS_SYNTHETIC_FAULTS=bad), "collect", "--offline", "--symbols", "KO")
        assert refused.returncode == 2, refused.stderr
        assert len(error_lines(refused.stderr)) == 1 and says in refused.stderr and "Traceback" not in refused.stderr


def test_a_corrected_bar_is_served_scaled_while_the_event_lasts(fake_yahoo, monkeypatch):
    """``correct:TS:F``: the bar labelled TS (exactly, per interval) comes through yfinance with its
    prices times F and a valid range; every other bar, the volume and the other interval are as
    before. Set from the shell (MFS_SYNTHETIC_FAULTS), it parses the same way."""
    hour, day = pd.Timestamp("2025-11-25 15:30Z"), daily_bar_label("2025-11-24")
    faults = {"AAPL": [f"correct:{hour.isoformat()}:1.01", "correct:2025-11-24:0.5"]}
    plain = {i: fetch_history("AAPL", i, START, session=fake_yahoo(asof=ASOF)) for i in ("1h", "1d")}
    monkeypatch.setenv("MFS_SYNTHETIC_FAULTS", json.dumps(faults))
    fixed = {i: fetch_history("AAPL", i, START, session=fake_yahoo(asof=ASOF)) for i in ("1h", "1d")}
    for interval, label, factor in (("1h", hour, 1.01), ("1d", day, 0.5)):
        before, after = plain[interval].set_index("ts"), fixed[interval].set_index("ts")
        assert list(before.index) == list(after.index) and label in before.index
        others = before.index != label
        pd.testing.assert_frame_equal(after[others], before[others])
        prices = ["open", "high", "low", "close"] + (["adj_close"] if interval == "1d" else [])
        np.testing.assert_allclose(
            after.loc[label, prices].astype(float), before.loc[label, prices] * factor, rtol=1e-6
        )
        assert after.loc[label, "volume"] == before.loc[label, "volume"]
        bar = after.loc[label]
        assert bar["low"] <= min(bar["open"], bar["close"]) <= max(bar["open"], bar["close"]) <= bar["high"]
    assert hour not in set(pd.DatetimeIndex(plain["1d"]["ts"]))  # daily labels are NY midnights: not matched


def test_a_correction_spec_is_checked():
    parsed = parse_faults({"ko": ["correct:2026-11-20T15:30Z:1.01", "correct:2026-11-20:2"]})
    assert parsed == {
        "KO": {"correct": ((pd.Timestamp("2026-11-20 15:30Z"), 1.01), (daily_bar_label("2026-11-20"), 2.0))}
    }
    for bad, says in (
        ("correct:1.01", "expected correct:ISO_TIMESTAMP:FACTOR"),
        ("correct:tuesday:1.01", "expected correct:ISO_TIMESTAMP:FACTOR"),
        ("correct:2026-11-20T15:30Z:x", "expected correct:ISO_TIMESTAMP:FACTOR"),
        ("correct:2026-11-20T15:30Z:-1", "factor must be > 0"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_faults({"KO": bad})


def test_a_bad_correction_from_the_shell_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv("MFS_SYNTHETIC_FAULTS", '{"KO": "correct:2026-11-20T15:30Z"}')
    with pytest.raises(ConfigError, match=r"^MFS_SYNTHETIC_FAULTS: fault 'correct:2026-11-20T15:30Z' for KO: expected"):
        faults_from_environment()
