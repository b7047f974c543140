"""Pure indicator computation: OHLCV numpy arrays + UTC bar timestamps -> one array per feature.

No database, no processes: the worker calls this; tests call it directly. Every column of
``spec.FEATURES`` is produced here and nothing else. TA-Lib does the maths (canonical Wilder/SMA
seeding, NaN during warm-up); this module adds what TA-Lib does not do:

* degenerate input -> NaN (stored NULL). TA-Lib returns 0 where a denominator is zero (RSI,
  stochastics, Williams %R, CCI, DI/ADX, MFI), which would store a plausible-looking wrong value;
  the masks below turn exactly those cases into NaN.
* OBV anchoring: OBV is a running sum, so its level depends on where the computation starts. An
  incremental run starts inside the history and passes ``obv_anchor`` = the stored OBV of its
  first bar; the result then equals a computation from the symbol's first bar exactly (sums of
  integer volumes are exact in float64 below 2**53).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import talib
import talib.abstract

from mfs.errors import FeatureError
from mfs.features.rolling import rolling_std
from mfs.features.spec import FEATURES, Feature
from mfs.market import NY


@dataclass(frozen=True)
class _TalibCall:
    """One TA-Lib call, laid out as TA-Lib's abstract interface describes the function."""

    function: Callable[..., np.ndarray | tuple[np.ndarray, ...]]
    inputs: tuple[str, ...]  # keys of the engine's input arrays, in the function's order
    args: tuple[Any, ...]  # every parameter in the function's order: the spec's value or TA-Lib's default
    features: tuple[tuple[str, int], ...]  # (column, index into the function's outputs)


def _talib_call(feature: Feature) -> _TalibCall:
    """The call of ``feature``: inputs, parameters and outputs as ``talib.abstract`` knows them."""
    info = talib.abstract.Function(feature.function)  # type: ignore[attr-defined]  # absent from TA-Lib's .pyi
    params = {k: v for k, v in feature.params.items() if k not in ("output", "input")}
    unknown = sorted(set(params) - set(info.parameters))
    if unknown:  # the abstract interface ignores unknown names; a typo must not mean "default"
        raise FeatureError(f"{feature.name}: {feature.function} has no parameter(s) {', '.join(unknown)}")
    info.parameters = params  # type-checked here; .parameters and .lookback now hold the spec's values
    inputs = [
        name for series in info.input_names.values() for name in (series if isinstance(series, list) else [series])
    ]
    if "input" in feature.params:
        if len(inputs) != 1:
            raise FeatureError(f"{feature.name}: 'input' replaces the single input of a one-input function")
        inputs = [feature.params["input"]]
    output = feature.params.get("output", 0)
    if (len(info.output_names) > 1 and "output" not in feature.params) or not 0 <= output < len(info.output_names):
        raise FeatureError(f"{feature.name}: choose one of the outputs {info.output_names} by index ('output')")
    # The function object the abstract interface calls itself, called as it calls it (positional
    # inputs, then every parameter): the same C call without per-call bookkeeping — and without
    # the abstract object's thread-local settings, which a new thread would see reset to defaults.
    return _TalibCall(info.func_object, tuple(inputs), tuple(info.parameters.values()), ((feature.name, output),))


def _talib_plan(features: list[Feature]) -> list[_TalibCall]:
    """One call per distinct (function, inputs, parameters): MACD and STOCHF feed several columns."""
    calls: dict[tuple, _TalibCall] = {}
    for feature in features:
        if feature.function == "numpy":
            continue
        call = _talib_call(feature)
        key = (feature.function, call.inputs, call.args)
        if key in calls:
            call = replace(calls[key], features=calls[key].features + call.features)
        calls[key] = call
    return list(calls.values())


_TALIB_PLAN = _talib_plan(FEATURES)


def _talib_features(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for call in _TALIB_PLAN:
        result = call.function(*(inputs[name] for name in call.inputs), *call.args)
        for name, index in call.features:
            out[name] = result if isinstance(result, np.ndarray) else result[index]
    return out


def _check_inputs(ts: pd.DatetimeIndex, arrays: dict[str, np.ndarray]) -> None:
    n = len(ts)
    for name, arr in arrays.items():
        if arr.shape != (n,):
            raise FeatureError(f"input {name}: expected {n} values, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise FeatureError(f"input {name}: non-finite value {float(arr[bad])!r} at bar {bad} ({ts[bad]})")
    for name in ("open", "high", "low", "close"):
        if (arrays[name] <= 0).any():
            bad = int(np.flatnonzero(arrays[name] <= 0)[0])
            raise FeatureError(f"input {name}: price must be > 0, got {float(arrays[name][bad])!r} at bar {bad}")
    if (arrays["volume"] < 0).any():
        raise FeatureError("input volume: negative volume")
    if n > 1 and not (np.diff(ts.asi8) > 0).all():
        raise FeatureError("input ts: bar timestamps must be strictly increasing")


def _flat(high: np.ndarray, low: np.ndarray, period: int) -> np.ndarray:
    """True where the highest high equals the lowest low over the last ``period`` bars."""
    with np.errstate(invalid="ignore"):
        return talib.MAX(high, period) == talib.MIN(low, period)


def _any_last(mask: np.ndarray, period: int) -> np.ndarray:
    """True where ``mask`` held on any of the last ``period`` bars."""
    return talib.MAX(mask.astype(np.float64), period) > 0


def _utc_index(ts: np.ndarray) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(ts)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def _float_inputs(open_, high, low, close, volume) -> dict[str, np.ndarray]:
    """The input arrays TA-Lib requires: float64 and contiguous (else it copies or refuses)."""
    return {
        name: np.ascontiguousarray(values, dtype=np.float64)
        for name, values in (("open", open_), ("high", high), ("low", low), ("close", close), ("volume", volume))
    }


def _lagged(values: np.ndarray) -> np.ndarray:
    """``values`` one bar later: NaN at the first bar."""
    return np.concatenate(([np.nan], values[:-1]))


def _numpy_features(
    inputs: dict[str, np.ndarray], out: dict[str, np.ndarray], prev_close: np.ndarray, typical: np.ndarray
) -> None:
    """The spec's "numpy" columns, from the inputs and the TA-Lib columns already in ``out``."""
    c, h, lo, v = inputs["close"], inputs["high"], inputs["low"], inputs["volume"]
    out["log_return_1"] = np.log(c / prev_close)
    sma20 = out["sma_20"]
    std20 = rolling_std(c, 20)
    out["bb_upper"] = upper = sma20 + 2.0 * std20
    out["bb_lower"] = lower = sma20 - 2.0 * std20
    band = upper - lower
    out["bb_width"] = band / sma20
    out["bb_pctb"] = np.where(band > 0, (c - lower) / band, np.nan)
    vol_sum = talib.SUM(v, 20)
    out["vwap_20"] = np.where(vol_sum > 0, talib.SUM(typical * v, 20) / vol_sum, np.nan)
    vsma = out["volume_sma_20"]
    out["volume_ratio_20"] = np.where(vsma > 0, v / vsma, np.nan)
    out["range_pct"] = 100.0 * (h - lo) / c
    out["volatility_20"] = np.full(len(c), np.nan)
    out["volatility_20"][1:] = rolling_std(out["return_1"][1:], 20)


def _null_degenerate_windows(
    inputs: dict[str, np.ndarray], out: dict[str, np.ndarray], prev_close: np.ndarray, typical: np.ndarray
) -> None:
    """TA-Lib reports 0 where the value is 0/0 (no change, a flat range, no flow); store NULL instead."""
    c, h, lo, v = inputs["close"], inputs["high"], inputs["low"], inputs["volume"]
    no_change_14 = talib.MAX(np.abs(c - prev_close), 14) == 0  # NaN compares False during warm-up
    out["rsi_14"][no_change_14] = np.nan
    flat_14 = _flat(h, lo, 14)
    out["stoch_k"][flat_14] = np.nan
    out["stoch_d"][_any_last(flat_14, 3)] = np.nan
    out["willr_14"][flat_14] = np.nan
    out["cci_20"][talib.MAX(typical, 20) == talib.MIN(typical, 20)] = np.nan
    true_range = talib.TRANGE(h, lo, c)
    no_range_14 = talib.MAX(true_range, 14) == 0
    for name in ("plus_di_14", "minus_di_14", "adx_14"):
        out[name][no_range_14] = np.nan
    # TA-Lib's MFI returns 0 when the window's money flow is below 1 (currency unit × shares).
    prev_typical = _lagged(typical)
    flow = np.where(np.abs(typical - prev_typical) >= 1e-14, typical * v, 0.0)  # TA-Lib: smaller is a tie
    out["mfi_14"][~(talib.SUM(flow, 14) >= 1.0)] = np.nan


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
) -> dict[str, np.ndarray]:
    """All features for consecutive bars of one symbol and interval, oldest first.

    ``ts``: bar labels in UTC (datetime64 or tz-aware DatetimeIndex). Returns float64 arrays
    (int64 for hour_et/dow_et) with NaN where a value is undefined. Raises FeatureError on bad
    input (non-finite or non-positive prices, negative volume, unordered timestamps).
    """
    ts_index = _utc_index(ts)
    inputs = _float_inputs(open_, high, low, close, volume)
    _check_inputs(ts_index, inputs)
    if len(ts_index) == 0:
        return {f.name: np.empty(0, dtype=np.int64 if f.pgtype == "int2" else np.float64) for f in FEATURES}

    out = _talib_features(inputs)
    c, h, lo = inputs["close"], inputs["high"], inputs["low"]
    with np.errstate(divide="ignore", invalid="ignore"):
        prev_close, typical = _lagged(c), (h + lo + c) / 3.0
        _numpy_features(inputs, out, prev_close, typical)
        _null_degenerate_windows(inputs, out, prev_close, typical)
    if obv_anchor is not None:
        # TA-Lib starts OBV at the first bar's volume; re-base it on the stored value of that bar.
        out["obv"] = out["obv"] - inputs["volume"][0] + float(obv_anchor)
    out.update(_calendar_features(ts_index))

    for arr in out.values():
        if arr.dtype.kind == "f":
            arr[~np.isfinite(arr)] = np.nan  # belt and braces: never store ±inf
    return {f.name: out[f.name] for f in FEATURES}
