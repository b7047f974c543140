"""The feature expression language (no database): the built-in "numpy" features written as expressions
give the engine's values bit for bit, refused constructs give one clear line, and on generated
expressions the derived warm-up is exact, no value looks ahead, and a look-back window reproduces
the full history."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfs.errors import ConfigError, FeatureError
from mfs.features import engine, rolling
from mfs.features.expressions import ExpressionError, parse
from tests.features.feature_helpers import BUILTIN_DEFINITIONS, BY_NAME, FEATURES, make_bars

# The engine's "numpy" columns as expressions, in the spec's order (later ones read earlier ones).
BUILTIN = {
    "log_return_1": "log(close / close[t-1])",
    "bb_upper": "sma_20 + 2 * std(close, 20)",
    "bb_lower": "sma_20 - 2 * std(close, 20)",
    "bb_width": "(bb_upper - bb_lower) / sma_20",
    "bb_pctb": "(close - bb_lower) / (bb_upper - bb_lower)",
    "vwap_20": "sum(typical * volume, 20) / sum(volume, 20)",
    "volatility_20": "std(return_1, 20)",
    "volume_ratio_20": "volume / volume_sma_20",
    "range_pct": "100 * (high - low) / close",
}
LOOKBACK = 450  # features.lookback_bars: an incremental run starts warm-up + this many bars early


def inputs_of(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    return {k: bars[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close", "volume")}


def engine_output(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    i = inputs_of(bars)
    return engine.compute(
        bars["ts"], i["open"], i["high"], i["low"], i["close"], i["volume"], definitions=BUILTIN_DEFINITIONS
    )


def degenerate_bars() -> pd.DataFrame:
    """Random bars with a flat stretch (constant prices, then zero volume): the NULL paths of the engine."""
    bars = make_bars(600, seed=7)
    for k in ("open", "high", "low", "close"):
        bars.loc[200:259, k] = 42.0
    bars.loc[230:259, "volume"] = 0
    return bars


def real_bars() -> pd.DataFrame:
    from bokeh_sampledata import stocks  # daily AAPL 2000-2013: real levels, splits, float volumes

    raw = stocks.AAPL
    ts = pd.DatetimeIndex(pd.to_datetime(raw["date"])).tz_localize("America/New_York").tz_convert("UTC")
    df = pd.DataFrame({k: np.asarray(raw[k], dtype=float) for k in ("open", "high", "low", "close", "volume")})
    df.insert(0, "ts", ts)
    return df


def test_builtin_expressions_are_the_spec_definitions():
    numpy_exprs = [f.name for f in FEATURES if f.computed_by == "expr"]
    assert numpy_exprs == list(BUILTIN)
    for name, text in BUILTIN.items():  # the spec writes SUM; the language spells functions lower-case
        assert parse(BY_NAME[name].shown_params["expr"].replace("SUM(", "sum(")).normalized == parse(text).normalized


@pytest.mark.parametrize("case", ["seed0", "seed1", "seed2", "degenerate", "real"])
def test_builtin_features_are_bit_identical_to_the_engine(case):
    bars = {"degenerate": degenerate_bars, "real": real_bars}.get(case, lambda: make_bars(2000, int(case[-1])))()
    want = engine_output(bars)
    features = {f.name: want[f.name] for f in FEATURES if f.computed_by != "expr"}
    for name, text in BUILTIN.items():  # chained: bb_width reads the bb_upper computed by its expression
        features[name] = got = parse(text, where=f"feature {name}").evaluate(inputs_of(bars), features)
        assert got.dtype == np.float64 and np.array_equal(got, want[name], equal_nan=True), name
        assert np.isnan(got).sum() > 0 or BY_NAME[name].warmup == 0, name


def test_engine_uses_the_same_rolling_std():
    assert engine.rolling_std is rolling.rolling_std


def test_derived_warmups_equal_the_spec():
    warmups = {f.name: f.warmup for f in FEATURES}
    want = engine_output(make_bars(300, seed=3))
    for name, text in BUILTIN.items():
        derived = parse(text).warmup(warmups)
        assert derived == BY_NAME[name].warmup, name
        assert np.isnan(want[name][:derived]).all() and np.isfinite(want[name][derived]), name


def test_examples_against_independent_computations():
    bars = make_bars(800, seed=5)
    inputs, s = inputs_of(bars), bars["close"].astype(float)
    sma20 = s.rolling(20).mean().to_numpy()

    def close(got, want):
        assert np.array_equal(np.isnan(got), np.isnan(want))
        m = ~np.isnan(want)
        np.testing.assert_allclose(got[m], want[m], rtol=1e-9, atol=1e-12)

    rolling = s.rolling(60)
    close(parse("zscore(close, 60)").evaluate(inputs, {}), ((s - rolling.mean()) / rolling.std(ddof=0)).to_numpy())
    close(parse("log(close / close[t-1])").evaluate(inputs, {}), np.log(s / s.shift(1)).to_numpy())
    close(
        parse("sma_20 + 2 * std(close, 20)").evaluate(inputs, {"sma_20": sma20}),
        sma20 + 2 * s.rolling(20).std(ddof=0).to_numpy(),
    )
    typical, volume = (bars["high"] + bars["low"] + s) / 3, bars["volume"].astype(float)
    close(
        parse("sum(typical * volume, 20) / sum(volume, 20)").evaluate(inputs, {}),
        ((typical * volume).rolling(20).sum() / volume.rolling(20).sum()).to_numpy(),
    )
    close(
        parse("(close - close[t-5]) / std(close, 20)").evaluate(inputs, {}),
        ((s - s.shift(5)) / s.rolling(20).std(ddof=0)).to_numpy(),
    )
    close(
        parse("min(low, 3) + max(high, 4)[t-2]").evaluate(inputs, {}),
        (bars["low"].rolling(3).min() + bars["high"].rolling(4).max().shift(2)).to_numpy(),
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("close[t+1]", "would look ahead"),
        ("close ** 2", "** is not allowed"),
        ("__import__('os')", "unknown function __import__"),
        ("close.real", "attribute access is not allowed"),
        ("foo(close)", "unknown function foo"),
        ("mean(close)", "mean takes 2 arguments"),
        ("mean(close, 0)", "window of mean must be an integer literal from 2"),
        ("mean(close, x)", "window of mean must be an integer literal"),
        ("std(close, 20.0)", "window of std must be an integer literal"),
        ("close[t-0.5]", "a shift must be x[t-k]"),
        ("close[t-0]", "a shift must be x[t-k]"),
        ("close[-1]", "a shift must be x[t-k]"),
        ("close[t-1:t]", "a shift must be x[t-k]"),
        ("close +", "cannot parse"),
        ("", "empty expression"),
        ("  \n", "empty expression"),
        ("SUM(volume, 20)", "function names are lower-case"),
        ("log(close, 2)", "log takes 1 argument"),
        ("mean(close, n=20)", "no keyword arguments"),
        ("close > open", "a comparison is not allowed"),
        ("close and open", "a boolean operator is not allowed"),
        ("close if open else high", "a conditional expression is not allowed"),
        ("lambda: close", "a lambda is not allowed"),
        ("[c for c in close]", "a comprehension is not allowed"),
        ("'close'", "the literal 'close' is not allowed"),
        ("True + close", "True is not a number"),
        ("close // 2", "operator // is not allowed"),
        ("+close", "unary + is not allowed"),
        ("t * close", "t may only appear in a shift"),
        ("log + close", "log is a function"),
        ("close.__class__(1)", "only the functions"),
        ("(x := close)", "an assignment is not allowed"),
        ("1e999 * close", "too large"),
        ("close" + " + close" * 400, "characters (at most"),
    ],
)
def test_refused_constructs_give_one_line_naming_the_text(text, fragment):
    with pytest.raises(ExpressionError) as caught:
        parse(text, where="feature f, key expr")
    message = str(caught.value)
    assert fragment in message and message.startswith("feature f, key expr: ") and "\n" not in message
    offending = text.strip()[:40]
    assert not offending or repr(offending)[1:-1] in message or offending.split("(")[0] in message
    assert isinstance(caught.value, ConfigError) and caught.value.exit_code == 2


def test_error_names_the_position_of_the_offending_part():
    with pytest.raises(ExpressionError, match=r"'close\[t\+3\]' at column 9 of 'open \+ \(close\[t\+3\]\)'"):
        parse("open + (close[t+3])")


def test_evaluation_errors_name_the_missing_name():
    expr = parse("sma_20 / close", where="feature x")
    assert expr.names == {"sma_20", "close"} and expr.feature_names == {"sma_20"}
    with pytest.raises(ExpressionError, match=r"feature x: unknown name 'sma_20'.* in 'sma_20 / close'"):
        expr.evaluate({"close": np.ones(3)}, {})
    with pytest.raises(ExpressionError, match="unknown feature 'sma_20'"):
        expr.warmup({})
    with pytest.raises(ExpressionError, match="typical needs the bar input"):
        parse("typical").evaluate({"close": np.ones(3)}, {})
    with pytest.raises(FeatureError, match="different lengths"):
        expr.evaluate({"close": np.ones(3)}, {"sma_20": np.ones(4)})


def test_undefined_values_are_nan_never_inf():
    x = np.array([0.0, 1.0, -1.0, 4.0])
    for text, want in [
        ("1 / x", [np.nan, 1.0, -1.0, 0.25]),
        ("1 / (1 / x)", [np.nan, 1.0, -1.0, 4.0]),  # a NaN never turns back into a number
        ("log(x)", [np.nan, 0.0, np.nan, np.log(4.0)]),
        ("sqrt(x)", [0.0, 1.0, np.nan, 2.0]),
        ("abs(-x)", [0.0, 1.0, 1.0, 4.0]),
        ("x[t] - x[t-1]", [np.nan, 1.0, -2.0, 5.0]),
        ("x[t-1][t-2]", [np.nan, np.nan, np.nan, 0.0]),
        ("2", [2.0] * 4),
        ("(2)[t-1]", [np.nan, 2.0, 2.0, 2.0]),
    ]:
        got = parse(text).evaluate({}, {"x": x})
        assert np.array_equal(got, np.array(want), equal_nan=True), text
    given_inf = np.array([1.0, np.inf, 1.0, 1.0, -np.inf, 1.0, 1.0])  # a caller's inf counts as NaN
    got = parse("sum(x, 2) + x").evaluate({}, {"x": given_inf})
    assert np.array_equal(got, [np.nan, np.nan, np.nan, 3.0, np.nan, np.nan, 3.0], equal_nan=True)
    assert np.isinf(given_inf).sum() == 2  # and stays untouched


def test_rolling_functions_skip_leading_nans_and_null_windows_holding_a_nan():
    rng = np.random.default_rng(1)
    x = rng.uniform(1, 2, 60)
    x[:4] = np.nan  # an inner warm-up
    x[30] = np.nan  # a NaN inside: TA-Lib's SUM would be NaN from here on, MIN/MAX would skip it
    s = pd.Series(x)
    for fn, want in [
        ("sum", s.rolling(5).sum()),
        ("mean", s.rolling(5).mean()),
        ("min", s.rolling(5).min()),
        ("max", s.rolling(5).max()),
        ("std", s.rolling(5).std(ddof=0)),
        ("zscore", (s - s.rolling(5).mean()) / s.rolling(5).std(ddof=0)),
    ]:
        got = parse(f"{fn}(x, 5)").evaluate({}, {"x": x})
        assert np.array_equal(np.isnan(got), np.isnan(want.to_numpy())), fn
        np.testing.assert_allclose(got[~np.isnan(got)], want.dropna().to_numpy(), rtol=1e-12, err_msg=fn)
    assert np.isnan(parse("sum(x, 5)").evaluate({}, {"x": np.full(8, np.nan)})).all()
    assert np.isnan(parse("sum(x, 5)").evaluate({}, {"x": np.ones(4)})).all()  # shorter than the window


def test_the_normalized_form_ignores_spelling():
    a = parse("  (sma_20)+2*std( close,20 )\n")
    b = parse("sma_20 + 2.0 * (std(close, 20))")
    assert a == b and a.normalized == "sma_20 + 2.0 * std(close, 20)" and a.text != b.text
    assert parse("close[t]").normalized == "close"
    assert parse("close[t-1][t-2]").normalized == "close[t-3]"
    assert parse("a - (b - c)").normalized == "a - (b - c)" != parse("a - b - c").normalized


# --- generated expressions -------------------------------------------------------------------------------
# Two kinds, so that every value after the warm-up is finite on positive random-walk bars: POSITIVE ones
# (strictly > 0: denominators and arguments of log/sqrt) and SIGNED ones (anything else).
WINDOWS = st.integers(2, 30)
SHIFTS = st.integers(1, 10)
NUMBERS = st.sampled_from(["0.5", "2", "3.25", "100", "1e-3"])
POSITIVE_LEAVES = st.one_of(st.sampled_from(["open", "high", "low", "close", "typical", "volume"]), NUMBERS)


def positive(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return POSITIVE_LEAVES
    sub = positive(depth - 1)
    return st.one_of(
        POSITIVE_LEAVES,
        st.builds(lambda a, op, b: f"({a} {op} {b})", sub, st.sampled_from("+*/"), sub),
        st.builds(lambda fn, x, n: f"{fn}({x}, {n})", st.sampled_from(["mean", "sum", "min", "max"]), sub, WINDOWS),
        st.builds(lambda x: f"sqrt({x})", sub),
        st.builds(lambda x, k: f"({x})[t-{k}]", sub, SHIFTS),
    )


def signed(depth: int) -> st.SearchStrategy[str]:
    # zscore only of a price: a window of equal values (0 / 0) is as good as impossible there
    zscore = st.builds(lambda x, n: f"zscore({x}, {n})", st.sampled_from(["close", "high", "low"]), st.integers(5, 30))
    if depth == 0:
        return st.one_of(POSITIVE_LEAVES, zscore)
    sub, pos = signed(depth - 1), positive(depth - 1)
    return st.one_of(
        positive(depth),
        zscore,
        st.builds(lambda a, op, b: f"({a} {op} {b})", sub, st.sampled_from("+-*"), sub),
        st.builds(lambda a, b: f"{a} / {b}", sub, pos),
        st.builds(lambda x: f"-{x}", sub),
        st.builds(lambda x: f"log({x})", pos),
        st.builds(lambda x: f"abs({x})", sub),
        st.builds(lambda x, n: f"std({x}, {n})", sub, WINDOWS),
        st.builds(lambda x, k: f"({x})[t-{k}]", sub, SHIFTS),
        st.builds(lambda x: f"({x})[t]", sub),
    )


EXPRESSIONS = signed(4)
N_BARS = 1200
BARS = {seed: inputs_of(make_bars(N_BARS, seed=seed)) for seed in range(3)}


def running_sums(text: str) -> bool:
    return re.search(r"\b(sum|mean)\(", text) is not None


@settings(max_examples=300, deadline=None)
@given(text=EXPRESSIONS, seed=st.sampled_from(sorted(BARS)))
def test_generated_expressions_warm_up_exactly_then_stay_finite(text, seed):
    expr = parse(text)
    warmup = expr.warmup({})
    values = expr.evaluate(BARS[seed], {})
    assert np.isnan(values[: min(warmup, N_BARS)]).all(), (text, warmup)
    assert np.isfinite(values[warmup:]).all(), (text, warmup, np.flatnonzero(~np.isfinite(values[warmup:]))[:5])


@settings(max_examples=300, deadline=None)
@given(text=EXPRESSIONS, seed=st.sampled_from(sorted(BARS)))
def test_the_normalized_form_parses_to_the_same_computation(text, seed):
    expr = parse(text)
    again = parse(expr.normalized)
    assert again.normalized == expr.normalized and again == expr
    assert np.array_equal(again.evaluate(BARS[seed], {}), expr.evaluate(BARS[seed], {}), equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(text=EXPRESSIONS, seed=st.sampled_from(sorted(BARS)), cut=st.integers(1, N_BARS))
def test_appending_bars_never_changes_earlier_values(text, seed, cut):
    expr = parse(text)
    prefix = {k: v[:cut] for k, v in BARS[seed].items()}
    assert np.array_equal(expr.evaluate(prefix, {}), expr.evaluate(BARS[seed], {})[:cut], equal_nan=True)


@settings(max_examples=300, deadline=None)
@given(text=EXPRESSIONS, seed=st.sampled_from(sorted(BARS)), data=st.data())
def test_a_lookback_window_reproduces_the_full_history(text, seed, data):
    expr = parse(text)
    lookback = expr.warmup({}) + LOOKBACK
    start = data.draw(st.integers(min(lookback, N_BARS - 1), N_BARS - 1), label="start")
    window = {k: v[start - lookback :] if start >= lookback else v for k, v in BARS[seed].items()}
    got, want = expr.evaluate(window, {})[-(N_BARS - start) :], expr.evaluate(BARS[seed], {})[start:]
    if not running_sums(text):  # shifts, elementwise maths, per-window std/zscore, TA-Lib MIN/MAX: exact
        assert np.array_equal(got, want, equal_nan=True), text
        return
    # TA-Lib's SUM/SMA keep a running sum, whose rounding residue depends on where it started.
    assert np.array_equal(np.isnan(got), np.isnan(want)), text
    m = ~np.isnan(want)
    if m.any():
        scale = np.maximum(np.abs(want[m]), max(np.median(np.abs(want[m])), 1e-300))
        assert (np.abs(got[m] - want[m]) / scale).max() <= 1e-9, text
