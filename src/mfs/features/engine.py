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

import numpy as np
import pandas as pd
import talib

from mfs.errors import FeatureError
from mfs.features.spec import FEATURES, Feature
from mfs.market import NY



def _talib_output(feature: Feature, inputs: dict[str, np.ndarray]) -> np.ndarray:
    params = {k: v for k, v in feature.params.items() if k not in ("output", "input")}
    fn = getattr(talib, feature.function)
    if feature.function in ("ATR", "NATR", "ADX", "PLUS_DI", "MINUS_DI", "WILLR", "CCI", "STOCHF"):
        out = fn(inputs["high"], inputs["low"], inputs["close"], **params)
    elif feature.function == "MFI":
        out = fn(inputs["high"], inputs["low"], inputs["close"], inputs["volume"], **params)
    elif feature.function == "OBV":
        out = fn(inputs["close"], inputs["volume"])
    else:
        out = fn(inputs[feature.params.get("input", "close")], **params)
    if isinstance(out, tuple | list):
        out = out[feature.params["output"]]
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


def rolling_std(values: np.ndarray, period: int) -> np.ndarray:
    """Population std of each ``period``-bar window, two-pass per window (NaN before it fills).

    Why not TA-Lib STDDEV/BBANDS: they keep running sums of x and x² and take E[x²] - E[x]², which
    loses digits to cancellation when the spread is small next to the level (hourly prices) and
    makes the value depend on where the history starts; a per-window two-pass std is exact to a
    few ulps and identical whether computed from the first bar or from a look-back window.
    """
    out = np.full(len(values), np.nan)
    if len(values) >= period:
        windows = np.lib.stride_tricks.sliding_window_view(values, period)
        mean = windows.mean(axis=1)
        out[period - 1:] = np.sqrt(((windows - mean[:, None]) ** 2).mean(axis=1))
    return out


def _any_last(mask: np.ndarray, period: int) -> np.ndarray:
    """True where ``mask`` held on any of the last ``period`` bars."""
    return talib.MAX(mask.astype(np.float64), period) > 0


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
    ts_index = pd.DatetimeIndex(ts)
    ts_index = ts_index.tz_localize("UTC") if ts_index.tz is None else ts_index.tz_convert("UTC")
    inputs = {
        "open": np.ascontiguousarray(open_, dtype=np.float64),
        "high": np.ascontiguousarray(high, dtype=np.float64),
        "low": np.ascontiguousarray(low, dtype=np.float64),
        "close": np.ascontiguousarray(close, dtype=np.float64),
        "volume": np.ascontiguousarray(volume, dtype=np.float64),
    }
    _check_inputs(ts_index, inputs)
    n = len(ts_index)
    out: dict[str, np.ndarray] = {}
    if n == 0:
        return {f.name: np.empty(0, dtype=np.int64 if f.pgtype == "int2" else np.float64) for f in FEATURES}
    c, h, lo, v = inputs["close"], inputs["high"], inputs["low"], inputs["volume"]

    for feature in FEATURES:
        if feature.function == "numpy":
            continue
        out[feature.name] = _talib_output(feature, inputs)

    with np.errstate(divide="ignore", invalid="ignore"):
        prev = np.concatenate(([np.nan], c[:-1]))
        out["log_return_1"] = np.log(c / prev)
        sma20 = out["sma_20"]
        std20 = rolling_std(c, 20)
        out["bb_upper"] = upper = sma20 + 2.0 * std20
        out["bb_lower"] = lower = sma20 - 2.0 * std20
        band = upper - lower
        out["bb_width"] = band / sma20
        out["bb_pctb"] = np.where(band > 0, (c - lower) / band, np.nan)
        typical = (h + lo + c) / 3.0
        vol_sum = talib.SUM(v, 20)
        out["vwap_20"] = np.where(vol_sum > 0, talib.SUM(typical * v, 20) / vol_sum, np.nan)
        vsma = out["volume_sma_20"]
        out["volume_ratio_20"] = np.where(vsma > 0, v / vsma, np.nan)
        out["range_pct"] = 100.0 * (h - lo) / c
        out["volatility_20"] = np.full(n, np.nan)
        out["volatility_20"][1:] = rolling_std(out["return_1"][1:], 20)

        # Degenerate windows: TA-Lib reports 0 where the value is 0/0; store NULL instead.
        no_change_14 = talib.MAX(np.abs(c - prev), 14) == 0  # NaN compares False during warm-up
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
        prev_typical = np.concatenate(([np.nan], typical[:-1]))
        flow = np.where(np.abs(typical - prev_typical) >= 1e-14, typical * v, 0.0)  # TA-Lib: smaller is a tie
        out["mfi_14"][~(talib.SUM(flow, 14) >= 1.0)] = np.nan

    if obv_anchor is not None:
        # TA-Lib starts OBV at the first bar's volume; re-base it on the stored value of that bar.
        out["obv"] = out["obv"] - v[0] + float(obv_anchor)

    local = ts_index.tz_convert(NY)
    out["hour_et"] = np.asarray(local.hour, dtype=np.int64)
    out["dow_et"] = np.asarray(local.dayofweek, dtype=np.int64)

    for name, arr in out.items():
        if arr.dtype.kind == "f":
            arr[~np.isfinite(arr)] = np.nan  # belt and braces: never store ±inf
    return {f.name: out[f.name] for f in FEATURES}
