"""What a feature batch reads, and the plan it makes of it: per symbol, which bars to (re)compute
and from which bar to read them.

Bars and feature-row states are read with binary COPY into numpy record arrays, each symbol
through its own index probe. A series whose unseen changes are logged (``mfs.storage.progress``)
is read from a bound: its feature rows from where those changes begin (every row before is
current: the last run left it so and nothing counted has touched it since), its bars from the
look-back before that. Any other series is read and compared in full.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from psycopg2 import sql

from mfs.features.version import FEATURE_VERSION
from mfs.storage.progress import UNCHANGED
from mfs.storage.records import copy_records, record_dtype
from mfs.storage.types import Cursor


def _row_state(cumulative: tuple[str, ...]) -> np.dtype:
    """A feature row's state, with the stored value of every running-sum feature (its anchor)."""
    fields = [("k", ">i4"), ("ts", ">i8"), ("feature_version", ">i4"), ("bar_ingested_at", ">i8")]
    return record_dtype(fields + [(name, ">f8") for name in cumulative])


BAR_RECORD = record_dtype(
    [
        ("k", ">i4"),
        ("ts", ">i8"),
        ("open", ">f8"),
        ("high", ">f8"),
        ("low", ">f8"),
        ("close", ">f8"),
        ("volume", ">i8"),
        ("ingested_at", ">i8"),
        ("closes_at", ">i8"),
    ]
)

# Every bar of a batch's symbols, as BAR_RECORD (closes_at is NULL in rows stored before it existed).
BAR_SELECT = (
    "SELECT w.k::int4, t.ts, t.open, t.high, t.low, t.close, t.volume, t.ingested_at, "
    "coalesce(t.closes_at, bar_closes_at(t.interval, t.ts)) "
)


# k = the symbol's 1-based position in the batch, from the batch's symbol array (an ORDER BY or
# array_position() in SQL costs more than the scan itself: measured 135 vs 55 ms for 44k rows);
# numpy sorts by (k, ts) instead. Each symbol's rows are read through its own index probe (a
# LATERAL subquery, kept from being flattened by OFFSET 0): as a plain join the planner hashed
# the batch's symbols against a scan of the whole hypertable, so every batch read every symbol's
# rows and a run's cost grew with the square of the universe (500 symbols × 60 days: 35 ms per
# batch for 14,250 of 142,500 rows read).
BATCH_JOIN = (
    "FROM unnest(%s::text[]) WITH ORDINALITY AS w(symbol, k) CROSS JOIN LATERAL "
    "(SELECT * FROM {table} t WHERE t.symbol = w.symbol AND t.interval = %s{since} OFFSET 0) t"
)
SINCE_US = " AND t.ts >= to_timestamp(%s / 1e6::float8 + 946684800)"

# The bounded reads (params: symbols, per symbol the bound in PostgreSQL µs or NULL for all and
# its look-back, the interval): a symbol's feature rows from its bound, its bars from the bar
# ``lookback`` + 1 bars before it (all of them when it has fewer).
_BOUND = "to_timestamp(w.bound / 1e6::float8 + 946684800)"
_BOUNDED = (
    "FROM unnest(%(symbols)s::text[], %(bounds)s::bigint[], %(lookbacks)s::int4[]) "
    "WITH ORDINALITY AS w(symbol, bound, lookback, k) "
)
# ``floor`` and ``rows_floor`` (µs or NULL): constants below which no bar, no feature row is read,
# so that the planner leaves the older chunks out. Without them every symbol's probe planned and
# walked every chunk of the hypertable: a batch of 100 symbols × 201 bars took 13.6 ms to plan at
# 730 days of history (25 chunks) against 1.3 ms at 60 days (3 chunks), measured.
_FLOOR = "coalesce(to_timestamp(%({name})s / 1e6::float8 + 946684800), '-infinity')"
BOUNDED_BARS = (
    _BOUNDED + "CROSS JOIN LATERAL (SELECT coalesce((SELECT b.ts FROM market_data b WHERE b.symbol = w.symbol "
    "AND b.interval = %(interval)s AND b.ts < " + _BOUND + " AND b.ts >= " + _FLOOR.format(name="floor") + " "
    "ORDER BY b.ts DESC OFFSET w.lookback LIMIT 1), "
    "'-infinity') AS since) s CROSS JOIN LATERAL (SELECT * FROM market_data t WHERE t.symbol = w.symbol "
    "AND t.interval = %(interval)s AND t.ts >= s.since AND t.ts >= " + _FLOOR.format(name="floor") + " OFFSET 0) t"
)
BOUNDED_ROWS = (
    _BOUNDED + "CROSS JOIN LATERAL (SELECT * FROM features t WHERE t.symbol = w.symbol "
    "AND t.interval = %(interval)s AND t.ts >= coalesce(" + _BOUND + ", '-infinity') "
    "AND t.ts >= " + _FLOOR.format(name="rows_floor") + " OFFSET 0) t"
)
# Calendar µs that one bar of an interval spans at most, with room to spare: hourly bars are 4-7
# a session (2 a calendar day allowed for), daily bars 5 a week (3.5 days each allowed for). A
# series with fewer bars than its look-back above the floor (a halt, a young series) is read again
# without it.
SPAN_US = {"1h": 43_200_000_000, "1d": 302_400_000_000}


def floors(interval: str, bounds: Sequence[int | None], lookbacks: Sequence[int]) -> tuple[int | None, int | None]:
    """The constant lower bounds of a bounded read (bars, feature rows), or None: a series read in full."""
    if not bounds or any(b is None for b in bounds):
        return None, None
    low = min(int(b) for b in bounds if b is not None)
    span = SPAN_US.get(interval)
    return (None if span is None else low - (max(lookbacks) + 1) * span), low


def batch_rows(table: str, since: bool = False) -> str:
    """The FROM clause of a batch read of ``table``: every row of the batch's symbols (params:
    the symbol array, the interval), from a ts in PostgreSQL µs on when ``since`` (one more param)."""
    return BATCH_JOIN.format(table=table, since=SINCE_US if since else "")


def split_by_symbol(rec: np.ndarray, n: int) -> list[np.ndarray]:
    """Records of a batch -> one slice per symbol, each ordered by ts."""
    k, ts = rec["k"].astype(np.int32), rec["ts"].astype(np.int64)
    # Each symbol's index probe returns its rows in ts order, symbol after symbol: usually nothing
    # to sort (checking costs a tenth of the sort).
    if len(rec) > 1 and not ((np.diff(k) > 0) | ((np.diff(k) == 0) & (np.diff(ts) > 0))).all():
        order = np.lexsort((ts, k))
        rec, k = rec[order], k[order]
    bounds = np.searchsorted(k, np.arange(1, n + 2))
    return [rec[bounds[i] : bounds[i + 1]] for i in range(n)]


@dataclass
class Plan:
    """What one symbol needs: bars[start:] (re)computed, reading from bars[first]."""

    bar_ts: np.ndarray  # the ts of every bar read, PostgreSQL µs, ascending
    start: int | None  # first bar to (re)compute; None = nothing stale
    first: int = 0  # first bar read (start - lookback, or 0)
    anchors: dict[str, float] | None = None  # stored running sums of bars[first] when first > 0
    rows_from_start: int = 0  # feature rows that already exist for bars[start:]
    orphans: np.ndarray | None = None  # ts (µs) of feature rows whose bar no longer exists
    complete: bool = True  # the bars read begin with the series' first bar


def plan_symbol(
    bars: np.ndarray,
    rows: np.ndarray,
    *,
    full: bool,
    lookback: int,
    cumulative: tuple[str, ...] = (),
    checked_from: int | None = None,
) -> Plan:
    """Compare each bar's ingested_at with the bar_ingested_at of its feature row, in numpy.

    Two ordered index scans instead of a join: the join's plan depends on the statistics of a
    freshly written hypertable and degraded to a nested loop (0.5 s per symbol, measured).
    ``checked_from`` (PostgreSQL µs): ``rows`` begin there and every bar before it is current;
    ``bars`` begin ``lookback`` + 1 bars before it, or with the series. A plan whose anchors are
    not among ``rows`` has ``anchors`` None with ``first`` > 0 (``settle_anchors`` reads them).
    """
    bar_ts, row_ts = bars["ts"].astype(np.int64), rows["ts"].astype(np.int64)
    skip = 0 if checked_from is None else int(np.searchsorted(bar_ts, checked_from))
    checked = bar_ts[skip:]
    if len(row_ts):
        pos = np.minimum(np.searchsorted(row_ts, checked), len(row_ts) - 1)  # the row of each bar, if any
        has_row = row_ts[pos] == checked
        current = (
            has_row
            & (rows["feature_version"][pos] == FEATURE_VERSION)
            & (rows["bar_ingested_at"][pos].astype(np.int64) == bars["ingested_at"][skip:].astype(np.int64))
        )
    else:
        pos = np.zeros(len(checked), dtype=np.int64)
        has_row = current = np.zeros(len(checked), dtype=bool)
    plan = Plan(bar_ts=bar_ts, start=None, orphans=_not_among(row_ts, bar_ts), complete=skip <= lookback)
    stale = np.flatnonzero(~current) if not full else np.arange(min(len(bar_ts), 1))
    if not len(stale):
        return plan
    plan.start = skip + int(stale[0])
    plan.rows_from_start = int(has_row[plan.start - skip :].sum())
    first = plan.start - lookback
    if first > 0:
        # Every bar before start has a current row (start is the first stale one): continue its
        # running sums from the row of bars[first].
        plan.first = first
        if first >= skip:
            _use_anchors(plan, {name: float(rows[name][pos[first - skip]]) for name in cumulative})
    return plan


def _not_among(values: np.ndarray, ascending: np.ndarray) -> np.ndarray:
    """The ``values`` absent from ``ascending`` (a sorted array): one binary search each, where
    ``np.isin`` sorted both arrays again (0.1 ms of a symbol's 0.6 ms plan and read, measured)."""
    if not len(ascending):
        return values
    pos = np.minimum(np.searchsorted(ascending, values), len(ascending) - 1)
    return values[ascending[pos] != values]


def _use_anchors(plan: Plan, anchors: dict[str, float] | None) -> None:
    """Continue ``plan`` from the stored running sums of its first bar. One not stored (a feature
    just added, a NaN) means reading from the series' first bar instead: from the bars read when
    they begin there, else ``anchors`` stays None (the symbol is to be read again, in full)."""
    if anchors is not None and not any(np.isnan(v) for v in anchors.values()):
        plan.anchors = anchors
    elif plan.complete:
        plan.first, plan.anchors = 0, None


def read_plans(
    cur: Cursor,
    symbols: list[str],
    interval: str,
    bounds: Mapping[str, int],
    *,
    full: bool,
    lookback: int,
    cumulative: tuple[str, ...],
    lookbacks: Sequence[int] | None = None,
    again_if: Callable[[int, Plan], bool] | None = None,
) -> tuple[list[np.ndarray], list[Plan]]:
    """Per symbol its bars (BAR_RECORD) and its plan. ``bounds``: per symbol, where its unseen
    changes begin (PostgreSQL µs; UNCHANGED: none); a symbol without one is compared in full, and
    so is one whose anchors turn out not to be stored. ``lookbacks``: per symbol, a shorter
    look-back than ``lookback`` (a series whose carried features continue a stored state,
    mfs.features.state); a symbol for which ``again_if(i, plan)`` says the shorter one does not
    serve is read again, with ``lookback``."""
    bound = [None if full else bounds.get(s) for s in symbols]
    looks = list(lookbacks) if lookbacks is not None else [lookback] * len(symbols)
    bars, plans, short = _read_and_plan(cur, symbols, interval, bound, full=full, lookback=looks, cumulative=cumulative)
    for _ in range(2):  # the bounded read again with the full look-back, then (anchors) in full
        settle_anchors(cur, symbols, interval, plans, cumulative)
        unanchored = {i for i, p in enumerate(plans) if p.first > 0 and p.anchors is None}
        missed = {i for i, p in enumerate(plans) if looks[i] != lookback and again_if and again_if(i, p)}
        again = sorted(unanchored | missed | short)
        if not again:
            break
        for i in again:
            bound[i] = None if i in unanchored else bound[i]
            looks[i] = lookback
        more, replans, short = _read_and_plan(
            cur,
            [symbols[i] for i in again],
            interval,
            [bound[i] for i in again],
            full=full,
            lookback=[lookback] * len(again),
            cumulative=cumulative,
            floored=False,  # a series the floor cut short, read below it
        )
        short = set()
        for i, b, p in zip(again, more, replans, strict=True):
            bars[i], plans[i] = b, p
    return bars, plans


def _read_and_plan(
    cur: Cursor,
    symbols: list[str],
    interval: str,
    bound: list[int | None],
    *,
    full: bool,
    lookback: list[int],
    cumulative: tuple[str, ...],
    floored: bool = True,
) -> tuple[list[np.ndarray], list[Plan], set[int]]:
    """The bounded reads of ``symbols`` (``bound``: per symbol, or None for all; ``lookback``: per
    symbol), their plans, and the symbols whose read the floor cut short (to be read again)."""
    todo = [i for i, b in enumerate(bound) if b != UNCHANGED]  # an unchanged series reads nothing
    floor, rows_floor = (
        floors(interval, [bound[i] for i in todo], [lookback[i] for i in todo]) if floored else (None, None)
    )
    params = {
        "symbols": [symbols[i] for i in todo],
        "bounds": [bound[i] for i in todo],
        "lookbacks": [lookback[i] for i in todo],
        "interval": interval,
        "floor": floor,
        "rows_floor": rows_floor,
    }
    bars = split_by_symbol(copy_records(cur, BAR_SELECT + BOUNDED_BARS, params, BAR_RECORD), len(todo))
    rows = split_by_symbol(
        copy_records(
            cur,
            "SELECT w.k::int4, t.ts, t.feature_version, coalesce(t.bar_ingested_at, '-infinity')"
            # Feature names are checked SQL identifiers (mfs.features.definitions: [a-z][a-z0-9_]*).
            + "".join(f", coalesce(t.{name}, 'NaN')" for name in cumulative)
            + " "
            + BOUNDED_ROWS,
            params,
            _row_state(cumulative),
        ),
        len(todo),
    )
    all_bars = [np.empty(0, dtype=BAR_RECORD) for _ in symbols]
    plans = [Plan(bar_ts=np.empty(0, dtype=np.int64), start=None, orphans=np.empty(0, dtype=np.int64)) for _ in symbols]
    short = set()
    for j, i in enumerate(todo):
        all_bars[i] = bars[j]
        plans[i] = plan_symbol(
            bars[j], rows[j], full=full, lookback=lookback[i], cumulative=cumulative, checked_from=bound[i]
        )
        b = bound[i]
        if floor is None or b is None or plans[i].start is None:
            continue
        if int(np.searchsorted(plans[i].bar_ts, b)) <= lookback[i]:  # fewer bars above the floor than the look-back
            short.add(i)
    return all_bars, plans, short


def settle_anchors(
    cur: Cursor, symbols: Sequence[str], interval: str, plans: list[Plan], cumulative: tuple[str, ...]
) -> None:
    """Read the stored running sums of the plans that start before their bound (one index probe
    per symbol). A plan whose anchor is not stored reads from the series' first bar: when its bars
    read begin there already, from them; otherwise it keeps ``anchors`` None (to be read again)."""
    need = [i for i, p in enumerate(plans) if p.first > 0 and p.anchors is None]
    if not need:
        return
    if not cumulative:
        for i in need:
            plans[i].anchors = {}
        return
    anchored = [int(plans[i].bar_ts[plans[i].first]) for i in need]
    cur.execute(
        sql.SQL(
            "SELECT w.k, {columns} FROM unnest(%s::text[], %s::bigint[]) WITH ORDINALITY AS w(symbol, us, k) "
            "CROSS JOIN LATERAL (SELECT * FROM features f WHERE f.symbol = w.symbol AND f.interval = %s "
            "AND f.ts = to_timestamp(w.us / 1e6::float8 + 946684800) "
            # The earliest of them as a constant too: the planner leaves older chunks out (the probe
            # planned every chunk: 4 ms a batch at 60 days of history, 12 ms at 730, measured).
            "AND f.ts >= to_timestamp(%s / 1e6::float8 + 946684800) OFFSET 0) f"
        ).format(columns=sql.SQL(", ").join(sql.Identifier("f", name) for name in cumulative)),
        ([symbols[i] for i in need], anchored, interval, min(anchored)),
    )
    found = {int(k): values for k, *values in cur.fetchall()}
    for j, i in enumerate(need, start=1):
        stored = found.get(j)
        values = None if stored is None else [np.nan if v is None else float(v) for v in stored]
        _use_anchors(plans[i], None if values is None else dict(zip(cumulative, values, strict=True)))
