"""config/features.yaml against the spec the engine runs today: the same 36 definitions (hour_et and
dow_et are built in), the same TA-Lib calls, derived warm-ups equal to the hand-typed ones; and every
kind of bad definition refused with one line naming the feature, the key and the value."""

from __future__ import annotations

import pytest

from mfs.errors import ConfigError
from mfs.features.definitions import load, resolve
from mfs.features.model import BUILTIN
from tests.features.feature_helpers import FEATURES

# The warm-ups the hand-coded spec typed (feature_version 1); now derived from TA-Lib's look-back and
# the expressions. The values themselves are pinned by test_builtin_golden.py.
TYPED_WARMUPS = {
    "return_1": 1, "return_5": 5, "return_20": 20, "log_return_1": 1, "sma_5": 4, "sma_10": 9, "sma_20": 19,
    "sma_50": 49, "sma_200": 199, "ema_12": 11, "ema_26": 25, "macd": 33, "macd_signal": 33, "macd_hist": 33,
    "rsi_14": 14, "bb_upper": 19, "bb_lower": 19, "bb_width": 19, "bb_pctb": 19, "atr_14": 14, "natr_14": 14,
    "adx_14": 27, "plus_di_14": 14, "minus_di_14": 14, "stoch_k": 15, "stoch_d": 15, "willr_14": 13, "cci_20": 19,
    "obv": 0, "mfi_14": 14, "vwap_20": 19, "roc_10": 10, "volatility_20": 20, "volume_sma_20": 19,
    "volume_ratio_20": 19, "range_pct": 0, "hour_et": 0, "dow_et": 0,
}  # fmt: skip


def test_the_file_holds_the_built_in_features_unchanged() -> None:
    defined = load().definitions
    assert [d.name for d in defined] + list(BUILTIN) == list(TYPED_WARMUPS) == [f.name for f in FEATURES]
    assert {f.name: f.warmup for f in FEATURES} == TYPED_WARMUPS
    assert [d.name for d in defined if d.cumulative] == ["obv"]


def test_versions_follow_definitions_and_what_they_read() -> None:
    base = [{"name": "sma_5", "talib": "SMA", "params": {"timeperiod": 5}}, {"name": "z", "expr": "close / sma_5"}]
    changed = [{"name": "sma_5", "talib": "SMA", "params": {"timeperiod": 6}}, {"name": "z", "expr": "close / sma_5"}]
    a, b = resolve(base), resolve(changed)
    assert a[0].version != b[0].version and a[1].version != b[1].version  # z reads sma_5
    assert (
        resolve([{"name": "x", "expr": "close/close[t-1]"}])[0].version
        == resolve([{"name": "x", "expr": "close / close[t - 1]"}])[0].version
    )  # the normalised form, not the spelling
    assert resolve([{"name": "k", "talib": "KAMA"}])[0].warmup == 30  # TA-Lib's default and look-back


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"name": "r", "talib": "RSX"}], "feature r: talib: 'RSX' is not a TA-Lib function"),
        (
            [{"name": "r", "talib": "RSI", "params": {"timeperod": 7}}],
            "feature r: params.timeperod: 7 is not a parameter",
        ),
        (
            [{"name": "r", "talib": "RSI", "params": {"timeperiod": "x"}}],
            "feature r: params.timeperiod: 'x' must be an integer",
        ),
        (
            [{"name": "r", "talib": "RSI", "params": {"timeperiod": 0}}],
            "feature r: params: {'timeperiod': 0} refused by TA-Lib",
        ),
        ([{"name": "m", "talib": "MACD"}], "feature m: output: None must name one of MACD's outputs"),
        ([{"name": "s", "talib": "SMA", "input": "vol"}], "feature s: input: 'vol' is not a bar column"),
        ([{"name": "r"}], "feature r: talib/expr: None exactly one of `talib` and `expr` is required"),
        ([{"name": "Bad-Name", "expr": "close"}], "feature 'Bad-Name': name: not a safe SQL identifier"),
        ([{"name": "ts", "expr": "close"}], "feature ts: name: 'ts' clashes with a column"),
        ([{"name": "a", "expr": "close"}, {"name": "a", "expr": "open"}], "feature a: name: 'a' is defined twice"),
        ([{"name": "a", "expr": "b + 1"}, {"name": "b", "expr": "a + 1"}], "feature a: expr: 'b + 1' reads unknown b"),
        ([{"name": "a", "expr": "a[t-1]"}], "feature a: expr: 'a[t-1]' reads a (a feature must be defined before"),
        ([{"name": "a", "expr": "close +"}], "feature a: expr"),
        ([{"name": "a", "expr": "close", "params": {}}], "feature a: params: {} belongs to a TA-Lib definition"),
    ],
)
def test_bad_definitions_are_refused_with_one_line(entries, message) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(entries)
    text = str(caught.value)
    assert text.startswith(message) and "\n" not in text, text
