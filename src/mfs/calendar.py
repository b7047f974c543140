"""The NYSE calendar (exchange_calendars' XNYS): sessions, half days, hourly bar labels.

Yahoo labels hourly bars by their start: 09:30, 10:30 … 15:30 New York time on a full session
(7 bars), 09:30 … 12:30 on a 13:00 half day (4 bars). All functions return UTC timestamps; the
New York wall clock is used only to reason about sessions.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeAlias

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from mfs.market import HALF_DAY_SESSION_BELOW, NY

CALENDAR_START = "2000-01-01"  # real recorded test data (bokeh_sampledata) starts in 2000

# A moment or a day as callers hold it: whatever pd.Timestamp() takes (a Timestamp, datetime, date,
# ISO string, epoch ns). pandas ships no types, so to mypy this is Any; the name is for the reader.
TimeLike: TypeAlias = Any


@lru_cache(maxsize=1)
def nyse() -> xcals.ExchangeCalendar:
    return xcals.get_calendar("XNYS", start=CALENDAR_START)


def _day(value: TimeLike) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(NY).tz_localize(None)
    return ts.normalize()


def sessions(start: TimeLike, end: TimeLike) -> pd.DatetimeIndex:
    """Session dates (naive, New York calendar days) from ``start`` to ``end`` inclusive."""
    cal = nyse()
    lo = max(_day(start), cal.first_session)
    hi = min(_day(end), cal.last_session)
    if lo > hi:
        return pd.DatetimeIndex([])
    return cal.sessions_in_range(lo, hi)


def is_session(day: TimeLike) -> bool:
    return bool(nyse().is_session(_day(day)))


def session_bounds(day: TimeLike) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(open, close) of the session on ``day``, in UTC."""
    cal = nyse()
    d = _day(day)
    return cal.session_open(d), cal.session_close(d)


def is_half_day(day: TimeLike) -> bool:
    open_, close = session_bounds(day)
    return (close - open_) < HALF_DAY_SESSION_BELOW


def hourly_bar_starts(start: TimeLike, end: TimeLike) -> pd.DatetimeIndex:
    """UTC start times of every Yahoo hourly bar of the sessions from ``start`` to ``end``."""
    days = sessions(start, end)
    if len(days) == 0:
        return pd.DatetimeIndex([], tz="UTC")
    cal = nyse()
    sched = cal.schedule.loc[days]
    opens = pd.DatetimeIndex(sched["open"]).tz_convert("UTC").as_unit("ns").asi8
    closes = pd.DatetimeIndex(sched["close"]).tz_convert("UTC").as_unit("ns").asi8
    hour = 3_600_000_000_000
    counts = -((opens - closes) // hour)  # ceil((close - open) / 1h)
    starts = np.repeat(opens, counts) + np.concatenate([np.arange(c) for c in counts]) * hour
    return pd.DatetimeIndex(starts.astype("datetime64[ns]")).tz_localize("UTC")


def daily_bar_label(day: TimeLike) -> pd.Timestamp:
    """A daily bar's timestamp: the session date's New York midnight, in UTC."""
    return _day(day).tz_localize(NY).tz_convert("UTC")


def latest_expected_bar(now: TimeLike, interval: str) -> pd.Timestamp | None:
    """The newest bar that should exist at ``now`` (Yahoo serves the current bar partially)."""
    now = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
    recent = sessions(now - pd.Timedelta(days=10), now)
    for day in reversed(recent):
        open_, _close = session_bounds(day)
        if open_ > now:
            continue
        if interval == "1d":
            return daily_bar_label(day)
        bars = hourly_bar_starts(day, day)
        return bars[bars <= now][-1]
    return None


def market_gate(now: TimeLike) -> tuple[bool, str]:
    """Whether an hourly scheduled run at ``now`` has anything to do, and why not.

    Runs on session days from before the open until one hour after the close (the last bar's
    final values arrive then); on holidays, weekends and late on half days: market closed.
    """
    now_utc = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
    day = _day(now_utc)
    if not is_session(day):
        return False, f"market closed: {day.date()} is not an NYSE session"
    _open, close = session_bounds(day)
    if now_utc > close + pd.Timedelta(hours=1):
        return False, f"market closed: the {day.date()} session closed at {close.tz_convert(NY):%H:%M} New York time"
    return True, "market open"


def bar_closes(interval: str, ts: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """When each bar labelled ``ts`` (UTC) was over: an hourly bar one hour after its start but
    never after its session's close (the 15:30 bar at 16:00, a half day's 12:30 bar at 13:00), a
    daily bar at its session's close. A bar outside every session (never stored: validation
    rejects it) gets ``ts`` + 1 h, or 16:00 New York for a daily label."""
    ts = pd.DatetimeIndex(ts).tz_convert("UTC")
    if len(ts) == 0:
        return ts
    days = ts.tz_convert(NY).tz_localize(None).normalize()
    codes, unique_days = pd.factorize(days)
    closes = nyse().schedule["close"].reindex(pd.DatetimeIndex(unique_days))
    four_pm = pd.DatetimeIndex(unique_days) + pd.Timedelta(hours=16)
    fallback = four_pm.tz_localize(NY, ambiguous="NaT").tz_convert("UTC")
    day_close = pd.DatetimeIndex(closes).tz_convert("UTC").where(closes.notna().to_numpy(), fallback)
    session_close = pd.DatetimeIndex(day_close[codes]).rename(None)
    if interval == "1d":
        return session_close
    in_session = closes.notna().to_numpy()[codes]
    hour_later = ts + pd.Timedelta(hours=1)
    return hour_later.where(~in_session | (hour_later <= session_close), session_close)
