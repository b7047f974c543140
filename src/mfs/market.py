"""Market vocabulary, defined once: the bar intervals, the bar columns, the exchange's zone, the
NYSE session rule for half days, and Yahoo's limits — and the checks of an interval, a symbol
and a date, each raising its one error type wherever it is called. Everything else imports these names. (No
pandas here: the configuration imports this module, and every verb loads the configuration.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from mfs.errors import DateError, IntervalError, SymbolError

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


def check_interval(interval: object) -> Interval:
    """``interval`` if it is one of INTERVALS; IntervalError naming the allowed ones otherwise."""
    if interval not in INTERVALS:
        raise IntervalError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    return interval


# Yahoo spells US share classes with a dash (BRK-B), indices with a caret (^GSPC) and some
# instruments with '=' (EURUSD=X) or '.' (BF.B on other feeds). Anything else — spaces, quotes,
# semicolons — is refused before it can reach a URL or a SQL statement.
SYMBOL_RE = re.compile(r"^\^?[A-Z0-9][A-Z0-9.\-=]{0,14}$")


def normalize_symbol(raw: object, *, key: str = "symbol") -> str:
    """The upper-cased symbol; SymbolError naming ``key`` and the value otherwise."""
    if not isinstance(raw, str):
        raise SymbolError(f"{key} = {raw!r}: a symbol must be a string")
    symbol = raw.strip().upper()
    if not SYMBOL_RE.fullmatch(symbol):
        raise SymbolError(
            f"{key} = {raw!r}: not a valid ticker (letters, digits, '.', '-', '=' and a leading '^';"
            " at most 15 characters)"
        )
    return symbol


def normalize_symbols(raw: Iterable[object] | str, *, key: str = "symbols") -> list[str]:
    """A list (or comma-separated string) of symbols checked; order kept, duplicates dropped."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    seen: dict[str, None] = {}
    for i, item in enumerate(items):
        if isinstance(item, str) and not item.strip():
            continue
        seen.setdefault(normalize_symbol(item, key=f"{key}[{i}]"), None)
    if not seen:
        raise SymbolError(f"{key} = {raw!r}: at least one symbol is required")
    return list(seen)


def parse_moment(value: object, *, key: str) -> datetime:
    """A date or timestamp as an aware UTC datetime; DateError naming ``key`` otherwise. A bare date
    or a naive time is New York's (a market concept: "the session of 2026-12-07")."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise DateError(
                f"{key} = {value!r}: not a date or timestamp (e.g. 2026-12-07 or 2026-12-07T14:30Z)"
            ) from None
    else:
        raise DateError(f"{key} = {value!r}: not a date or timestamp")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(NY))
    return moment.astimezone(UTC)
