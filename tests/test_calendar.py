"""NYSE calendar facts checked against published exchange schedules (golden dates)."""

from __future__ import annotations

import pandas as pd

from mfs import calendar


def test_holidays_and_half_days() -> None:
    assert not calendar.is_session("2024-07-04")  # Independence Day
    assert not calendar.is_session("2024-11-28")  # Thanksgiving
    assert calendar.is_half_day("2024-11-29")  # day after Thanksgiving closes 13:00
    assert calendar.is_half_day("2024-07-03")
    assert not calendar.is_half_day("2024-07-05")


def test_hourly_bars_full_half_and_dst() -> None:
    full = calendar.hourly_bar_starts("2024-03-08", "2024-03-08")  # Friday before DST starts (EST)
    assert len(full) == 7 and full[0] == pd.Timestamp("2024-03-08 14:30", tz="UTC")
    after = calendar.hourly_bar_starts("2024-03-11", "2024-03-11")  # Monday after (EDT)
    assert after[0] == pd.Timestamp("2024-03-11 13:30", tz="UTC")
    ny = after.tz_convert("America/New_York")
    assert list(ny.strftime("%H:%M")) == ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
    half = calendar.hourly_bar_starts("2024-11-29", "2024-11-29")
    assert list(half.tz_convert("America/New_York").strftime("%H:%M")) == ["09:30", "10:30", "11:30", "12:30"]
    week = calendar.hourly_bar_starts("2024-11-25", "2024-11-29")  # Thanksgiving week: 4 sessions
    assert len(week) == 7 * 3 + 4


def test_daily_label_and_latest_expected() -> None:
    assert calendar.daily_bar_label("2024-03-11") == pd.Timestamp("2024-03-11 04:00", tz="UTC")
    sat = pd.Timestamp("2024-03-09 12:00", tz="UTC")
    assert calendar.latest_expected_bar(sat, "1h") == pd.Timestamp("2024-03-08 20:30", tz="UTC")
    assert calendar.latest_expected_bar(sat, "1d") == pd.Timestamp("2024-03-08 05:00", tz="UTC")


def test_market_gate() -> None:
    assert calendar.market_gate(pd.Timestamp("2024-07-04 10:00", tz="America/New_York"))[0] is False
    assert calendar.market_gate(pd.Timestamp("2024-07-05 09:00", tz="America/New_York"))[0] is True
    assert calendar.market_gate(pd.Timestamp("2024-07-05 16:00", tz="America/New_York"))[0] is True
    ok, why = calendar.market_gate(pd.Timestamp("2024-11-29 15:00", tz="America/New_York"))
    assert not ok and "13:00" in why
