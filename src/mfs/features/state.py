"""Recurrence state carried from one run to the next: the features whose next value follows from a
few stored numbers and the new bar, the way TA-Lib's own loop computes it.

TA-Lib's exponential and Wilder smoothing (EMA, MACD, RSI, ATR, NATR, ADX, PLUS_DI, MINUS_DI)
forgets where a computation started only slowly: the look-back path reads 400 bars before a new
one so that its value agrees with the full history to ~1e-12 (``mfs.features.probes``). Their
whole past is a handful of numbers — TA-Lib's running averages after the last bar and the last
bar's prices — so a run that has them computes the new bar with TA-Lib's operations, in TA-Lib's
order (values agree with TA-Lib's continued loop to a few ulps: 1.2e-13 relative at most over
1,500 bars of the probe walk, the errors do not grow: the smoothing shrinks them).

The state after a series' last bar is *recovered* from TA-Lib's outputs over the bars a look-back
(or full) run computed, never from a loop of ours over the history, so it is exactly the state
TA-Lib had: EMA and ATR are their own output; MACD's two averages are TA-Lib EMAs seeded where
MACD seeds them; RSI's average gain and loss are ATRs of the gains and losses (ATR(high=gain,
low=0, close=0) is the same Wilder sum, seed and operations as RSI's); the directional
movements are PLUS_DM/MINUS_DM, the true-range sum follows from a DI (to 1 ulp), ADX is its output.

A definition is carried (``carried``) when its function is one of these, it reads bar columns and
no other definition reads it (a reader needs its past values, which the state does not hold);
every other definition is computed from the look-back window, whose length is then the largest
``memory`` among them, not among all (docs/features.md, "Incremental runs").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

import numpy as np
import talib

from mfs.features.expressions import BAR_INPUTS
from mfs.features.model import Definition, FeatureSet

# Numbers of state per function (prices of the previous bar included).
WIDTH = {"EMA": 1, "MACD": 3, "RSI": 3, "ATR": 2, "NATR": 2, "ADX": 7, "PLUS_DI": 7, "MINUS_DI": 7}
_HLC = ("high", "low", "close")
# TA-Lib's TA_IS_ZERO: |v| < 1e-14 counts as zero (a zero denominator gives 0, not a division).
_EPSILON = 1e-14


def carried(features: FeatureSet) -> tuple[Definition, ...]:
    """The definitions of ``features`` computed from a stored state on the incremental path."""
    read = {name for d in features.definitions for name in d.depends_on}
    return tuple(
        d
        for d in features.definitions
        if d.function in WIDTH
        and d.name not in read
        and all(name in BAR_INPUTS for name in d.inputs)
        and all(int(a) >= 2 for a in d.args)  # a period of 1 is another code path in TA-Lib
    )


def window(features: FeatureSet) -> int:
    """Bars of look-back the definitions NOT carried need (``memory``), and at least the windows
    the carried ones' NULL rules read (a 14-bar RSI is NULL when the close did not move in 14 bars)."""
    kept = {d.name for d in carried(features)}
    rest = max((d.memory for d in features.definitions if d.name not in kept), default=0)
    masks = max((d.lookback + 1 for d in features.definitions if d.name in kept), default=0)
    return max(rest, masks)


def signature(features: FeatureSet) -> str:
    """What a stored state is the state of: the carried definitions' versions, in order."""
    payload = [(d.name, d.version) for d in carried(features)]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:12]


def _macd_periods(d: Definition) -> tuple[int, int, int]:
    fast, slow, signal = (int(a) for a in d.args)
    return (slow, fast, signal) if slow < fast else (fast, slow, signal)  # TA-Lib swaps them too


def _k(period: int) -> float:
    return 2.0 / (period + 1)  # TA-Lib's PER_TO_K


def recover(d: Definition, bars: Mapping[str, np.ndarray]) -> np.ndarray:
    """The state TA-Lib has after the last of ``bars`` (one series, as the computation read it:
    from its first bar or from a look-back window); NaN where TA-Lib has none yet (warm-up)."""
    fn = d.function
    if fn == "EMA":
        return np.array([talib.EMA(bars[d.inputs[0]], int(d.args[0]))[-1]])
    if fn == "MACD":
        x = bars[d.inputs[0]]
        fast, slow, _ = _macd_periods(d)
        _, macd_signal, _ = talib.MACD(x, *d.args)
        # MACD seeds its fast EMA with the mean of the `fast` values ending where the slow one's seed ends.
        fast_ema = talib.EMA(x[slow - fast :], fast)[-1] if len(x) > slow - fast else np.nan
        return np.array([fast_ema, talib.EMA(x, slow)[-1], macd_signal[-1]])
    if fn == "RSI":
        x, n = bars[d.inputs[0]], int(d.args[0])
        diff = np.concatenate(([0.0], np.diff(x)))
        zeros = np.zeros(len(x))
        gain = talib.ATR(np.where(diff >= 0, diff, 0.0), zeros, zeros, n)[-1]
        loss = talib.ATR(np.where(diff < 0, -diff, 0.0), zeros, zeros, n)[-1]
        return np.array([gain, loss, x[-1]])
    high, low, close = (bars[name] for name in _HLC)
    n = int(d.args[0])
    if fn in ("ATR", "NATR"):
        return np.array([talib.ATR(high, low, close, n)[-1], close[-1]])
    plus_dm, minus_dm = talib.PLUS_DM(high, low, n)[-1], talib.MINUS_DM(high, low, n)[-1]
    plus_di, minus_di = talib.PLUS_DI(high, low, close, n)[-1], talib.MINUS_DI(high, low, close, n)[-1]
    # The true-range sum is no output of its own: DI = 100 * DM / TR. Unknown when both DI are 0.
    tr = 100.0 * plus_dm / plus_di if plus_di > 0 else 100.0 * minus_dm / minus_di if minus_di > 0 else np.nan
    adx = talib.ADX(high, low, close, n)[-1] if fn == "ADX" else 0.0
    return np.array([plus_dm, minus_dm, tr, adx, high[-1], low[-1], close[-1]])


def _true_range(high: np.ndarray, low: np.ndarray, prev_close: np.ndarray) -> np.ndarray:
    """TA-Lib's TRUE_RANGE, comparison by comparison."""
    out = high - low
    out = np.where(np.abs(prev_close - high) > out, np.abs(prev_close - high), out)
    return np.where(np.abs(prev_close - low) > out, np.abs(prev_close - low), out)


def _nonzero(v: np.ndarray) -> np.ndarray:
    return ~((v > -_EPSILON) & (v < _EPSILON))


def advance(d: Definition, state: np.ndarray, bar: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One bar of every lane (``state``: one row per series, ``bar``: that series' new bar):
    the definition's values and the states after it, with TA-Lib's operations in TA-Lib's order."""
    fn, s = d.function, state.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        if fn == "EMA":
            s[:, 0] = (bar[d.inputs[0]] - s[:, 0]) * _k(int(d.args[0])) + s[:, 0]
            return s[:, 0].copy(), s
        if fn == "MACD":
            return _advance_macd(d, s, bar[d.inputs[0]])
        if fn == "RSI":
            return _advance_rsi(int(d.args[0]), s, bar[d.inputs[0]])
        if fn in ("ATR", "NATR"):
            n = int(d.args[0])
            tr = _true_range(bar["high"], bar["low"], s[:, 1])
            s[:, 0] = (s[:, 0] * (n - 1) + tr) / n
            s[:, 1] = bar["close"]
            if fn == "ATR":
                return s[:, 0].copy(), s
            close = bar["close"]
            return np.where(_nonzero(close), (s[:, 0] / close) * 100.0, 0.0), s
        return _advance_directional(d, s, bar)


def _advance_macd(d: Definition, s: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fast, slow, signal = _macd_periods(d)
    s[:, 0] = (x - s[:, 0]) * _k(fast) + s[:, 0]
    s[:, 1] = (x - s[:, 1]) * _k(slow) + s[:, 1]
    macd = s[:, 0] - s[:, 1]
    s[:, 2] = (macd - s[:, 2]) * _k(signal) + s[:, 2]
    return (macd, s[:, 2].copy(), macd - s[:, 2])[d.output], s


def _advance_rsi(n: int, s: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    diff = x - s[:, 2]
    loss, gain = s[:, 1] * (n - 1), s[:, 0] * (n - 1)
    loss = np.where(diff < 0, loss - diff, loss)
    gain = np.where(diff < 0, gain, gain + diff)
    s[:, 0], s[:, 1], s[:, 2] = gain / n, loss / n, x
    total = s[:, 0] + s[:, 1]
    return np.where(_nonzero(total), 100.0 * (s[:, 0] / total), 0.0), s


def _advance_directional(d: Definition, s: np.ndarray, bar: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    n = int(d.args[0])
    high, low = bar["high"], bar["low"]
    diff_p, diff_m = high - s[:, 4], s[:, 5] - low
    plus_dm = s[:, 0] - s[:, 0] / n
    minus_dm = s[:, 1] - s[:, 1] / n
    s[:, 0] = np.where((diff_p > 0) & (diff_p > diff_m), plus_dm + diff_p, plus_dm)
    s[:, 1] = np.where((diff_m > 0) & (diff_p < diff_m), minus_dm + diff_m, minus_dm)
    s[:, 2] = s[:, 2] - s[:, 2] / n + _true_range(high, low, s[:, 6])
    s[:, 4], s[:, 5], s[:, 6] = high, low, bar["close"]
    tr = s[:, 2]
    has_range = _nonzero(tr)
    plus_di, minus_di = 100.0 * (s[:, 0] / tr), 100.0 * (s[:, 1] / tr)
    if d.function == "PLUS_DI":
        return np.where(has_range, plus_di, 0.0), s
    if d.function == "MINUS_DI":
        return np.where(has_range, minus_di, 0.0), s
    total = minus_di + plus_di
    moved = has_range & _nonzero(total)
    dx = 100.0 * (np.abs(minus_di - plus_di) / total)
    s[:, 3] = np.where(moved, (s[:, 3] * (n - 1) + dx) / n, s[:, 3])
    return s[:, 3].copy(), s


def advance_all(
    d: Definition, state: np.ndarray, bars: Mapping[str, np.ndarray], bounds: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Several new bars of several series (series i: ``bars[...][bounds[i]:bounds[i + 1]]``, its
    state ``state[i]``): every new bar's value, in the order of ``bars``, and each series' state
    after its last bar. The j-th new bars of all series are one vectorised step."""
    lo, hi = np.asarray(bounds[:-1]), np.asarray(bounds[1:])
    values = np.full(int(hi[-1]) if len(hi) else 0, np.nan)
    s = state.copy()
    for j in range(int((hi - lo).max()) if len(lo) else 0):
        lanes = np.flatnonzero(lo + j < hi)
        at = lo[lanes] + j
        out, s[lanes] = advance(d, s[lanes], {name: arr[at] for name, arr in bars.items()})
        values[at] = out
    return values, s
