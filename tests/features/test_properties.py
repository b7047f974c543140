"""Property tests on the engine (fast, no database): no look-ahead, and a look-back window with an
OBV anchor reproduces the full-history values — the two facts incremental runs rely on — for the
built-in features and for generated definitions of every kind the definitions file allows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib
import talib.abstract
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from mfs.errors import ConfigError
from mfs.features import engine
from mfs.features.definitions import resolve
from mfs.features.expressions import BAR_INPUTS
from tests.features.feature_helpers import BUILTIN_DEFINITIONS, FEATURE_NAMES, make_bars


def run(bars, start=0, anchor=None):
    b = bars.iloc[start:]
    return engine.compute(
        b["ts"],
        b["open"].to_numpy(),
        b["high"].to_numpy(),
        b["low"].to_numpy(),
        b["close"].to_numpy(),
        b["volume"].to_numpy().astype(float),
        obv_anchor=anchor,
        definitions=BUILTIN_DEFINITIONS,
    )


BARS = {seed: make_bars(1500, seed=seed) for seed in range(4)}
FULL = {seed: run(bars) for seed, bars in BARS.items()}


@settings(max_examples=40, deadline=None)
@given(seed=st.sampled_from(sorted(BARS)), cut=st.integers(1, 1499))
def test_appending_future_bars_never_changes_earlier_values(seed, cut):
    prefix = run(BARS[seed].iloc[:cut])
    for name in FEATURE_NAMES:  # bit for bit: a value at t depends on bars <= t only
        assert np.array_equal(prefix[name], FULL[seed][name][:cut], equal_nan=True), name


@settings(max_examples=40, deadline=None)
@given(seed=st.sampled_from(sorted(BARS)), start=st.integers(400, 1499), lookback=st.integers(400, 600))
def test_a_lookback_window_with_obv_anchor_equals_the_full_history(seed, start, lookback):
    first = max(start - lookback, 0)
    window = run(BARS[seed], first, anchor=FULL[seed]["obv"][first] if first else None)
    for name in FEATURE_NAMES:
        got, want = window[name][start - first :].astype(float), FULL[seed][name][start:].astype(float)
        assert np.array_equal(np.isnan(got), np.isnan(want)), name
        m = ~np.isnan(want)
        if m.any():
            scale = np.maximum(np.abs(want[m]), max(np.median(np.abs(want[m])), 1e-300))
            assert (np.abs(got[m] - want[m]) / scale).max() <= 1e-9, name


# Generated definitions: any TA-Lib function the definitions accept, with drawn periods, outputs
# and inputs, and expressions of the whole language over bar columns and earlier features.
def _accepted(function: str) -> bool:
    try:
        resolve([{"name": "x", "talib": function, "output": 0}])
    except ConfigError:
        return False
    return True


FUNCTIONS = sorted(f for f in talib.get_functions() if _accepted(f))
LONG = make_bars(3200, seed=9)  # longer than the longest measured memory (probes.WINDOWS) + the tail


def _expression(draw, names: list[str], depth: int = 0) -> str:
    leaves = [*BAR_INPUTS, "typical", *names]
    if depth >= 2 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(leaves)) if draw(st.integers(0, 4)) else str(draw(st.integers(1, 99)))
    inner = _expression(draw, names, depth + 1)
    shape = draw(st.sampled_from(["op", "fn", "shift", "rolling"]))
    if shape == "op":
        return f"({inner} {draw(st.sampled_from('+-*/'))} {_expression(draw, names, depth + 1)})"
    if shape == "fn":
        return f"{draw(st.sampled_from(['log', 'abs', 'sqrt']))}({inner})"
    if shape == "shift":
        return f"({inner})[t-{draw(st.integers(1, 30))}]"
    fn = draw(st.sampled_from(["mean", "std", "sum", "min", "max", "zscore"]))
    return f"{fn}({inner}, {draw(st.integers(2, 60))})"


@st.composite
def generated_definitions(draw):
    entries: list[dict] = []
    for i in range(draw(st.integers(1, 4))):
        names = [e["name"] for e in entries]
        if draw(st.booleans()):
            function = draw(st.sampled_from(FUNCTIONS))
            info = talib.abstract.Function(function)
            entry = {"name": f"g{i}", "talib": function, "output": draw(st.sampled_from(list(info.output_names)))}
            entry["params"] = {
                k: draw(st.integers(2, 40)) for k, v in info.parameters.items() if "period" in k and isinstance(v, int)
            }
            single = sum(len(s) if isinstance(s, list) else 1 for s in info.input_names.values()) == 1
            if single and names and draw(st.booleans()):
                entry["input"] = draw(st.sampled_from(names))
        else:
            entry = {"name": f"g{i}", "expr": _expression(draw, names)}
        entries.append(entry)
    try:
        return resolve(entries)
    except ConfigError:
        reject()


def compute_with(bars, definitions, anchors=None):
    return engine.compute(
        bars["ts"],
        bars["open"].to_numpy(),
        bars["high"].to_numpy(),
        bars["low"].to_numpy(),
        bars["close"].to_numpy(),
        bars["volume"].to_numpy().astype(float),
        anchors=anchors,
        definitions=definitions,
    )


# One fixed draw of 300 (derandomized everywhere, not only in CI): drawing thousands finds values
# at a singularity that rounding moves across — log(std(PVI, 3)) over three bars where PVI did
# not move is log 0 (NULL) in one computation and log 1e-13 in the other (docs/features.md).
@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(definitions=generated_definitions(), cut=st.integers(50, 3199), start=st.integers(2900, 3199))
def test_generated_definitions_have_no_look_ahead_and_incremental_equals_full(definitions, cut, start):
    full = compute_with(LONG, definitions)
    prefix = compute_with(LONG.iloc[:cut], definitions)
    lookback = max(450, max(d.memory for d in definitions))
    first = max(start - lookback, 0)
    anchors = {d.name: full[d.name][first] for d in definitions if d.cumulative}
    if any(np.isnan(v) for v in anchors.values()):
        first, anchors = 0, {}  # what an incremental run does without a stored running sum
    window = compute_with(LONG.iloc[first:], definitions, anchors)
    # TA-Lib's running sums carry rounding from wherever they started: where a value is
    # ill-conditioned (BETA(2) of two nearly equal returns: 12,517 where it is ~1 elsewhere; sums
    # of EXP(close)) two full computations that start at different early bars, each with
    # thousands of bars before `start`, differ too. An incremental run may differ by that much,
    # and by 1e-9 relative anywhere else.
    noise = {d.name: np.zeros(len(LONG) - start) for d in definitions}
    for other in {1, first // 2} - {0}:
        later = {d.name: full[d.name][other] for d in definitions if d.cumulative}
        if not any(np.isnan(v) for v in later.values()):
            shifted = compute_with(LONG.iloc[other:], definitions, later)
            for d in definitions:
                gap = np.nan_to_num(np.abs(shifted[d.name][start - other :] - full[d.name][start:]))
                noise[d.name] = np.maximum(noise[d.name], gap)
    for d in definitions:
        assert np.array_equal(prefix[d.name], full[d.name][:cut], equal_nan=True), (d.name, d.normalized)
        got, want = window[d.name][start - first :], full[d.name][start:]
        assert np.array_equal(np.isnan(got), np.isnan(want)), (d.name, d.normalized)
        m = ~np.isnan(want)
        if m.any():
            typical = max(np.median(np.abs(want[m])), 1e-300)
            scale = np.maximum(np.abs(want[m]), typical)
            # A spike 100 times the typical magnitude is a near 0/0 of running sums: 1e-6 there.
            tolerance = np.where(np.abs(want[m]) > 100 * typical, 1e-6, 1e-9)
            assert (np.abs(got[m] - want[m]) <= tolerance * scale + 10 * noise[d.name][m]).all(), (d.name, d.normalized)


# Drawn series of one batch: the whole history, a look-back window with its anchors, a prefix
# shorter than most warm-ups, a single bar.
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.filter_too_much])
@given(definitions=generated_definitions(), start=st.integers(1, 3199), cut=st.integers(1, 60))
def test_series_computed_together_get_the_values_each_gets_alone(definitions, start, cut):
    pieces = [(LONG, {}), (LONG.iloc[start:], None), (LONG.iloc[:cut], {}), (LONG.iloc[-1:], {})]
    full = compute_with(LONG, definitions)
    pieces[1] = (LONG.iloc[start:], {d.name: full[d.name][start] for d in definitions if d.cumulative})
    alone = [compute_with(bars, definitions, anchors) for bars, anchors in pieces]
    bars, bounds = _end_to_end([bars for bars, _ in pieces])
    anchors = [anchors for _, anchors in pieces]
    many = engine.compute_many(bars, bounds, anchors=anchors, definitions=definitions)
    for i, values in enumerate(alone):
        for name, want in values.items():
            got = many[name][bounds[i] : bounds[i + 1]]
            assert np.array_equal(got, want, equal_nan=True), (i, name, [d.normalized for d in definitions])
    last = np.array(bounds[1:]) - 1  # an incremental batch's rows: the newest bar of each series
    for name, got in engine.compute_many(bars, bounds, anchors=anchors, definitions=definitions, rows=last).items():
        assert np.array_equal(got, many[name][last], equal_nan=True), name


def _end_to_end(pieces: list[pd.DataFrame]) -> tuple[engine.Bars, list[int]]:
    """``pieces`` laid end to end, as a batch computes them, and where each begins and ends."""
    together = pd.concat(pieces)
    columns = (together[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume"))
    return engine.Bars(pd.DatetimeIndex(together["ts"]), *columns), [0, *np.cumsum([len(p) for p in pieces])]


def _flat(bars: pd.DataFrame, rows: slice, price: float) -> pd.DataFrame:
    """``bars`` with ``rows`` flat at ``price`` and without volume: every degenerate mask's case."""
    out = bars.copy()
    out.loc[out.index[rows], ["open", "high", "low", "close"]] = price
    out.loc[out.index[rows], "volume"] = 0
    return out


# A series ending flat, one starting flat at the same price, one flat throughout: the masks are
# computed over series laid end to end, so their windows reach across the boundaries.
@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    function=st.sampled_from(sorted(engine.DEGENERATE)),
    periods=st.lists(st.integers(2, 30), min_size=2, max_size=2),
    ends=st.integers(0, 80),
    starts=st.integers(0, 80),
    output=st.integers(0, 1),
)
def test_degenerate_masks_of_series_computed_together_are_those_of_each_alone(function, periods, ends, starts, output):
    info = talib.abstract.Function(function)
    params = dict(zip([k for k in info.parameters if "period" in k], periods, strict=False))
    outputs = list(info.output_names)
    entry = {"name": "m", "talib": function, "params": params, "output": outputs[output % len(outputs)]}
    definitions = resolve([entry])
    price = 42.0
    pieces = [
        _flat(make_bars(300, seed=3), slice(300 - ends, 300), price),
        _flat(make_bars(300, seed=4, start="2024-01-02"), slice(0, starts), price),
        _flat(make_bars(90, seed=5, start="2025-01-02"), slice(0, 90), price),
    ]
    alone = [compute_with(bars, definitions)["m"] for bars in pieces]
    bars, bounds = _end_to_end(pieces)
    many = engine.compute_many(bars, bounds, definitions=definitions)["m"]
    for i, want in enumerate(alone):
        assert np.array_equal(many[bounds[i] : bounds[i + 1]], want, equal_nan=True), (i, definitions[0].normalized)
    # The flat series is masked past its warm-up (it would be TA-Lib's 0 there): the test can fail.
    assert np.isnan(alone[2][definitions[0].lookback + 1 :]).all(), definitions[0].normalized
