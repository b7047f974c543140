"""Faults and events of the offline Yahoo (``mfs.sources.fake_yahoo``): their syntax, and what
they do to the bars and to the chart's ``events``.

``faults`` maps a symbol to one item or a list of items (strings). ``TS`` is a bar label: an ISO
timestamp (naive = UTC) matched exactly against the labels of every interval — an hourly bar's
start (``2026-11-20T15:30Z``) — or a bare date ``YYYY-MM-DD`` naming that session's daily bar.
``DAY`` is a ``YYYY-MM-DD`` NYSE session; "from DAY" means from that session's 09:30 open on
(``asof`` at or after it), and a bar is "before DAY" when its session is.

=================================== ==========================================================
``rate_limit`` / ``rate_limit:N``   chart requests answer HTTP 429 (always / the first N)
``timeout`` / ``timeout:N``         chart requests raise ``requests.ReadTimeout``
``malformed``                       HTTP 200 whose body is not JSON
``truncated``                       HTTP 200 whose JSON body is cut in half
``empty``                           HTTP 200, a result without bars (Yahoo: none in the range)
``delisted``                        HTTP 404 like an unknown symbol
``bad_bars`` / ``bad_bars:k1,k2``   the bars carry one defect of each (named) ``BAD_BAR_KINDS``
``split:DAY:R``                     the symbol split R-for-1: once ``asof`` has reached DAY
                                    (its New York midnight), every bar, earlier ones included
                                    (Yahoo re-adjusts history), is served at prices / R and
                                    volume × R; from DAY the split event is served
``unadjusted_split:DAY:R:N``        the same split, re-adjusted late: from DAY the event is
                                    served and DAY's bars on are at prices / R, volume × R,
                                    but bars before DAY stay unadjusted until ``asof`` is past
                                    the start of DAY's N-th hourly bar (N = 0: 09:30); then
                                    the series is served exactly as ``split:DAY:R`` serves it
``phantom_split:DAY:R``             Yahoo invents a split: from DAY the event is served and
                                    the bars before DAY are at prices / R, volume × R
``dividend:DAY:AMOUNT``             from DAY the dividend event is served (AMOUNT as given)
                                    and daily bars before DAY get adj_close × (1 - AMOUNT /
                                    the close of the session before DAY, as served)
``level_shift:DAY:F``               a genuine move that stays: every bar from DAY on, hourly
                                    and daily, at prices × F (volume unchanged)
``volatility:DAY:F``                a regime change: from DAY on, every bar's log-distance from
                                    the close of the session before DAY is F times what it was
                                    (prices p -> c * (p / c) ** F, c that close as the provider
                                    has it): volatility × F, the path's shape and volume kept
``correct:TS:F``                    Yahoo corrected a past bar: the bar labelled TS is served
                                    at prices × F (only that interval's bar)
``spike:TS:F``                      a one-bar defect that reverts: served as ``correct:TS:F``
``daily_off:DAY:F``                 DAY's daily bar at prices × F, its hourly bars untouched
``stale:TS:N``                      hourly only: the N hourly bars from the one starting at TS
                                    are frozen — open = high = low = close = the close of the
                                    bar before TS, as served — with volume 0
``missing:TS``                      the bar labelled TS is not served (a gap)
=================================== ==========================================================

Factors F, ratios R and amounts are > 0; "prices" are open, high, low, close and adj_close,
rounded to Yahoo's 4 decimals (a positive factor and monotone rounding keep low <= open, close
<= high). Every kind but the counted ones, the flags and the split kinds may be listed several
times for one symbol. The transforms apply in this order: volatility, split, unadjusted_split,
phantom_split; level_shift; dividend (adj_close); correct and spike; daily_off; stale; missing;
bad_bars. Events (the synthetic market's own dividends, ``dividend``, the split kinds) are
served, for 1h and 1d alike, when their session lies in the requested window and has opened by
``asof``, stamped with the session's open like Yahoo's; the synthetic dividends' amounts follow
the split kinds and level shifts, so amount / previous close stays what it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from mfs.calendar import daily_bar_label, hourly_bar_starts, is_session, nyse, session_bounds
from mfs.market import NY
from mfs.sources.synthetic import _utc

# A symbol's faults: kind -> remaining count (int, -1 = always), the defect kinds for bad_bars,
# a tuple of values for a split kind, a tuple of such tuples for a repeatable kind.
FaultSpec = dict[str, Any]
# The provider's raw bar of the symbol labelled ts: (interval, ts) -> a frame of 0 or 1 rows.
Fetch = Callable[[str, pd.Timestamp], "pd.DataFrame | None"]

BAD_BAR_KINDS = ("nan", "negative", "high_below_low", "negative_volume", "off_session", "jump")
PRICES = ("open", "high", "low", "close", "adj_close")
_COUNTED = ("rate_limit", "timeout")
_FLAGS = ("malformed", "truncated", "empty", "delisted")
_SPLITS = ("split", "unadjusted_split", "phantom_split")
# Kinds ``KIND:YYYY-MM-DD:NUMBER``: kind -> (the number in the expected shape, in messages).
_DAY_KINDS = {
    "split": ("RATIO", "split ratio"),
    "phantom_split": ("RATIO", "split ratio"),
    "dividend": ("AMOUNT", "dividend amount"),
    "level_shift": ("FACTOR", "level shift factor"),
    "volatility": ("FACTOR", "volatility factor"),
    "daily_off": ("FACTOR", "factor"),
}
_SHAPES = {
    **{kind: f"{kind}:YYYY-MM-DD:{number}" for kind, (number, _) in _DAY_KINDS.items()},
    "unadjusted_split": "unadjusted_split:YYYY-MM-DD:RATIO:N (N = the hourly bar of the day, 0 = 09:30)",
    **{k: f"{k}:ISO_TIMESTAMP:FACTOR (e.g. {k}:2026-11-20T15:30Z:1.01)" for k in ("correct", "spike")},
    "stale": "stale:ISO_TIMESTAMP:N (an hourly bar's start, N >= 1, e.g. stale:2026-11-20T15:30Z:3)",
    "missing": "missing:ISO_TIMESTAMP or missing:YYYY-MM-DD (e.g. missing:2026-11-20T15:30Z)",
    **{k: f"{k} or {k}:N" for k in _COUNTED},
}


class _Refused(ValueError):
    """What is wrong with one item (parse_faults adds the item and the symbol)."""


def parse_faults(faults: Mapping[str, str | Iterable[str]] | None) -> dict[str, FaultSpec]:
    """Validate a fault spec; returns {SYMBOL: {kind: value}} (see the module docstring)."""
    parsed: dict[str, FaultSpec] = {}
    for symbol, spec in (faults or {}).items():
        items = [spec] if isinstance(spec, str) else list(spec)
        out: FaultSpec = {}
        for item in items:
            kind, _, arg = item.partition(":")
            try:
                value = _parse_item(kind, arg)
            except _Refused as exc:
                raise ValueError(f"fault {item!r} for {symbol}: {exc}") from None
            repeatable = kind not in (*_COUNTED, *_FLAGS, *_SPLITS, "bad_bars")
            out[kind] = (*out.get(kind, ()), value) if repeatable else value
        parsed[symbol.upper()] = out
    return parsed


def _parse_item(kind: str, arg: str) -> Any:
    if kind in _COUNTED:
        if arg and not arg.isdigit():
            raise _Refused(f"expected {_SHAPES[kind]}")
        return int(arg) if arg else -1
    if kind in _FLAGS:
        return -1
    if kind == "bad_bars":
        kinds = tuple(arg.split(",")) if arg else BAD_BAR_KINDS
        unknown = set(kinds) - set(BAD_BAR_KINDS)
        if unknown:
            raise _Refused(f"unknown bad-bar kinds {sorted(unknown)}")
        return kinds
    if kind in _DAY_KINDS:
        day, _, number = arg.partition(":")
        return _day(kind, day), _positive(kind, number, _DAY_KINDS[kind][1])
    if kind == "unadjusted_split":
        day, _, rest = arg.partition(":")
        ratio, _, n = rest.partition(":")
        session, value = _day(kind, day), _positive(kind, ratio, "split ratio")
        count = len(hourly_bar_starts(day, day))
        if not n.isdigit() or int(n) >= count:
            raise _Refused(f"expected {_SHAPES[kind]}; {day} has {count} hourly bars: N = 0 … {count - 1}")
        return session, value, int(n)
    if kind in ("correct", "spike", "stale"):
        label, _, number = arg.rpartition(":")  # an ISO label holds colons: the number follows the last
        ts = _label(kind, label)
        if kind != "stale":
            return ts, _positive(kind, number, "correction factor" if kind == "correct" else "spike factor")
        if len(label) == 10 or ts not in hourly_bar_starts(ts, ts):
            raise _Refused(f"stale takes the start of an hourly bar: expected {_SHAPES[kind]}")
        if not number.isdigit() or int(number) < 1:
            raise _Refused(f"expected {_SHAPES[kind]}")
        return ts, int(number)
    if kind == "missing":
        return _label(kind, arg)
    raise _Refused("unknown fault (see mfs.sources.fake_faults)")


def _day(kind: str, text: str) -> pd.Timestamp:
    """A ``YYYY-MM-DD`` NYSE session as a naive date: events happen at a session's open."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise _Refused(f"expected {_SHAPES[kind]}")
    try:
        day = pd.Timestamp(text)
        ok = is_session(day)
    except ValueError:  # no such date, or beyond the calendar's range
        ok = False
    if not ok:
        raise _Refused(f"{text} is not an NYSE session")
    return day


def _positive(kind: str, text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Refused(f"expected {_SHAPES[kind]}") from None
    if not (value > 0 and np.isfinite(value)):
        raise _Refused(f"the {name} must be > 0")
    return value


def _label(kind: str, text: str) -> pd.Timestamp:
    """A bar label in UTC: a bare date names the daily bar, anything else is a timestamp."""
    try:
        ts = daily_bar_label(pd.Timestamp(text)) if len(text) == 10 else _utc(text)
        if pd.isna(ts):  # an empty label parses as NaT
            raise ValueError(text)
    except ValueError:
        raise _Refused(f"expected {_SHAPES[kind]}") from None
    return ts


# -- bars ------------------------------------------------------------------------------------
def served_bars(bars: pd.DataFrame, interval: str, spec: FaultSpec, asof: pd.Timestamp, fetch: Fetch) -> pd.DataFrame:
    """``bars`` (the provider's) as Yahoo serves them with ``spec``, in the documented order.
    ``fetch`` reaches bars outside the window (the close before a dividend or a stale run), so
    a bar is served the same whatever window it is asked in."""
    if bars.empty:
        return bars
    bars = _before_stale(bars, interval, spec, asof, fetch)
    if interval == "1h":
        for ts, n in spec.get("stale", ()):
            bars = _stale(bars, ts, n, lambda prev: _served_bar(interval, prev, spec, asof, fetch))
    if spec.get("missing"):
        bars = bars.loc[~bars["ts"].isin(spec["missing"])].reset_index(drop=True)
    if spec.get("bad_bars"):
        bars = corrupt(bars, interval, spec["bad_bars"])
    return bars


def _repriced(bars: pd.DataFrame, spec: FaultSpec, asof: pd.Timestamp, fetch: Fetch) -> pd.DataFrame:
    """The volatility regimes, the split kinds and the level shifts: what moves every price of a bar."""
    for day, factor in spec.get("volatility", ()):
        bars = _volatile(bars, day, factor, fetch)
    if "split" in spec:
        day, ratio = spec["split"]
        bars = split_adjusted(bars, day, ratio, asof)
    if "unadjusted_split" in spec:
        day, ratio, n = spec["unadjusted_split"]
        if asof > hourly_bar_starts(day, day)[n]:
            bars = split_adjusted(bars, day, ratio, asof)
        elif asof >= _open(day):
            bars = _scaled(bars, _days(bars) >= day, ratio, divide=True)
    if "phantom_split" in spec:
        day, ratio = spec["phantom_split"]
        if asof >= _open(day):
            bars = _scaled(bars, _days(bars) < day, ratio, divide=True)
    for day, factor in spec.get("level_shift", ()):
        bars = _scaled(bars, _days(bars) >= day, factor)
    return bars


def _volatile(bars: pd.DataFrame, day: pd.Timestamp, factor: float, fetch: Fetch) -> pd.DataFrame:
    """Bars from ``day`` on with F times their log-distance from the provider's close of the
    session before ``day`` (a monotone map of each price: low <= open, close <= high stay);
    adj_close keeps its ratio to close."""
    mask = np.asarray(_days(bars) >= day)
    raw = fetch("1d", daily_bar_label(nyse().previous_session(day)))
    if not mask.any() or raw is None or raw.empty:
        return bars
    anchor = float(raw["close"].iloc[-1])
    bars = bars.copy()
    close = bars.loc[mask, "close"].to_numpy(dtype=float)
    for c in ("open", "high", "low", "close"):
        bars.loc[mask, c] = np.round(anchor * (bars.loc[mask, c].to_numpy(dtype=float) / anchor) ** factor, 4)
    ratio = bars.loc[mask, "adj_close"].to_numpy(dtype=float) / close
    bars.loc[mask, "adj_close"] = np.round(bars.loc[mask, "close"].to_numpy(dtype=float) * ratio, 4)
    return bars


def _served_bar(
    interval: str, ts: pd.Timestamp, spec: FaultSpec, asof: pd.Timestamp, fetch: Fetch
) -> pd.DataFrame | None:
    """The bar labelled ``ts`` as served before the freezing of stale runs (None: no such bar)."""
    raw = fetch(interval, ts)
    return None if raw is None or raw.empty else _before_stale(raw, interval, spec, asof, fetch)


def _before_stale(bars: pd.DataFrame, interval: str, spec: FaultSpec, asof: pd.Timestamp, fetch: Fetch) -> pd.DataFrame:
    bars = _repriced(bars, spec, asof, fetch)
    if interval == "1d" and spec.get("dividend"):
        bars = _dividend_adjusted(bars, spec, asof, fetch)
    edits = (*spec.get("correct", ()), *spec.get("spike", ()))
    if edits:
        bars = corrected(bars, edits)
    if interval == "1d":
        for day, factor in spec.get("daily_off", ()):
            bars = _scaled(bars, np.asarray(bars["ts"] == daily_bar_label(day)), factor)
    return bars


def _dividend_adjusted(bars: pd.DataFrame, spec: FaultSpec, asof: pd.Timestamp, fetch: Fetch) -> pd.DataFrame:
    """Yahoo's adjustment for each announced ``dividend:``: the adj_close of every bar before the
    ex-date times 1 - amount / the previous close (one product, rounded once)."""
    factor = np.ones(len(bars))
    days = _days(bars)
    for day, amount in spec["dividend"]:
        if asof >= _open(day):
            _raw, previous = previous_close(day, spec, asof, fetch)
            if np.isfinite(previous):
                factor[np.asarray(days < day)] *= 1 - amount / previous
    bars = bars.copy()
    bars["adj_close"] = np.round(bars["adj_close"].to_numpy(dtype=float) * factor, 4)
    return bars


def previous_close(day: pd.Timestamp, spec: FaultSpec, asof: pd.Timestamp, fetch: Fetch) -> tuple[float, float]:
    """(raw, served) close of the session before ``day``; NaN when the provider has none. Served
    means after the split kinds and level shifts, the transforms that precede the dividends."""
    label = daily_bar_label(nyse().previous_session(day))
    raw = fetch("1d", label)
    if raw is None or raw.empty:
        return np.nan, np.nan
    return float(raw["close"].iloc[-1]), float(_repriced(raw, spec, asof, fetch)["close"].iloc[-1])


def _stale(bars: pd.DataFrame, ts: pd.Timestamp, n: int, served: Callable[[pd.Timestamp], Any]) -> pd.DataFrame:
    starts = hourly_bar_starts(ts, ts + pd.Timedelta(days=n + 7))
    frozen = np.asarray(bars["ts"].isin(starts[starts >= ts][:n]))
    if not frozen.any():
        return bars
    earlier = hourly_bar_starts(ts - pd.Timedelta(days=14), ts)
    before = served(earlier[earlier < ts][-1])
    if before is None:
        return bars
    bars = bars.copy()
    for c in ("open", "high", "low", "close"):
        bars.loc[frozen, c] = float(before["close"].iloc[-1])
    bars.loc[frozen, "volume"] = 0
    return bars


def _days(bars: pd.DataFrame) -> pd.DatetimeIndex:
    """Each bar's session (naive New York date): hourly starts and daily labels alike."""
    return pd.DatetimeIndex(bars["ts"]).tz_convert(NY).tz_localize(None).normalize()


def _open(day: pd.Timestamp) -> pd.Timestamp:
    return session_bounds(day)[0]


def _scaled(bars: pd.DataFrame, mask: np.ndarray | pd.Series, factor: float, divide: bool = False) -> pd.DataFrame:
    """Prices × factor where ``mask``; with ``divide``, a split's adjustment: prices / factor and
    volume × factor (dividing, not multiplying by 1/R, keeps split_adjusted's exact roundings)."""
    bars = bars.copy()
    mask = np.asarray(mask)
    for c in PRICES:
        bars.loc[mask, c] = np.round(bars.loc[mask, c] / factor if divide else bars.loc[mask, c] * factor, 4)
    if divide:
        bars.loc[mask, "volume"] = np.round(bars.loc[mask, "volume"] * factor).astype(np.int64)
    return bars


def split_adjusted(bars: pd.DataFrame, day: pd.Timestamp, ratio: float, asof: pd.Timestamp) -> pd.DataFrame:
    """``bars`` as served once an R-for-1 split on ``day`` has happened (``asof`` on or after it):
    the bars after it traded at 1/R of the synthetic price with R times the volume, and Yahoo
    serves the ones before it adjusted the same way, so the whole series is scaled (and has no
    jump at the split). Before ``day`` nothing has changed yet."""
    return bars if asof < daily_bar_label(day) else _scaled(bars, np.ones(len(bars), dtype=bool), ratio, divide=True)


def corrected(bars: pd.DataFrame, corrections: Iterable[tuple[pd.Timestamp, float]]) -> pd.DataFrame:
    """``bars`` with each bar labelled ``ts`` of ``corrections`` served at ``factor`` times its
    prices (a positive factor keeps low <= open/close <= high; rounding to Yahoo's 4 decimals is
    monotone, so it does too); bars with other labels as they were."""
    labels = pd.DatetimeIndex(bars["ts"])
    for ts, factor in corrections:
        bars = _scaled(bars, labels == ts, factor)
    return bars


def corrupt(bars: pd.DataFrame, interval: str, kinds: Iterable[str]) -> pd.DataFrame:
    """Give the bars one defect of each kind, at fixed positions from the end (so tests can count).

    ``off_session`` adds a bar on the Saturday after the first bar (the real yfinance keeps it:
    it only drops bars outside a *listed* trading period).
    """
    bars = bars.copy().reset_index(drop=True)
    kinds = list(kinds)
    positions = {kind: len(bars) - 2 - 2 * i for i, kind in enumerate(k for k in kinds if k != "off_session")}
    if min(positions.values(), default=1) < 1:
        return bars  # too short to corrupt (e.g. yfinance's 1-day timezone probe): serve as is
    for kind, pos in positions.items():
        if kind == "nan":
            bars.loc[pos, "close"] = np.nan
        elif kind == "negative":
            bars.loc[pos, "low"] = -abs(bars.loc[pos, "low"])
        elif kind == "high_below_low":
            bars.loc[pos, "high"] = bars.loc[pos, "low"] * 0.99
        elif kind == "negative_volume":
            bars.loc[pos, "volume"] = -100
        elif kind == "jump":
            for c in PRICES:
                bars.loc[pos, c] = bars.loc[pos, c] * 10
    if "off_session" in kinds:
        first = pd.Timestamp(bars.loc[0, "ts"])
        saturday = first + pd.Timedelta(days=(5 - first.tz_convert(NY).dayofweek) % 7 or 7)
        extra = bars.iloc[[0]].assign(ts=saturday)
        bars = pd.concat([bars, extra]).sort_values("ts", kind="stable").reset_index(drop=True)
    return bars


# -- events ----------------------------------------------------------------------------------
def chart_events(
    interval: str,
    spec: FaultSpec,
    window: tuple,
    asof: pd.Timestamp,
    dividends: pd.DataFrame | None,
    fetch: Fetch,
) -> dict:
    """The chart's ``events`` (``{}`` when none): dividends (the provider's own, ``dividends``
    with ts = the ex-date's daily label, and ``dividend:`` items) and splits, each stamped with
    its session's open, whose bar label (daily: New York midnight; hourly: the open) lies in
    ``window`` = [start, end) and whose session has opened by ``asof``."""
    start, end = window

    def stamp(day: pd.Timestamp) -> int | None:
        open_ = _open(day)
        label = daily_bar_label(day) if interval == "1d" else open_
        return int(open_.timestamp()) if open_ <= asof and start <= label < end else None

    paid: dict[int, float] = {}
    for day, amount in (*_own_dividends(dividends, spec, asof, fetch), *spec.get("dividend", ())):
        if (at := stamp(day)) is not None:
            paid[at] = round(paid.get(at, 0.0) + amount, 4)  # one event a day, as Yahoo has
    splits = {}
    for kind in _SPLITS:
        if kind in spec and (at := stamp(spec[kind][0])) is not None:
            ratio = Fraction(spec[kind][1]).limit_denominator(1000)
            n, d = ratio.numerator, ratio.denominator
            splits[str(at)] = {"date": at, "numerator": n, "denominator": d, "splitRatio": f"{n}:{d}"}
    events: dict = {}
    if paid:
        events["dividends"] = {str(at): {"amount": amount, "date": at} for at, amount in sorted(paid.items())}
    if splits:
        events["splits"] = splits
    return events


def _own_dividends(dividends: pd.DataFrame | None, spec: FaultSpec, asof: pd.Timestamp, fetch: Fetch) -> list[tuple]:
    """The provider's dividends as (session, amount); under a split kind or a level shift the
    amount follows the previous close it is a fraction of, as Yahoo's split-adjusted amounts do."""
    if dividends is None or dividends.empty:
        return []
    days = _days(dividends)
    out = []
    for day, amount in zip(days, dividends["amount"].to_numpy(dtype=float), strict=True):
        if any(k in spec for k in (*_SPLITS, "level_shift", "volatility")):
            raw, served = previous_close(day, spec, asof, fetch)
            amount = round(amount * served / raw, 4) if np.isfinite(raw) and raw > 0 else amount
        out.append((day, float(amount)))
    return out
