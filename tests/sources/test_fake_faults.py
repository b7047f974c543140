"""The offline Yahoo's events and bar faults (mfs.sources.fake_faults), read through the real
yfinance code with ``history(actions=True)``: dividends and splits land on the bar of their
session, and each fault kind shapes the bars as documented."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yfinance as yf

from mfs.calendar import daily_bar_label
from mfs.errors import ConfigError
from mfs.sources.fake_yahoo import faults_from_environment, parse_faults
from mfs.sources.synthetic import synthetic_dividends
from mfs.sources.yahoo import clear_request_cache, configure_yfinance

PRICES = ["Open", "High", "Low", "Close", "Adj Close"]
BARS = [*PRICES, "Volume"]
DAY = pd.Timestamp("2025-11-24")  # a Monday; New York is UTC-5
DAY_1D = daily_bar_label(DAY)
DAY_OPEN = pd.Timestamp("2025-11-24 14:30Z")
AFTER = "2025-11-25 20:00Z"  # the day after DAY, 15:00 New York


def history(fake_yahoo, symbol, interval, asof, faults=None, start="2025-11-19") -> pd.DataFrame:
    """yfinance's frame, indexed by our bar labels (UTC: hourly starts, daily New York midnights).
    No ``end``: yfinance then asks up to now and never answers from its response cache."""
    configure_yfinance()
    clear_request_cache()
    ticker = yf.Ticker(symbol, session=fake_yahoo(asof=asof, faults=faults))
    frame = ticker.history(start=start, interval=interval, actions=True, auto_adjust=False, repair=False, prepost=False)
    frame.index = pd.DatetimeIndex(frame.index).tz_convert("UTC")
    return frame


def events(frame: pd.DataFrame, column: str) -> dict[pd.Timestamp, float]:
    return {ts: float(v) for ts, v in frame[column].items() if v != 0}


def assert_valid_ranges(frame: pd.DataFrame) -> None:
    assert (frame["Low"] <= frame[["Open", "Close"]].min(axis=1)).all()
    assert (frame[["Open", "Close"]].max(axis=1) <= frame["High"]).all()


@pytest.mark.parametrize(
    ("interval", "bar"), [("1d", daily_bar_label("2025-09-25")), ("1h", pd.Timestamp("2025-09-25 13:30Z"))]
)
def test_the_synthetic_dividends_are_events_on_the_ex_date_bar(fake_yahoo, interval, bar):
    """KO goes ex-dividend on 2025-09-25: the event is on that session's bar (09:30 for 1h) with
    the amount synthetic_dividends lists, and only once the session has opened."""
    asof = "2025-09-26 20:00Z"
    frame = history(fake_yahoo, "KO", interval, asof, start="2025-09-23")
    expected = synthetic_dividends("KO", "2025-09-23", asof, asof)
    assert list(expected["ts"]) == [daily_bar_label("2025-09-25")]
    assert events(frame, "Dividends") == {bar: expected["amount"].iloc[0]}
    assert events(frame, "Stock Splits") == {}
    before_open = history(fake_yahoo, "KO", interval, "2025-09-25 13:00Z", start="2025-09-23")
    assert events(before_open, "Dividends") == {}


def test_the_synthetic_dividends_reproduce_the_adj_close_steps(fake_yahoo):
    """Yahoo's factor 1 - amount / previous close is the step of adj_close / close at each
    ex-date; a symbol without dividends has neither events nor steps."""
    asof = "2025-12-31 22:00Z"
    frame = history(fake_yahoo, "KO", "1d", asof, start="2025-01-01")
    paid = events(frame, "Dividends")
    assert len(paid) == 4
    ratio = frame["Adj Close"] / frame["Close"]
    for ts, amount in paid.items():
        i = frame.index.get_loc(ts)
        step = ratio.iloc[i - 1] / ratio.iloc[i]
        np.testing.assert_allclose(step, 1 - amount / frame["Close"].iloc[i - 1], rtol=1e-6)
    # Under a split the amounts follow the prices, as Yahoo's split-adjusted amounts do.
    split = history(fake_yahoo, "KO", "1d", asof, {"KO": "split:2025-10-20:2"}, start="2025-01-01")
    halved = events(split, "Dividends")
    assert list(halved) == list(paid)
    np.testing.assert_allclose(list(halved.values()), np.array(list(paid.values())) / 2, atol=1e-4)
    assert synthetic_dividends("AAPL", "2025-01-01", asof, asof).empty
    plain = history(fake_yahoo, "AAPL", "1d", asof, start="2025-12-01")
    assert events(plain, "Dividends") == {} and (plain["Adj Close"] == plain["Close"]).all()


@pytest.mark.parametrize("ratio", [4.0, 1.5])
def test_a_split_is_an_event_on_the_split_day_bar_once_it_opened(fake_yahoo, ratio):
    faults = {"PEP": f"split:2025-11-24:{ratio:g}"}
    for interval, bar in (("1d", DAY_1D), ("1h", DAY_OPEN)):
        frame = history(fake_yahoo, "PEP", interval, AFTER, faults)
        assert events(frame, "Stock Splits") == {bar: ratio}
        early = history(fake_yahoo, "PEP", interval, "2025-11-24 14:00Z", faults)  # 09:00: adjusted, no event
        assert events(early, "Stock Splits") == {}


def test_a_dividend_fault_is_served_and_adjusts_the_earlier_adj_closes(fake_yahoo):
    """Two dividends: each an event on its session's bar (1d and 1h); daily adj_close before
    each ex-date × (1 - amount / the previous close); prices and later bars as before."""
    faults = {"AAPL": ["dividend:2025-11-24:0.5", "dividend:2025-11-20:0.25"]}
    plain = history(fake_yahoo, "AAPL", "1d", AFTER, start="2025-11-17")
    paid = history(fake_yahoo, "AAPL", "1d", AFTER, faults, start="2025-11-17")
    assert events(paid, "Dividends") == {DAY_1D: 0.5, daily_bar_label("2025-11-20"): 0.25}
    unadjusted = ["Open", "High", "Low", "Close", "Volume"]
    pd.testing.assert_frame_equal(paid[unadjusted], plain[unadjusted])
    close = plain["Close"]
    factor = pd.Series(1.0, index=plain.index)
    factor[plain.index < daily_bar_label("2025-11-20")] *= 1 - 0.25 / close[daily_bar_label("2025-11-19")]
    factor[plain.index < DAY_1D] *= 1 - 0.5 / close[daily_bar_label("2025-11-21")]
    np.testing.assert_allclose(paid["Adj Close"], np.round(plain["Adj Close"] * factor, 4), atol=1e-4)
    assert (paid["Adj Close"] == plain["Adj Close"])[plain.index >= DAY_1D].all()
    hourly = history(fake_yahoo, "AAPL", "1h", AFTER, faults)
    assert events(hourly, "Dividends") == {DAY_OPEN: 0.5, pd.Timestamp("2025-11-20 14:30Z"): 0.25}
    # The previous close comes from the provider: a window starting on the ex-date agrees.
    late = history(fake_yahoo, "AAPL", "1d", AFTER, faults, start="2025-11-21")
    pd.testing.assert_series_equal(late["Adj Close"], paid["Adj Close"][late.index])


@pytest.mark.parametrize("interval", ["1h", "1d"])
def test_a_level_shift_moves_every_bar_from_its_day_on(fake_yahoo, interval):
    plain = history(fake_yahoo, "AAPL", interval, AFTER)
    shifted = history(fake_yahoo, "AAPL", interval, AFTER, {"AAPL": "level_shift:2025-11-24:1.1"})
    later = plain.index >= (DAY_1D if interval == "1d" else DAY_OPEN)
    assert later.any() and not later.all()
    pd.testing.assert_frame_equal(shifted[~later], plain[~later])
    prices = PRICES if interval == "1d" else PRICES[:4]
    np.testing.assert_allclose(shifted.loc[later, prices], plain.loc[later, prices] * 1.1, atol=1e-4)
    assert (shifted["Volume"] == plain["Volume"]).all()
    assert_valid_ranges(shifted)


@pytest.mark.parametrize("interval", ["1h", "1d"])
def test_a_volatility_regime_multiplies_log_moves_from_its_day_on(fake_yahoo, interval):
    plain = history(fake_yahoo, "AAPL", interval, AFTER)
    wild = history(fake_yahoo, "AAPL", interval, AFTER, {"AAPL": "volatility:2025-11-24:5"})
    later = plain.index >= (DAY_1D if interval == "1d" else DAY_OPEN)
    assert later.any() and not later.all()
    pd.testing.assert_frame_equal(wild[~later], plain[~later])
    anchor = history(fake_yahoo, "AAPL", "1d", AFTER).loc[daily_bar_label("2025-11-21"), "Close"]
    for price in PRICES[:4]:  # every price's log-distance from the previous session's close, × 5
        np.testing.assert_allclose(
            np.log(wild.loc[later, price] / anchor), 5 * np.log(plain.loc[later, price] / anchor), atol=1e-4
        )
    assert (wild["Volume"] == plain["Volume"]).all()
    assert_valid_ranges(wild)


def test_a_spike_is_served_like_a_correction_of_its_bar(fake_yahoo):
    items = ["2025-11-24T15:30Z:1.2", "2025-11-21:0.8"]
    for interval in ("1h", "1d"):
        spiked = history(fake_yahoo, "AAPL", interval, AFTER, {"AAPL": [f"spike:{i}" for i in items]})
        corrected = history(fake_yahoo, "AAPL", interval, AFTER, {"AAPL": [f"correct:{i}" for i in items]})
        pd.testing.assert_frame_equal(spiked, corrected)
        plain = history(fake_yahoo, "AAPL", interval, AFTER)
        bar = pd.Timestamp("2025-11-24 15:30Z") if interval == "1h" else daily_bar_label("2025-11-21")
        factor = 1.2 if interval == "1h" else 0.8
        np.testing.assert_allclose(spiked.loc[bar, "Close"], plain.loc[bar, "Close"] * factor, atol=1e-4)
        pd.testing.assert_frame_equal(spiked.drop(bar), plain.drop(bar))


@pytest.mark.parametrize("interval", ["1h", "1d"])
def test_an_unadjusted_split_is_readjusted_after_the_nth_bar(fake_yahoo, interval):
    """N = 2: the 10:00 and 11:00 runs see the split day's bars adjusted and the earlier ones not;
    the 12:00 run (past the 11:30 bar's start) sees the series exactly as ``split:`` serves it."""
    late = {"PEP": "unadjusted_split:2025-11-24:4:2"}
    for hour, readjusted in ((10, False), (11, False), (12, True)):
        asof = pd.Timestamp(f"2025-11-24 {hour + 5}:00Z")
        served = history(fake_yahoo, "PEP", interval, asof, late)
        split = history(fake_yahoo, "PEP", interval, asof, {"PEP": "split:2025-11-24:4"})
        plain = history(fake_yahoo, "PEP", interval, asof)
        assert events(served, "Stock Splits") == {DAY_1D if interval == "1d" else DAY_OPEN: 4.0}
        today = served.index >= DAY_1D
        pd.testing.assert_frame_equal(served.loc[today, BARS], split.loc[today, BARS])
        earlier = split if readjusted else plain
        pd.testing.assert_frame_equal(served.loc[~today, BARS], earlier.loc[~today, BARS])
    assert not np.allclose(plain.loc[~today, "Close"], split.loc[~today, "Close"])


@pytest.mark.parametrize("interval", ["1h", "1d"])
def test_a_phantom_split_scales_only_the_bars_before_its_day(fake_yahoo, interval):
    faults = {"AAPL": "phantom_split:2025-11-24:2"}
    plain = history(fake_yahoo, "AAPL", interval, AFTER)
    phantom = history(fake_yahoo, "AAPL", interval, AFTER, faults)
    assert events(phantom, "Stock Splits") == {DAY_1D if interval == "1d" else DAY_OPEN: 2.0}
    before = plain.index < DAY_1D
    prices = PRICES if interval == "1d" else PRICES[:4]
    np.testing.assert_allclose(phantom.loc[before, prices], np.round(plain.loc[before, prices] / 2, 4))
    assert (phantom.loc[before, "Volume"] == plain.loc[before, "Volume"] * 2).all()
    pd.testing.assert_frame_equal(phantom.loc[~before, BARS], plain.loc[~before, BARS])
    early = history(fake_yahoo, "AAPL", interval, "2025-11-24 14:00Z", faults)  # before its open: nothing yet
    pd.testing.assert_frame_equal(early, history(fake_yahoo, "AAPL", interval, "2025-11-24 14:00Z"))


def test_a_stale_run_repeats_the_previous_close_without_volume(fake_yahoo):
    """Three hourly bars from 14:30 New York freeze at the 13:30 bar's close, across the night;
    a window that starts inside the run serves the same; the daily bars are untouched."""
    faults = {"AAPL": "stale:2025-11-24T19:30Z:3"}
    plain = history(fake_yahoo, "AAPL", "1h", AFTER)
    stale = history(fake_yahoo, "AAPL", "1h", AFTER, faults)
    frozen = pd.DatetimeIndex(["2025-11-24 19:30Z", "2025-11-24 20:30Z", "2025-11-25 14:30Z"])
    before = plain.loc[pd.Timestamp("2025-11-24 18:30Z"), "Close"]
    assert (stale.loc[frozen, ["Open", "High", "Low", "Close"]] == before).all().all()
    assert (stale.loc[frozen, "Volume"] == 0).all()
    pd.testing.assert_frame_equal(stale.drop(frozen), plain.drop(frozen))
    inside = history(fake_yahoo, "AAPL", "1h", AFTER, faults, start="2025-11-25")
    pd.testing.assert_frame_equal(inside, stale.loc[inside.index])
    daily = history(fake_yahoo, "AAPL", "1d", AFTER, faults)
    pd.testing.assert_frame_equal(daily, history(fake_yahoo, "AAPL", "1d", AFTER))


def test_daily_off_moves_the_daily_bar_and_not_its_hours(fake_yahoo):
    faults = {"AAPL": "daily_off:2025-11-24:1.05"}
    plain = history(fake_yahoo, "AAPL", "1d", AFTER)
    off = history(fake_yahoo, "AAPL", "1d", AFTER, faults)
    np.testing.assert_allclose(off.loc[DAY_1D, PRICES].astype(float), plain.loc[DAY_1D, PRICES] * 1.05, atol=1e-4)
    pd.testing.assert_frame_equal(off.drop(DAY_1D), plain.drop(DAY_1D))
    assert_valid_ranges(off)
    pd.testing.assert_frame_equal(
        history(fake_yahoo, "AAPL", "1h", AFTER, faults), history(fake_yahoo, "AAPL", "1h", AFTER)
    )


def test_a_missing_bar_is_a_gap(fake_yahoo):
    faults = {"AAPL": ["missing:2025-11-24T15:30Z", "missing:2025-11-21"]}
    for interval, gone in (("1h", pd.Timestamp("2025-11-24 15:30Z")), ("1d", daily_bar_label("2025-11-21"))):
        plain = history(fake_yahoo, "AAPL", interval, AFTER)
        gapped = history(fake_yahoo, "AAPL", interval, AFTER, faults)
        assert gone in plain.index and gone not in gapped.index
        pd.testing.assert_frame_equal(gapped, plain.drop(gone))


def test_the_new_kinds_parse():
    parsed = parse_faults(
        {
            "ko": [
                "dividend:2025-11-24:0.5",
                "dividend:2025-11-20:0.25",
                "level_shift:2025-11-24:1.1",
                "spike:2025-11-24T15:30Z:1.2",
                "unadjusted_split:2025-11-24:4:2",
                "phantom_split:2025-11-24:2",
                "stale:2025-11-24T19:30Z:3",
                "daily_off:2025-11-24:1.05",
                "missing:2025-11-21",
            ]
        }
    )
    assert parsed == {
        "KO": {
            "dividend": ((DAY, 0.5), (pd.Timestamp("2025-11-20"), 0.25)),
            "level_shift": ((DAY, 1.1),),
            "spike": ((pd.Timestamp("2025-11-24 15:30Z"), 1.2),),
            "unadjusted_split": (DAY, 4.0, 2),
            "phantom_split": (DAY, 2.0),
            "stale": ((pd.Timestamp("2025-11-24 19:30Z"), 3),),
            "daily_off": ((DAY, 1.05),),
            "missing": (daily_bar_label("2025-11-21"),),
        }
    }


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("dividend:2025-11-24", "expected dividend:YYYY-MM-DD:AMOUNT"),
        ("dividend:24/11/2025:1", "expected dividend:YYYY-MM-DD:AMOUNT"),
        ("dividend:2025-11-24:-1", "the dividend amount must be > 0"),
        ("dividend:2025-11-22:1", "2025-11-22 is not an NYSE session"),
        ("level_shift:2025-11-24:0", "the level shift factor must be > 0"),
        ("level_shift:2025-11-24:x", "expected level_shift:YYYY-MM-DD:FACTOR"),
        ("spike:2025-11-24T15:30Z", "expected spike:ISO_TIMESTAMP:FACTOR"),
        ("spike:2025-11-24T15:30Z:0", "the spike factor must be > 0"),
        ("unadjusted_split:2025-11-24:4", "expected unadjusted_split:YYYY-MM-DD:RATIO:N"),
        ("unadjusted_split:2025-11-28:4:4", "2025-11-28 has 4 hourly bars: N = 0 … 3"),
        ("phantom_split:2025-11-24:x", "expected phantom_split:YYYY-MM-DD:RATIO"),
        ("stale:2025-11-24:2", "stale takes the start of an hourly bar"),
        ("stale:2025-11-24T15:00Z:2", "stale takes the start of an hourly bar"),
        ("stale:2025-11-24T15:30Z:0", "expected stale:ISO_TIMESTAMP:N"),
        ("daily_off:2025-11-24", "expected daily_off:YYYY-MM-DD:FACTOR"),
        ("missing:", "expected missing:ISO_TIMESTAMP"),
        ("missing:tuesday", "expected missing:ISO_TIMESTAMP"),
    ],
)
def test_a_malformed_item_is_refused_in_one_line(item, says):
    with pytest.raises(ValueError) as refused:
        parse_faults({"KO": [item]})
    message = str(refused.value)
    assert message.startswith(f"fault {item!r} for KO: ") and says in message and "\n" not in message


def test_a_malformed_new_kind_from_the_shell_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv("MFS_SYNTHETIC_FAULTS", json.dumps({"KO": ["dividend:2025-11-24:0.5", "stale:2025-11-24:2"]}))
    with pytest.raises(
        ConfigError, match=r"^MFS_SYNTHETIC_FAULTS: fault 'stale:2025-11-24:2' for KO: stale takes"
    ) as e:
        faults_from_environment()
    assert "\n" not in str(e.value)
