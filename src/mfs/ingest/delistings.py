"""Delistings, and the ``symbols`` columns that give the universe as of a date (sql/053_universe.sql).

Yahoo has no delisting feed: a delisted ticker just answers "No data found, symbol may be
delisted" (``SymbolNotFoundError``; not ``yahoo.NoBarsError``, an answer without bars in a window).
One such answer may be a Yahoo hiccup, so a symbol the store holds (it has bars: ``listed_on`` is
set) counts one answer per run, whatever the number of intervals asked, in ``not_found_streak``.
While the streak is below ``ingest.delisted_after`` the symbol fails, as any other symbol Yahoo
refuses. At the threshold it is marked delisted as of the New York date of its last stored bar
(``delisted_on``; ``active`` false, history kept) and from then on the same answer is expected:
the symbol is skipped, not failed, so runs stop failing on it. It is still requested every run,
so bars coming back (a re-listing, a ticker Yahoo restored) are noticed: ``record_listings``,
called by the write path, clears the delisting and the streak. An unknown symbol the store never
held keeps failing with Yahoo's reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pandas as pd

from mfs.config import get_config
from mfs.errors import SymbolNotFoundError
from mfs.logs import get_logger
from mfs.market import NY
from mfs.runs import RunReport, SymbolResult
from mfs.sources import yahoo
from mfs.storage.clock import set_write_context
from mfs.storage.connection import connection
from mfs.storage.types import Cursor

log = get_logger("mfs.ingest")

# The first/last bar of a symbol through the primary key (symbol, interval, ts), per interval:
# the store has no time-only index (sql/037), and a bare max(ts) would read every chunk's rows.
_EDGE_BAR = """(SELECT m.ts FROM market_data m WHERE m.symbol = s.symbol AND m.interval = '{interval}'
                ORDER BY m.ts {order} LIMIT 1)"""
LAST_BAR_DAY = (
    f"(greatest({_EDGE_BAR.format(interval='1h', order='DESC')}, {_EDGE_BAR.format(interval='1d', order='DESC')})"
    " AT TIME ZONE 'America/New_York')::date"
)

# Bars arrived: listed_on moves to the earliest bar seen; a streak or a delisting ends. A symbol
# whose batch held no good bar is only inserted when new (it was fetched, nothing more is known).
# `old` reads the delistings before `up` clears them (the CTEs share one snapshot).
_LISTINGS_SQL = """
WITH b AS (SELECT * FROM unnest(%s::text[], %s::date[]) AS b(symbol, first_day)),
old AS (SELECT s.symbol, s.delisted_on FROM symbols s JOIN b USING (symbol)
        WHERE s.delisted_on IS NOT NULL AND b.first_day IS NOT NULL),
up AS (
    INSERT INTO symbols AS s (symbol, active, listed_on) SELECT symbol, true, first_day FROM b
    ON CONFLICT (symbol) DO UPDATE
        SET active = true, listed_on = least(s.listed_on, EXCLUDED.listed_on),
            not_found_streak = 0, delisted_on = NULL, delisted_at = NULL
        WHERE EXCLUDED.listed_on IS NOT NULL
          AND (NOT s.active OR s.not_found_streak <> 0 OR s.delisted_on IS NOT NULL
               OR s.listed_on IS NULL OR EXCLUDED.listed_on < s.listed_on))
SELECT symbol, delisted_on FROM old
"""
_STREAK_SQL = """
UPDATE symbols SET not_found_streak = not_found_streak + 1
WHERE symbol = ANY(%s) AND listed_on IS NOT NULL
RETURNING symbol, not_found_streak, delisted_on
"""
# No bar left (retention dropped them all): listed_on is the only trading day still known.
_MARK_SQL = f"""
UPDATE symbols s SET active = false, delisted_at = mfs_now(),
                     delisted_on = coalesce({LAST_BAR_DAY}, s.listed_on)
WHERE s.symbol = ANY(%s) AND s.delisted_on IS NULL
RETURNING s.symbol, s.delisted_on
"""


def is_not_found(exc: Exception) -> bool:
    """Yahoo said the symbol has no data at all ("may be delisted"), not just none in a window."""
    return isinstance(exc, SymbolNotFoundError) and not isinstance(exc, yahoo.NoBarsError)


def _ny_day(ts: pd.Timestamp) -> dt.date:
    return ts.tz_convert(NY).date()


def record_listings(cur: Cursor, bars: Mapping[str, pd.DatetimeIndex]) -> list[str]:
    """In the write's transaction, for the symbols just stored (``bars``: each one's good bars):
    upsert them into ``symbols`` with ``listed_on`` at the earliest bar, ending a streak of
    "may be delisted" answers; a delisted symbol with bars again is listed again (a note each)."""
    firsts = [_ny_day(ts.min()) if len(ts) else None for ts in bars.values()]
    cur.execute(_LISTINGS_SQL, (list(bars), firsts))
    notes = []
    for symbol, delisted_on in cur.fetchall():
        ts = bars[symbol]
        # The fetch reaches back over the gap to the last stored bar: the news is the bars after it.
        after = ts[ts.tz_convert(NY).normalize().tz_localize(None) > pd.Timestamp(delisted_on)]
        since = _ny_day(after.min() if len(after) else ts.min())
        notes.append(f"{symbol}: listed again (bars since {since})")
        log.warning("symbol listed again", symbol=symbol, delisted_on=str(delisted_on), bars_since=str(since))
    return notes


def settle(report: RunReport, answered: Sequence[SymbolResult]) -> None:
    """After every interval of a run: ``answered`` are the results that failed with "may be
    delisted". A symbol that got bars in another interval of the run is not counted (Yahoo knows
    it). The others the store holds count one answer; at ``ingest.delisted_after`` they are
    marked delisted, and marked ones are skipped instead of failed (see the module)."""
    with_bars = {r.symbol for r in report.results if r.fetched > 0}
    by_symbol: dict[str, list[SymbolResult]] = {}
    for result in answered:
        if result.symbol not in with_bars:
            by_symbol.setdefault(result.symbol, []).append(result)
    if not by_symbol:
        return
    threshold = get_config().ingest.delisted_after
    with connection() as conn, conn.cursor() as cur:
        set_write_context(cur, run_id=report.run_id)
        cur.execute(_STREAK_SQL, (list(by_symbol),))
        counted = {symbol: (streak, on) for symbol, streak, on in cur.fetchall()}
        due = [symbol for symbol, (streak, on) in counted.items() if on is None and streak >= threshold]
        marked: dict[str, dt.date] = {}
        if due:
            cur.execute(_MARK_SQL, (due,))
            marked = dict(cur.fetchall())
    skipped, counting = [], []
    for symbol, (streak, on) in counted.items():
        if symbol in marked:
            reason = f"{symbol}: marked delisted as of {marked[symbol]} after {streak} 'may be delisted' answers"
            report.notes.append(reason)
            log.warning("symbol marked delisted", symbol=symbol, delisted_on=str(marked[symbol]), answers=streak)
            skipped.append(f"{symbol} (delisted on {marked[symbol]})")
        elif on is not None:
            reason = f"{symbol}: delisted on {on} (Yahoo still has no data)"
            skipped.append(f"{symbol} (delisted on {on})")
        else:
            counting.append(f"{symbol} {streak} of {threshold}")
            for result in by_symbol[symbol]:
                result.reason = f"{result.reason} — answer {streak} of {threshold} before {symbol} is marked delisted"
            continue
        for result in by_symbol[symbol]:
            result.status, result.reason = "skipped", reason
    if skipped:
        report.notes.append(f"{len(skipped)} delisted symbol(s) skipped, Yahoo has no data: {', '.join(skipped)}")
    if counting:
        report.notes.append(
            f"{len(counting)} stored symbol(s) answered 'may be delisted' (ingest.delisted_after={threshold} "
            f"runs in a row mark one delisted): {', '.join(counting)}"
        )
