"""The synthetic market: deterministic, NYSE sessions only, hourly bars consistent with daily."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mfs.calendar import daily_bar_label, hourly_bar_starts, sessions
from mfs.market import NY
from mfs.sources.synthetic import synthetic_bars, synthetic_market

ASOF = pd.Timestamp("2025-12-31 23:00", tz="UTC")


def ny_times(ts: pd.Series) -> pd.Series:
    return pd.DatetimeIndex(ts).tz_convert(NY).strftime("%H:%M").to_series(index=ts.index)


def test_same_symbol_same_bars_whatever_the_window():
    wide = synthetic_bars("AAPL", "1h", "2025-01-01", "2025-12-01", asof=ASOF)
    narrow = synthetic_bars("AAPL", "1h", "2025-06-02", "2025-06-10", asof=ASOF)
    again = synthetic_bars("AAPL", "1h", "2025-06-02", "2025-06-10", asof=ASOF)
    pd.testing.assert_frame_equal(narrow, again)
    sliced = wide[(wide["ts"] >= "2025-06-02") & (wide["ts"] < "2025-06-10")].reset_index(drop=True)
    pd.testing.assert_frame_equal(narrow, sliced)
    other = synthetic_bars("MSFT", "1h", "2025-06-02", "2025-06-10", asof=ASOF)
    assert not np.allclose(other["close"], narrow["close"])


def test_bars_only_in_sessions_at_half_past_new_york_time():
    bars = synthetic_bars("JPM", "1h", "2025-11-20", "2025-12-02", asof=ASOF)
    expected = hourly_bar_starts("2025-11-20", "2025-12-01")
    assert list(bars["ts"]) == list(expected)
    assert set(ny_times(bars["ts"])) <= {"09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"}
    per_day = bars.groupby(pd.DatetimeIndex(bars["ts"]).tz_convert(NY).date).size()
    assert per_day[pd.Timestamp("2025-11-26").date()] == 7
    assert per_day[pd.Timestamp("2025-11-28").date()] == 4  # day after Thanksgiving: 13:00 close
    assert pd.Timestamp("2025-11-27").date() not in per_day.index  # Thanksgiving


def test_dst_change_moves_utc_not_new_york_time():
    bars = synthetic_bars("XOM", "1h", "2025-10-31", "2025-11-04", asof=ASOF)
    first = bars.groupby(pd.DatetimeIndex(bars["ts"]).tz_convert(NY).date)["ts"].min()
    assert first.iloc[0] == pd.Timestamp("2025-10-31 13:30", tz="UTC")  # EDT
    assert first.iloc[1] == pd.Timestamp("2025-11-03 14:30", tz="UTC")  # EST


def test_hourly_bars_aggregate_into_daily_bars():
    hourly = synthetic_bars("NVDA", "1h", "2025-01-01", "2025-12-31", asof=ASOF)
    daily = synthetic_bars("NVDA", "1d", "2025-01-01", "2025-12-31", asof=ASOF)
    day = pd.DatetimeIndex(hourly["ts"]).tz_convert(NY).tz_localize(None).normalize()
    agg = hourly.groupby(day).agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    )
    assert list(daily["ts"]) == [daily_bar_label(d) for d in agg.index]
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(daily[col].to_numpy(), agg[col].to_numpy())
    assert len(daily) == len(sessions("2025-01-01", "2025-12-30")) == 249  # end is exclusive


def test_bars_are_plausible():
    bars = synthetic_market(["AAPL", "BRK-B", "SPY"], "1d", "2024-01-01", "2025-12-31", asof=ASOF)
    assert (bars[["open", "high", "low", "close", "adj_close"]] > 0).all().all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert bars["volume"].dtype == np.int64 and (bars["volume"] > 0).all()
    assert (bars["adj_close"] <= bars["close"]).all()  # dividends only ever adjust downwards
    moves = bars.groupby("symbol")["close"].pct_change().abs()
    assert moves.max() < 0.25


def test_asof_cuts_and_the_partial_bar_becomes_final():
    early = synthetic_bars("AAPL", "1h", "2025-11-26", "2025-11-27", asof="2025-11-26 15:10Z")
    late = synthetic_bars("AAPL", "1h", "2025-11-26", "2025-11-27", asof="2025-11-26 23:00Z")
    assert list(early["ts"]) == [pd.Timestamp("2025-11-26 14:30", tz="UTC")]
    partial, final = early.iloc[0], late.iloc[0]
    assert partial["open"] == final["open"]
    assert partial["volume"] < final["volume"]
    assert len(late) == 7
    day_early = synthetic_bars("AAPL", "1d", "2025-11-26", "2025-11-27", asof="2025-11-26 15:10Z")
    assert day_early["close"].iloc[0] == partial["close"]
    assert day_early["volume"].iloc[0] == partial["volume"]
