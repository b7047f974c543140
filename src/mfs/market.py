"""Market vocabulary, defined once: the bar intervals, the bar columns, the exchange's zone, the
NYSE session rule for half days, and Yahoo's limits. Everything else imports these names. (No
pandas here: the configuration imports this module, and every verb loads the configuration.)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, get_args

Interval = Literal["1h", "1d"]
# Hourly bars are labelled by their start (09:30 … 15:30 New York); daily bars by the session
# date's New York midnight. The two never mix: the interval is part of every key.
INTERVALS: tuple[Interval, ...] = get_args(Interval)

# Every market concept (sessions, bar labels, trading days, hour of day) is New York time; every
# stored timestamp is UTC.
NY = "America/New_York"

PRICE_COLUMNS = ("open", "high", "low", "close")
# A bar as sources deliver it and ingest stores it; adj_close is NaN/NULL for hourly bars
# (Yahoo sends no adjusted close for intraday).
BAR_COLUMNS = ("ts", *PRICE_COLUMNS, "adj_close", "volume")

# A session shorter than this is a half day (NYSE closes at 13:00 on them: 4 hourly bars, not 7).
HALF_DAY_SESSION_BELOW = timedelta(hours=6)

# Yahoo serves hourly bars for the last 730 days only; a day of margin for the clock.
YAHOO_HOURLY_DAYS = 730
MAX_HOURLY_DAYS = YAHOO_HOURLY_DAYS - 1


def check_interval(interval: str) -> Interval:
    """``interval`` if it is one of INTERVALS; ValueError naming the allowed ones otherwise."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    return interval
