"""Pure indicator computation: OHLCV numpy arrays + UTC bar timestamps -> one array per feature.

No database, no processes: the worker calls this; tests call it directly. What is computed is the
definitions it is given (a ``FeatureSet``'s, ``mfs.features.model``), in their order — a TA-Lib
function called as TA-Lib's abstract interface describes it, or an expression of the safe language —
plus the built-in calendar columns. This module adds what TA-Lib does not do:

* degenerate input -> NaN (stored NULL). TA-Lib returns 0 where a denominator is zero (RSI,
  stochastics, Williams %R, CCI, DI/ADX, MFI), which would store a plausible-looking wrong value;
  the masks below turn exactly those cases into NaN, for whatever periods a definition chooses.
* anchoring of running sums and products (OBV, AD: off by a constant; NVI, PVI: by a factor —
  measured per definition, ``mfs.features.probes``): their level depends on where the computation
  starts. An incremental run starts inside the history and passes ``anchors`` = the stored value
  of its first bar; the result then equals a computation from the symbol's first bar (sums of
  integer volumes are exact in float64 below 2**53). ADOSC is path-dependent too but a difference
  of two EMAs of AD, so a constant offset cancels: no anchor.
* positions (MAXINDEX …) as bars since the position, the latest of equal values, and a NaN inside
  a fed-in feature splitting the bars into runs computed separately: both so that a value does
  not depend on where the computation started.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import talib
import talib.abstract

from mfs.errors import FeatureError
from mfs.features.model import BUILTIN, Definition
from mfs.features.rolling import (
    MAX,
    MIN,
    SUM,
    TRANGE,
    compiled,
    rolling_std,  # noqa: F401  # re-exported: the engine's two-pass std
)
from mfs.market import NY

Masks = Callable[[Definition, Mapping[str, np.ndarray]], np.ndarray | None]


def positional(values: np.ndarray) -> np.ndarray:
    """An index output (a position in the computed array) as bars since that position."""
    return np.arange(len(values), dtype=np.float64) - values


def rebase(values: np.ndarray, kind: str, anchor: float) -> np.ndarray:
    """``values`` of a window continued from ``anchor``, the stored value of its first bar."""
    if kind == "add":
        return values - values[0] + anchor
    if kind == "scale":
        return values / values[0] * anchor
    return values


def _check_inputs(ts: pd.DatetimeIndex, arrays: dict[str, np.ndarray], bounds: Sequence[int]) -> None:
    n = len(ts)

    def bar(i: int) -> str:  # the i-th bar of all, as its series counts it
        series = int(np.searchsorted(bounds, i, side="right")) - 1
        return f"bar {i - bounds[series]}" + (f" of series {series}" if len(bounds) > 2 else "")

    for name, arr in arrays.items():
        if arr.shape != (n,):
            raise FeatureError(f"input {name}: expected {n} values, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise FeatureError(f"input {name}: non-finite value {float(arr[bad])!r} at {bar(bad)} ({ts[bad]})")
    for name in ("open", "high", "low", "close"):
        if (arrays[name] <= 0).any():
            bad = int(np.flatnonzero(arrays[name] <= 0)[0])
            raise FeatureError(f"input {name}: price must be > 0, got {float(arrays[name][bad])!r} at {bar(bad)}")
    if (arrays["volume"] < 0).any():
        raise FeatureError("input volume: negative volume")
    if n > 1:
        increasing = np.diff(ts.asi8) > 0
        increasing[np.asarray(bounds[1:-1], dtype=np.int64) - 1] = True  # a series may start before the last ended
        if not increasing.all():
            raise FeatureError("input ts: bar timestamps must be strictly increasing")


def _flat(high: np.ndarray, low: np.ndarray, period: int) -> np.ndarray:
    """True where the highest high equals the lowest low over the last ``period`` bars."""
    with np.errstate(invalid="ignore"):
        return MAX(high, period) == MIN(low, period)


def _any_last(mask: np.ndarray, period: int) -> np.ndarray:
    """True where ``mask`` held on any of the last ``period`` bars."""
    return MAX(mask.astype(np.float64), period) > 0


def _lagged(values: np.ndarray) -> np.ndarray:
    """``values`` one bar later: NaN at the first bar."""
    return np.concatenate(([np.nan], values[:-1]))


def _param(d: Definition, name: str) -> int:
    return int(d.normalized["params"][name])


def _no_change(d: Definition, a: Mapping[str, np.ndarray]) -> np.ndarray:
    return MAX(np.abs(a["close"] - _lagged(a["close"])), _param(d, "timeperiod")) == 0  # NaN: False


def _stochf(d: Definition, a: Mapping[str, np.ndarray]) -> np.ndarray:
    flat = _flat(a["high"], a["low"], _param(d, "fastk_period"))
    return flat if d.output == 0 else _any_last(flat, _param(d, "fastd_period"))


def _flat_range(d: Definition, a: Mapping[str, np.ndarray]) -> np.ndarray:
    return _flat(a["high"], a["low"], _param(d, "timeperiod"))


def _flat_typical(d: Definition, a: Mapping[str, np.ndarray]) -> np.ndarray:
    period = _param(d, "timeperiod")
    return MAX(a["typical"], period) == MIN(a["typical"], period)


def _no_range(d: Definition, a: Mapping[str, np.ndarray]) -> np.ndarray:
    return MAX(TRANGE(a["high"], a["low"], a["close"]), _param(d, "timeperiod")) == 0


def _no_flow(d: Definition, a: Mapping[str, np.ndarray]) -> np.ndarray:
    # TA-Lib's MFI returns 0 when the window's money flow is below 1 (currency unit × shares);
    # a typical-price change below 1e-14 is a tie for TA-Lib.
    typical = a["typical"]
    flow = np.where(np.abs(typical - _lagged(typical)) >= 1e-14, typical * a["volume"], 0.0)
    return ~(SUM(flow, _param(d, "timeperiod")) >= 1.0)


# Where each function's value is 0/0 and TA-Lib reports 0: those bars are NULL.
DEGENERATE: dict[str, Masks] = {
    "RSI": _no_change,
    "STOCHF": _stochf,
    "WILLR": _flat_range,
    "CCI": _flat_typical,
    "PLUS_DI": _no_range,
    "MINUS_DI": _no_range,
    "ADX": _no_range,
    "MFI": _no_flow,
}


def _talib_values(
    d: Definition,
    columns: Mapping[str, np.ndarray],
    bars: Mapping[str, np.ndarray],
    cache: dict[tuple, Any],
    anchors: Sequence[Mapping[str, float]],
    bounds: Sequence[int],
) -> np.ndarray:
    """One TA-Lib output from ``columns`` (bars and the features computed so far), called for each
    series (``bounds``) on its own; calls shared by several columns (MACD, STOCHF) run once.
    ``bars`` (with ``typical``) feed the degenerate masks; ``anchors``: per series, its running sums."""
    assert d.function is not None
    segments = [(lo, hi) for lo, hi in itertools.pairwise(bounds) if hi > lo]
    key = (d.function, d.inputs, d.args)
    if key not in cache:
        cache[key] = _series_outputs(d, [np.ascontiguousarray(columns[name]) for name in d.inputs], segments)
    out = cache[key][d.output].copy()
    mask = DEGENERATE.get(d.function)
    if mask is not None and d.inputs == _default_inputs(d.function):  # rules about bars, not another column
        # One mask over every series at once: a window reaching into the series before only
        # covers a bar within the function's look-back, whose value is NaN already (each mask's
        # window is at most that look-back; test_properties checks it on flat bars). Per series
        # they cost 0.1 ms a symbol: 100 symbols of 297 bars took 0.49 ms a symbol, 0.39 without.
        out[mask(d, bars)] = np.nan
    if d.anchoring == "index":
        for lo, hi in segments:
            out[lo:hi] = positional(_latest_of_ties(out[lo:hi], columns[d.inputs[0]][lo:hi], d.lookback + 1))
    if d.warmup:  # integer outputs (patterns, indexes) are 0 there, not NaN
        starts = np.array([lo for lo, _ in segments], dtype=np.int64)
        ends = np.array([hi for _, hi in segments], dtype=np.int64)
        warm = (starts[:, None] + np.arange(d.warmup)).ravel()
        out[warm[warm < np.repeat(ends, d.warmup)]] = np.nan
    if d.cumulative:
        for (lo, hi), series_anchors in zip(itertools.pairwise(bounds), anchors, strict=True):
            if hi > lo and d.name in series_anchors:  # continued from the stored value of the series' first bar
                out[lo:hi] = rebase(out[lo:hi], d.anchoring, float(series_anchors[d.name]))
    return out


def _series_outputs(d: Definition, series: list[np.ndarray], segments: list[tuple[int, int]]) -> list[np.ndarray]:
    """Every output of ``d``'s function, called on each segment of ``series`` alone."""
    # The function object the abstract interface calls itself, called as it calls it
    # (positional inputs, then every parameter): no per-call bookkeeping, and none of the
    # abstract object's thread-local state, which a new thread would see reset to defaults.
    function, n_outputs, _inputs = _described(d.function)
    outputs = [np.full(len(series[0]), np.nan) for _ in range(n_outputs)]
    has_nan = np.zeros(len(segments), dtype=bool)
    for values in series:
        nan = np.isnan(values)
        if nan.any():
            has_nan |= np.add.reduceat(nan, [lo for lo, _ in segments]) > 0
    for (lo, hi), split in zip(segments, has_nan, strict=True):
        parts: Sequence[np.ndarray]
        if split:
            index = d.anchoring == "index"
            parts = _outputs(function, [s[lo:hi] for s in series], d.args, d.lookback, n_outputs, index=index)
        else:
            result = function(*(s[lo:hi] for s in series), *d.args)
            parts = result if isinstance(result, tuple) else (result,)
        for out, part in zip(outputs, parts, strict=True):
            out[lo:hi] = part  # as float64: integer outputs (patterns, positions) are exact
    return outputs


def _latest_of_ties(index: np.ndarray, values: np.ndarray, window: int) -> np.ndarray:
    """Positions TA-Lib chose among equal values made the latest such position in the window:
    which of two equal minima TA-Lib reports depends on where its scan started."""
    out = index.copy()
    valid = np.flatnonzero(~np.isnan(index))
    if not len(valid):
        return out
    chosen = values[index[valid].astype(np.int64)]
    found = np.zeros(len(valid), dtype=bool)
    for back in range(window):  # newest first: the first equal value found is the latest
        at = valid - back
        hit = ~found & (at >= 0) & (values[np.maximum(at, 0)] == chosen)
        out[valid[hit]] = at[hit]
        found |= hit
    return out


def _outputs(
    function: Any, series: list[np.ndarray], args: tuple, lookback: int, n_outputs: int, *, index: bool
) -> list[np.ndarray]:
    """Every output of ``function`` as float64 arrays. A NaN in an input (a feature fed in as
    input, NaN where it is undefined) splits the bars into runs computed separately, each with its
    own warm-up: in one call TA-Lib would carry the NaN into every later value (running sums,
    smoothing) — or not, for an incremental run that starts after it. ``index``: outputs are
    positions in the array passed, made positions in ``series``."""
    bad = np.zeros(len(series[0]), dtype=bool)
    for s in series:
        bad |= np.isnan(s)
    if not bad.any():
        result = function(*series, *args)
        return [np.asarray(r, dtype=np.float64) for r in (result if isinstance(result, tuple) else (result,))]
    edges = np.flatnonzero(np.diff(np.concatenate(([0], (~bad).astype(np.int8), [0])))).reshape(-1, 2)
    outs: list[np.ndarray] = []
    for lo, hi in edges:
        result = function(*(np.ascontiguousarray(s[lo:hi]) for s in series), *args)
        parts = result if isinstance(result, tuple) else (result,)
        outs = outs or [np.full(len(bad), np.nan) for _ in parts]
        for out, part in zip(outs, parts, strict=True):
            values = np.asarray(part, dtype=np.float64) + (lo if index else 0)
            values[:lookback] = np.nan
            out[lo:hi] = values
    return outs or [np.full(len(bad), np.nan) for _ in range(n_outputs)]  # no bar without a NaN input


@functools.cache
def _described(function: str) -> tuple[Any, int, tuple[str, ...]]:
    """TA-Lib's compiled function, its number of outputs and its default inputs, looked up once per
    process: building an abstract Function costs ~27 µs, 57 times per symbol (1.5 ms of a one-bar
    incremental update's 4.4 ms, measured)."""
    described = talib.abstract.Function(function)  # type: ignore[attr-defined]  # absent from .pyi
    names = described.input_names.values()
    inputs = tuple(n for series in names for n in (series if isinstance(series, list) else [series]))
    return compiled(described.func_object), len(described.output_names), inputs


def default_inputs(function: str) -> tuple[str, ...]:
    """The bar columns a TA-Lib function reads when a definition does not name its input."""
    return _described(function)[2]


_default_inputs = default_inputs


def _needed(definitions: Sequence[Definition], only: Collection[str] | None) -> list[Definition]:
    """``definitions`` restricted to ``only`` and everything they read (all when ``only`` is None)."""
    if only is None:
        return list(definitions)
    by_name = {d.name: d for d in definitions}
    want: set[str] = set()
    todo = [n for n in only if n in by_name]
    while todo:
        name = todo.pop()
        if name not in want:
            want.add(name)
            todo.extend(by_name[name].depends_on)
    return [d for d in definitions if d.name in want]


def _utc_index(ts: np.ndarray) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(ts)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def _calendar_features(ts_index: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    local = ts_index.tz_convert(NY)
    return {"hour_et": np.asarray(local.hour, dtype=np.int64), "dow_et": np.asarray(local.dayofweek, dtype=np.int64)}


def compute(
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    *,
    obv_anchor: float | None = None,
    anchors: Mapping[str, float] | None = None,
    definitions: Sequence[Definition],
    only: Collection[str] | None = None,
) -> dict[str, np.ndarray]:
    """Every feature (or those in ``only``) for consecutive bars of one symbol and interval, oldest first.

    ``ts``: bar labels in UTC (datetime64 or tz-aware DatetimeIndex). Returns float64 arrays
    (int64 for hour_et/dow_et) with NaN where a value is undefined, in definition order. ``anchors``
    maps running-sum features to their stored value at the first bar (``obv_anchor``: OBV's).
    Raises FeatureError on bad input (non-finite or non-positive prices, negative volume,
    unordered timestamps).
    """
    anchors = dict(anchors or {})
    if obv_anchor is not None:
        anchors["obv"] = obv_anchor
    bars = Bars(ts, open_, high, low, close, volume)
    return compute_many(bars, (0, len(ts)), anchors=[anchors], only=only, definitions=definitions)


class Bars(NamedTuple):
    """Bar arrays of one length: UTC labels (datetime64 or tz-aware DatetimeIndex) and OHLCV."""

    ts: Any
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def compute_many(
    bars: Bars,
    bounds: Sequence[int],
    *,
    anchors: Sequence[Mapping[str, float]] | None = None,
    definitions: Sequence[Definition],
    only: Collection[str] | None = None,
    rows: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """``compute`` of several series at once: ``bars`` holds them end to end, series i from
    ``bounds[i]`` to ``bounds[i + 1]`` (``anchors[i]``: its running sums). Every value is the one
    ``compute`` of that series alone gives, bit for bit: TA-Lib is called per series, the rest of
    the maths runs once over all of them (a per-series call of it cost ~1 ms, mostly numpy's
    per-call overhead on a few hundred bars). ``rows``: the positions of the values wanted
    (default: every bar), so that the calendar columns and the final checks cover only those —
    an incremental batch keeps one bar of a few hundred read."""
    anchors = [{}] * (len(bounds) - 1) if anchors is None else anchors
    ts_index = _utc_index(bars.ts)
    arrays: dict[str, np.ndarray] = {
        name: np.ascontiguousarray(getattr(bars, name), dtype=np.float64)
        for name in ("open", "high", "low", "close", "volume")
    }
    _check_inputs(ts_index, arrays, bounds)
    names = [d.name for d in definitions] + list(BUILTIN)
    wanted = names if only is None else [n for n in names if n in set(only)]
    if len(ts_index) == 0:
        return {n: np.empty(0, dtype=np.int64 if n in BUILTIN else np.float64) for n in wanted}
    inputs = dict(arrays)
    arrays["typical"] = (arrays["high"] + arrays["low"] + arrays["close"]) / 3.0
    out: dict[str, np.ndarray] = {}
    cache: dict[tuple, Any] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for d in _needed(definitions, only):
            if d.expression is not None:
                out[d.name] = d.expression.evaluate(inputs, out, bounds)
            else:
                out[d.name] = _talib_values(d, {**arrays, **out}, arrays, cache, anchors, bounds)
    if rows is not None:
        out = {name: values[rows] for name, values in out.items()}
    out.update(_calendar_features(ts_index if rows is None else ts_index[rows]))
    for arr in out.values():
        if arr.dtype.kind == "f":
            arr[~np.isfinite(arr)] = np.nan  # belt and braces: never store ±inf
    return {n: out[n] for n in wanted}
