"""A deterministic synthetic market: NYSE-session bars for any symbol, the same on every machine.

Why hashed noise instead of a seeded RNG stream: a bar must have the same values whichever window
is asked for (one week or one year, today or next month), so every random number is a pure
function of (symbol, session index, stream) — a splitmix64 hash, vectorised in numpy. Only the
daily closes are a cumulative walk; they are cheap (one number per session since 2000).

The model, per symbol (parameters derived from the symbol's SHA-256):
- daily closes: geometric random walk with drift ``mu`` and volatility ``sigma``, anchored so the
  close of the 2024-01-02 session is the symbol's reference price ``p0``;
- each session opens with a small gap from the previous close, and its hourly closes follow a
  Brownian bridge from the open to the daily close — so hourly bars aggregate exactly into the
  daily bar (open = first open, close = last close, high = max, low = min, volume = sum);
- hourly bars start at the session open (09:30 New York) every hour: 7 on a full day, 4 on a
  13:00 half day, per ``mfs.calendar`` (holidays, half days and DST come from exchange_calendars);
- volumes are integers, U-shaped across the day;
- quarterly dividends make ``adj_close`` (daily only; Yahoo sends none for intraday) step down
  before each ex-date that has passed by ``asof``; ``synthetic_dividends`` lists them with the
  amount Yahoo would announce;
- ``asof`` is the market clock: bars starting after it do not exist, the bar containing it is
  partial (its close part-way along, its volume a fraction) and becomes final later.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from mfs.calendar import TimeLike, nyse
from mfs.market import NY, check_interval

HOUR_NS = 3_600_000_000_000
REFERENCE_SESSION = np.datetime64("2024-01-02")  # p0 is the close of this session
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class SymbolModel:
    seed: int
    p0: float  # reference close (2024-01-02)
    mu: float  # annual drift
    sigma: float  # annual volatility
    base_volume: float  # shares per day
    dividend_yield: float
    dividend_phase: int


@lru_cache(maxsize=4096)
def symbol_model(symbol: str) -> SymbolModel:
    digest = hashlib.sha256(symbol.encode()).digest()
    u = [int.from_bytes(digest[i : i + 4], "big") / 2**32 for i in range(8, 32, 4)]
    return SymbolModel(
        seed=int.from_bytes(digest[:8], "big"),
        p0=float(np.exp(np.log(30) + u[0] * (np.log(400) - np.log(30)))),
        mu=-0.02 + 0.17 * u[1],
        sigma=0.15 + 0.35 * u[2],
        base_volume=float(np.exp(np.log(1e6) + u[3] * (np.log(5e7) - np.log(1e6)))),
        dividend_yield=0.0 if u[4] < 0.3 else 0.03 * u[4],
        dividend_phase=int(u[5] * 63),
    )


@lru_cache(maxsize=1)
def _schedule() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(session days, open ns, close ns, hourly bars per session) of every known NYSE session."""
    sched = nyse().schedule
    days = sched.index.values.astype("datetime64[D]")
    opens = pd.DatetimeIndex(sched["open"]).tz_convert("UTC").as_unit("ns").asi8
    closes = pd.DatetimeIndex(sched["close"]).tz_convert("UTC").as_unit("ns").asi8
    counts = -((opens - closes) // HOUR_NS)  # ceil((close - open) / 1h)
    return days, opens, closes, counts


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64 arrays wrap silently, which is what a hash wants)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform(seed: int, index: np.ndarray, stream: np.ndarray | int) -> np.ndarray:
    idx = np.asarray(index, dtype=np.uint64)
    st = np.broadcast_to(np.asarray(stream, dtype=np.uint64), idx.shape)
    x = _mix(np.full(idx.shape, seed, dtype=np.uint64) ^ _mix(idx * np.uint64(1_000_003) + st))
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _normal(seed: int, index: np.ndarray, stream: np.ndarray | int) -> np.ndarray:
    """Standard normals, a pure function of (seed, index, stream) — Box–Muller on two hashes."""
    stream = np.asarray(stream, dtype=np.int64) * 2
    u1 = _uniform(seed, index, stream)
    u2 = _uniform(seed, index, stream + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def default_asof() -> pd.Timestamp:
    """MFS_SYNTHETIC_ASOF (any timestamp pandas parses; naive means UTC), else the store's pinned
    clock MFS_CLOCK (a drill pins one clock for the market and the store), else now."""
    raw = os.environ.get("MFS_SYNTHETIC_ASOF", "").strip() or os.environ.get("MFS_CLOCK", "").strip()
    return _utc(raw) if raw else pd.Timestamp.now(tz="UTC")


def _utc(value: TimeLike) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.DatetimeIndex([], tz="UTC"),
            "open": [],
            "high": [],
            "low": [],
            "close": [],
            "adj_close": [],
            "volume": np.array([], dtype=np.int64),
        }
    )


def _hourly_sessions(model: SymbolModel, d_lo: int, d_hi: int, asof_ns: int) -> tuple[np.ndarray, ...]:
    """Hourly bars of sessions d_lo..d_hi (indices into _schedule), cut at ``asof_ns``.

    Returns (session index per bar, start ns, open, high, low, close, volume) as flat arrays.
    """
    days, opens, closes, counts = _schedule()
    seed = model.seed
    daily_sigma = model.sigma / np.sqrt(252.0)
    ref = int(np.searchsorted(days, REFERENCE_SESSION))
    top = max(d_hi, ref)
    idx_all = np.arange(top + 1)
    returns = model.mu / 252.0 - daily_sigma**2 / 2 + daily_sigma * _normal(seed, idx_all, 0)
    log_close_all = np.cumsum(returns)
    log_close_all += np.log(model.p0) - log_close_all[ref]

    sess = np.arange(d_lo, d_hi + 1)
    log_close = log_close_all[sess]
    prev_close = np.where(sess > 0, log_close_all[np.maximum(sess - 1, 0)], log_close - returns[sess])
    log_open = prev_close + 0.25 * daily_sigma * _normal(seed, sess, 1)

    k = counts[sess]
    n = int(k.sum())
    bar_sess = np.repeat(sess, k)
    first = np.repeat(np.cumsum(k) - k, k)
    slot = np.arange(n) - first  # 0..k-1 within the session
    kk = np.repeat(k, k).astype(np.float64)
    step = daily_sigma * 0.8 / np.sqrt(kk) * _normal(seed, bar_sess, 10 + slot)
    walk = np.cumsum(step)
    walk -= np.repeat(walk[np.cumsum(k) - k] - step[np.cumsum(k) - k], k)  # restart per session
    walk_end = np.repeat(walk[np.cumsum(k) - 1], k)
    frac = (slot + 1) / kk
    lo_, lc_ = np.repeat(log_open, k), np.repeat(log_close, k)
    path = lo_ + (lc_ - lo_) * frac + (walk - frac * walk_end)  # Brownian bridge; last = close
    prev_path = np.where(slot == 0, lo_, np.roll(path, 1))

    wick = daily_sigma * 0.25 / np.sqrt(kk)
    up = np.abs(_normal(seed, bar_sess, 30 + slot)) * wick
    down = np.abs(_normal(seed, bar_sess, 50 + slot)) * wick
    centre = (slot - (kk - 1) / 2) / np.maximum((kk - 1) / 2, 1)
    weight = (1 + 0.8 * centre**2) * np.exp(0.2 * _normal(seed, bar_sess, 70 + slot))
    day_volume = model.base_volume * np.exp(0.35 * _normal(seed, sess, 2))
    weight_sum = np.bincount(bar_sess - d_lo, weights=weight, minlength=len(sess))
    volume = np.repeat(day_volume / weight_sum, k) * weight

    start = np.repeat(opens[sess], k) + slot * HOUR_NS
    end = np.minimum(start + HOUR_NS, np.repeat(closes[sess], k))
    keep = start < asof_ns
    # The bar containing asof is partial: part-way along its path, a fraction of its volume.
    part = np.clip((asof_ns - start) / (end - start), 0.0, 1.0)
    path = prev_path + (path - prev_path) * part
    up, down, volume = up * part, down * part, volume * part
    o, c = np.exp(prev_path), np.exp(path)
    h = np.maximum(o, c) * np.exp(up)
    lo = np.minimum(o, c) * np.exp(-down)
    # Rounding is monotone, so low <= open/close <= high survives it; open = previous close exactly.
    o, h, lo, c = (np.round(a, 4) for a in (o, h, lo, c))
    o = np.where(slot == 0, o, np.roll(c, 1))
    vol = np.floor(volume).astype(np.int64)
    return tuple(a[keep] for a in (bar_sess, start, o, h, lo, c, vol))


def _is_ex_date(model: SymbolModel, sess: np.ndarray) -> np.ndarray:
    """Whether each session (index into _schedule) is an ex-dividend date: one a quarter."""
    return ((sess + model.dividend_phase) % 63 == 0) & (sess > 0)


def _adjustment(model: SymbolModel, sess: np.ndarray, asof_session: int) -> np.ndarray:
    """Yahoo-style dividend adjustment factor of each session's close, as seen at ``asof``."""
    if model.dividend_yield == 0:
        return np.ones(len(sess))
    is_ex = _is_ex_date(model, np.arange(asof_session + 1))
    passed = np.cumsum(is_ex)  # ex-dates at or before each session
    later = passed[-1] - passed[np.minimum(sess, asof_session)]  # ex-dates after the bar, by asof
    return (1 - model.dividend_yield / 4) ** later


def synthetic_bars(
    symbol: str, interval: str, start: TimeLike, end: TimeLike, asof: TimeLike | None = None
) -> pd.DataFrame:
    """Bars of ``symbol`` whose label ts is in [start, end), as known at ``asof``.

    Columns: ts (UTC; hourly = bar start, daily = ``mfs.calendar.daily_bar_label``), open, high,
    low, close, adj_close (NaN for 1h, like Yahoo), volume (int64).
    """
    check_interval(interval)
    start, end = _utc(start), _utc(end)
    asof = _utc(asof) if asof is not None else default_asof()
    days, opens, _closes, _counts = _schedule()
    model = symbol_model(symbol)
    # Sessions that can hold a bar labelled in [start, end): a daily label is NY midnight, at
    # most ~5 h before the open, so widen by a day on each side and filter on the label below.
    lo_ns = start.value - 86_400_000_000_000
    hi_ns = min(end.value, asof.value) + 86_400_000_000_000
    d_lo = int(np.searchsorted(opens, lo_ns, side="left"))
    d_hi = int(np.searchsorted(opens, min(hi_ns, asof.value), side="left")) - 1
    if d_hi < d_lo:
        return _empty()
    bar_sess, starts, o, h, lo, c, vol = _hourly_sessions(model, d_lo, d_hi, asof.value)
    if interval == "1h":
        frame = pd.DataFrame(
            {
                "ts": pd.DatetimeIndex(starts.astype("datetime64[ns]")).tz_localize("UTC"),
                "open": o,
                "high": h,
                "low": lo,
                "close": c,
                "adj_close": np.nan,
                "volume": vol,
            }
        )
    else:
        if len(bar_sess) == 0:
            return _empty()
        cut = np.flatnonzero(np.diff(bar_sess)) + 1
        heads = np.concatenate([[0], cut])
        tails = np.concatenate([cut, [len(bar_sess)]]) - 1
        sess = bar_sess[heads]
        close = c[tails]
        asof_session = int(np.searchsorted(opens, asof.value, side="right")) - 1  # adjusted as Yahoo is at asof
        adj = np.round(close * _adjustment(model, sess, asof_session), 4)
        labels = pd.DatetimeIndex(days[sess]).tz_localize(NY).tz_convert("UTC")
        frame = pd.DataFrame(
            {
                "ts": labels.as_unit("ns"),
                "open": o[heads],
                "high": np.maximum.reduceat(h, heads),
                "low": np.minimum.reduceat(lo, heads),
                "close": close,
                "adj_close": adj,
                "volume": np.add.reduceat(vol, heads),
            }
        )
    mask = (frame["ts"] >= start) & (frame["ts"] < end)
    return frame.loc[mask].reset_index(drop=True)


def synthetic_dividends(symbol: str, start: TimeLike, end: TimeLike, asof: TimeLike | None = None) -> pd.DataFrame:
    """The quarterly dividends behind ``synthetic_bars``' adj_close: one row per ex-date session
    whose daily label is in [start, end) and whose session has opened by ``asof`` (Yahoo
    announces none ahead). Columns: ts (the ex-date's daily bar label, UTC), amount = the
    previous session's close × dividend_yield / 4, rounded to 4 decimals — so Yahoo's factor
    1 - amount / previous close reproduces the adj_close step to rounding. No rows when
    the symbol's dividend_yield is 0."""
    start, end = _utc(start), _utc(end)
    asof = _utc(asof) if asof is not None else default_asof()
    model = symbol_model(symbol)
    _days, opens, _closes, _counts = _schedule()
    empty = pd.DataFrame({"ts": pd.DatetimeIndex([], tz="UTC"), "amount": np.array([], dtype=float)})
    asof_session = int(np.searchsorted(opens, asof.value, side="right")) - 1
    if model.dividend_yield == 0 or asof_session < 1:
        return empty
    sess = np.arange(1, asof_session + 1)
    labels = _daily_labels()
    ex = sess[_is_ex_date(model, sess) & (labels[sess] >= start.value) & (labels[sess] < end.value)]
    if len(ex) == 0:
        return empty
    # The previous sessions' closes as synthetic_bars serves them (complete: their ex-date opened).
    first, last = (pd.Timestamp(labels[i], tz="UTC") for i in (ex[0] - 1, ex[-1]))
    daily = synthetic_bars(symbol, "1d", first, last, asof)
    close = pd.Series(daily["close"].to_numpy(dtype=float), index=pd.DatetimeIndex(daily["ts"]).as_unit("ns").asi8)
    previous = close.reindex(labels[ex - 1]).to_numpy()
    return pd.DataFrame(
        {
            "ts": pd.DatetimeIndex(labels[ex].astype("datetime64[ns]")).tz_localize("UTC"),
            "amount": np.round(previous * model.dividend_yield / 4, 4),
        }
    )


@lru_cache(maxsize=1)
def _daily_labels() -> np.ndarray:
    """Every session's daily bar label (New York midnight) in UTC nanoseconds."""
    days = _schedule()[0]
    return pd.DatetimeIndex(days).tz_localize(NY).tz_convert("UTC").as_unit("ns").asi8


def synthetic_market(
    symbols: list[str], interval: str, start: TimeLike, end: TimeLike, asof: TimeLike | None = None
) -> pd.DataFrame:
    """``synthetic_bars`` of several symbols in one frame with a ``symbol`` column."""
    asof = _utc(asof) if asof is not None else default_asof()
    frames = [synthetic_bars(s, interval, start, end, asof).assign(symbol=s) for s in symbols]
    return pd.concat(frames, ignore_index=True) if frames else _empty().assign(symbol=[])
