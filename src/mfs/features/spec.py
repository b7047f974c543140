"""The indicator spec: ONE declarative list that the engine, the schema check and docs/features.md read.

Each entry names the column, the function that computes it (a TA-Lib function, or a short numpy
expression over TA-Lib outputs), its parameters, a one-line definition, and its warm-up: the
number of leading bars of a symbol's history for which the value is undefined and stored as NULL
(never 0, never filled). Degenerate input (a zero denominator: constant prices, zero volume) also
gives NULL, never inf.

Changing a definition, a parameter or the NULL rules means bumping FEATURE_VERSION: every stored
row carries the version it was computed with, an incremental run recomputes a symbol whose rows
are of another version, and ``mfs features --full`` recomputes everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mfs.market import NY

FEATURE_VERSION = 1


@dataclass(frozen=True)
class Feature:
    name: str
    function: str  # TA-Lib function (talib.<NAME>) or "numpy"
    params: dict[str, Any] = field(default_factory=dict)
    definition: str = ""
    warmup: int = 0  # leading bars that are NULL at the start of a symbol's history
    pgtype: str = "float8"  # a key of mfs.storage.bulk.PG_TYPES

    @property
    def sql_type(self) -> str:
        return "smallint" if self.pgtype == "int2" else "double precision"


FEATURES: list[Feature] = [
    Feature("return_1", "ROCP", {"timeperiod": 1}, "close / close[t-1] - 1 (fraction)", 1),
    Feature("return_5", "ROCP", {"timeperiod": 5}, "close / close[t-5] - 1 (fraction)", 5),
    Feature("return_20", "ROCP", {"timeperiod": 20}, "close / close[t-20] - 1 (fraction)", 20),
    Feature("log_return_1", "numpy", {"expr": "log(close / close[t-1])"}, "ln(close / close[t-1])", 1),
    Feature("sma_5", "SMA", {"timeperiod": 5}, "mean of the last 5 closes", 4),
    Feature("sma_10", "SMA", {"timeperiod": 10}, "mean of the last 10 closes", 9),
    Feature("sma_20", "SMA", {"timeperiod": 20}, "mean of the last 20 closes", 19),
    Feature("sma_50", "SMA", {"timeperiod": 50}, "mean of the last 50 closes", 49),
    Feature("sma_200", "SMA", {"timeperiod": 200}, "mean of the last 200 closes", 199),
    Feature(
        "ema_12",
        "EMA",
        {"timeperiod": 12},
        "exponential mean of closes, alpha 2/13, seeded with the SMA of the first 12",
        11,
    ),
    Feature(
        "ema_26",
        "EMA",
        {"timeperiod": 26},
        "exponential mean of closes, alpha 2/27, seeded with the SMA of the first 26",
        25,
    ),
    Feature(
        "macd",
        "MACD",
        {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9, "output": 0},
        "EMA12(close) - EMA26(close), both EMAs seeded at bar 25 (TA-Lib MACD)",
        33,
    ),
    Feature(
        "macd_signal",
        "MACD",
        {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9, "output": 1},
        "EMA9 of macd, seeded with the SMA of its first 9 values",
        33,
    ),
    Feature(
        "macd_hist",
        "MACD",
        {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9, "output": 2},
        "macd - macd_signal",
        33,
    ),
    Feature(
        "rsi_14",
        "RSI",
        {"timeperiod": 14},
        "Wilder RSI: 100 * avg gain / (avg gain + avg loss); NULL when the close did not change in 14 bars",
        14,
    ),
    Feature(
        "bb_upper",
        "numpy",
        {"expr": "sma_20 + 2 * std(close, 20)", "like": "BBANDS(20, 2, 2, SMA)"},
        "sma_20 + 2 * population std of the last 20 closes (two-pass std, see engine.rolling_std)",
        19,
    ),
    Feature(
        "bb_lower",
        "numpy",
        {"expr": "sma_20 - 2 * std(close, 20)", "like": "BBANDS(20, 2, 2, SMA)"},
        "sma_20 - 2 * population std of the last 20 closes (two-pass std, see engine.rolling_std)",
        19,
    ),
    Feature(
        "bb_width", "numpy", {"expr": "(bb_upper - bb_lower) / sma_20"}, "(bb_upper - bb_lower) / sma_20 (fraction)", 19
    ),
    Feature(
        "bb_pctb",
        "numpy",
        {"expr": "(close - bb_lower) / (bb_upper - bb_lower)"},
        "(close - bb_lower) / (bb_upper - bb_lower); NULL when the bands coincide",
        19,
    ),
    Feature(
        "atr_14",
        "ATR",
        {"timeperiod": 14},
        "Wilder average of the true range, seeded with the mean of TR over bars 1..14",
        14,
    ),
    Feature("natr_14", "NATR", {"timeperiod": 14}, "100 * atr_14 / close", 14),
    Feature(
        "adx_14",
        "ADX",
        {"timeperiod": 14},
        "Wilder average of DX = 100*|+DI - -DI|/(+DI + -DI); NULL when there is no movement",
        27,
    ),
    Feature(
        "plus_di_14",
        "PLUS_DI",
        {"timeperiod": 14},
        "100 * Wilder sum of +DM / Wilder sum of TR; NULL when the true range was 0 for 14 bars",
        14,
    ),
    Feature(
        "minus_di_14",
        "MINUS_DI",
        {"timeperiod": 14},
        "100 * Wilder sum of -DM / Wilder sum of TR; NULL when the true range was 0 for 14 bars",
        14,
    ),
    Feature(
        "stoch_k",
        "STOCHF",
        {"fastk_period": 14, "fastd_period": 3, "fastd_matype": 0, "output": 0},
        "fast %K: 100 * (close - lowest low 14) / (highest high 14 - lowest low 14); NULL on a flat range "
        "(TA-Lib starts it with stoch_d)",
        15,
    ),
    Feature(
        "stoch_d",
        "STOCHF",
        {"fastk_period": 14, "fastd_period": 3, "fastd_matype": 0, "output": 1},
        "%D: mean of the last 3 stoch_k",
        15,
    ),
    Feature(
        "willr_14",
        "WILLR",
        {"timeperiod": 14},
        "-100 * (highest high 14 - close) / (highest high 14 - lowest low 14); NULL on a flat range",
        13,
    ),
    Feature(
        "cci_20",
        "CCI",
        {"timeperiod": 20},
        "(typical price - its SMA20) / (0.015 * mean absolute deviation 20); NULL when the deviation is 0",
        19,
    ),
    Feature(
        "obv",
        "OBV",
        {},
        "on-balance volume: running sum of +volume on up closes, -volume on down closes, "
        "unchanged on equal closes; starts at the volume of the symbol's first stored bar",
        0,
    ),
    Feature(
        "mfi_14",
        "MFI",
        {"timeperiod": 14},
        "money flow index over 14 bars (typical price * volume); NULL when the money flow is < 1",
        14,
    ),
    Feature(
        "vwap_20",
        "numpy",
        {"expr": "SUM(typical * volume, 20) / SUM(volume, 20)"},
        "rolling 20-bar volume-weighted typical price (h+l+c)/3; NULL when the volume is 0",
        19,
    ),
    Feature("roc_10", "ROC", {"timeperiod": 10}, "100 * (close / close[t-10] - 1)", 10),
    Feature(
        "volatility_20",
        "numpy",
        {"expr": "std(return_1, 20)", "like": "STDDEV(return_1, 20)"},
        "population std of return_1 over the last 20 bars (two-pass, not annualised)",
        20,
    ),
    Feature("volume_sma_20", "SMA", {"input": "volume", "timeperiod": 20}, "mean of the last 20 volumes", 19),
    Feature(
        "volume_ratio_20",
        "numpy",
        {"expr": "volume / volume_sma_20"},
        "volume / volume_sma_20; NULL when volume_sma_20 is 0",
        19,
    ),
    Feature("range_pct", "numpy", {"expr": "100 * (high - low) / close"}, "100 * (high - low) / close", 0),
    Feature(
        "hour_et",
        "numpy",
        {"tz": NY},
        "hour of the bar's start in New York (0 for daily bars, labelled at NY midnight)",
        0,
        "int2",
    ),
    Feature("dow_et", "numpy", {"tz": NY}, "day of week of the bar in New York, 0 = Monday … 6 = Sunday", 0, "int2"),
]

FEATURE_NAMES: list[str] = [f.name for f in FEATURES]
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
# The longest warm-up; the configured look-back (features.lookback_bars ≥ 400) is far above it so
# that exponentially smoothed indicators (EMA, Wilder) forget their seed: on random-walk bars 400
# bars of look-back reproduce full-history values to ~4e-12 relative, 450 to ~3e-13, 300 to ~1e-8.
MAX_WARMUP = max(f.warmup for f in FEATURES)


def markdown_table() -> str:
    """The indicator table of docs/features.md, generated from FEATURES (tests/features/test_docs.py
    keeps the document equal to it; regenerate with
    ``python -c "from mfs.features.spec import markdown_table; print(markdown_table())"``)."""
    lines = ["| column | computed by | parameters | definition | warm-up bars (NULL) |", "|---|---|---|---|---|"]
    for f in FEATURES:
        fn = f"TA-Lib `{f.function}`" if f.function != "numpy" else "numpy"
        params = ", ".join(f"{k}={v}" for k, v in f.params.items() if k != "expr") or "—"
        if "expr" in f.params:
            params = f"`{f.params['expr']}`" + (f"; {params}" if params != "—" else "")
        definition = f.definition.replace("|", "\\|")
        lines.append(f"| `{f.name}` | {fn} | {params.replace('|', chr(92) + '|')} | {definition} | {f.warmup} |")
    return "\n".join(lines)
