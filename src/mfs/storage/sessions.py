"""``market_sessions``: the NYSE calendar as a table, because SQL cannot call exchange_calendars.

The DDL is in ``sql/030_market_sessions.sql``; the rows come from ``mfs.calendar`` here, written
through the one write path (``mfs.storage.bulk.upsert``), so re-syncing an unchanged calendar
rewrites nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mfs import calendar
from mfs.market import HALF_DAY_SESSION_BELOW, NY
from mfs.storage import bulk, copy_binary
from mfs.storage.connection import connection

COLUMNS = [
    copy_binary.Column("day_start", "timestamptz"),
    copy_binary.Column("day_end", "timestamptz"),
    copy_binary.Column("open_utc", "timestamptz"),
    copy_binary.Column("close_utc", "timestamptz"),
    copy_binary.Column("half_day", "bool"),
]


def session_rows(
    start: calendar.TimeLike = calendar.CALENDAR_START, end: calendar.TimeLike | None = None
) -> dict[str, object]:
    """Every session from ``start`` to ``end`` (default: as far as the calendar knows)."""
    cal = calendar.nyse()
    days = calendar.sessions(start, end if end is not None else cal.last_session)
    sched = cal.schedule.loc[days]
    opens = pd.DatetimeIndex(sched["open"]).tz_convert("UTC")
    closes = pd.DatetimeIndex(sched["close"]).tz_convert("UTC")
    starts = days.tz_localize(NY).tz_convert("UTC")
    ends = (days + pd.Timedelta(days=1)).tz_localize(NY).tz_convert("UTC")
    return {
        "day_start": starts,
        "day_end": ends,
        "open_utc": opens,
        "close_utc": closes,
        "half_day": np.asarray((closes - opens) < HALF_DAY_SESSION_BELOW),
    }


def sync_sessions(url: str | None = None) -> bulk.UpsertCounts:
    """Upsert every NYSE session the calendar knows (2000 to about a year ahead) into the table."""
    with connection(url) as conn, conn.cursor() as cur:
        return bulk.upsert(cur, "market_sessions", COLUMNS, session_rows(), key=["day_start"])
