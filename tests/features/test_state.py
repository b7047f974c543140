"""The state path (mfs.features.state, mfs.features.carry), no database: a state recovered from a
look-back (or full) computation and carried bar by bar gives the values a full recompute gives,
to 1e-9, for generated definitions of every carried function, with drawn periods and inputs."""

from __future__ import annotations

import numpy as np
import talib.abstract
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from mfs.errors import ConfigError
from mfs.features import carry, engine, state
from mfs.features.definitions import resolve
from mfs.features.model import FeatureSet
from mfs.features.probes import agrees
from mfs.features.reads import Plan
from tests.features.feature_helpers import BUILTIN_SET, make_bars
from tests.features.test_properties import LONG, compute_with

ONE_INPUT = ("EMA", "MACD", "RSI")


@st.composite
def carried_definitions(draw):
    """One to three definitions of carried functions (periods from 2, any output, a one-input
    function fed any bar column), sometimes followed by an expression that reads the first."""
    entries: list[dict] = []
    for i in range(draw(st.integers(1, 3))):
        function = draw(st.sampled_from(sorted(state.WIDTH)))
        info = talib.abstract.Function(function)
        entry = {"name": f"c{i}", "talib": function, "output": draw(st.sampled_from(list(info.output_names)))}
        entry["params"] = {k: draw(st.integers(2, 40)) for k, v in info.parameters.items() if isinstance(v, int)}
        if function in ONE_INPUT and draw(st.booleans()):
            entry["input"] = draw(st.sampled_from(["open", "high", "low", "close", "volume"]))
        entries.append(entry)
    if draw(st.integers(0, 3)) == 0:
        entries.append({"name": "reader", "expr": "c0 - c0[t-1]"})
    try:
        return FeatureSet(tuple(resolve(entries)))
    except ConfigError:
        reject()


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    return agrees(got, want, tolerance=1e-9)


def _bars(first: int, last: int) -> engine.Bars:
    b = LONG.iloc[first:last]
    arrays = (b[name].to_numpy().astype(np.float64) for name in ("open", "high", "low", "close", "volume"))
    return engine.Bars(b["ts"], *arrays)


def _records(first: int, last: int, partial_from: int) -> np.ndarray:
    """BAR_RECORD-like ts, ingested_at and closes_at of LONG[first:last]: bars from
    ``partial_from`` on fetched before they closed."""
    rec = np.zeros(last - first, dtype=[("ts", ">i8"), ("ingested_at", ">i8"), ("closes_at", ">i8")])
    rec["ts"] = np.arange(first, last)
    rec["closes_at"] = rec["ts"] + 1
    rec["ingested_at"] = np.where(rec["ts"] >= partial_from, rec["ts"], rec["ts"] + 2)
    return rec


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    features=carried_definitions(),
    cut=st.integers(1, 3150),
    ahead=st.integers(1, 40),
    from_first=st.booleans(),
    partial=st.integers(0, 3),
)
def test_a_carried_state_continues_to_the_full_history(features, cut, ahead, from_first, partial):
    """The state after bar ``cut`` - 1 (recovered from the bars a look-back run reads, or from the
    first bar), carried over ``ahead`` new bars, gives the full recompute's values; so does the
    state kept after the last complete bar (the last ``partial`` bars were fetched before they
    closed), carried over the bars after it."""
    kept = state.carried(features)
    readers = {name for d in features.definitions for name in d.depends_on}
    assert {d.name for d in kept} == {d.name for d in features.definitions if d.function and d.name not in readers}
    if not kept:
        return
    end = min(cut + ahead, len(LONG))
    full = compute_with(LONG.iloc[:end], features.definitions)
    lookback = max(450, features.memory)
    first = 0 if from_first else max(cut - lookback, 0)
    held = carry.Carry(kept, state.signature(features), state.window(features))
    states = carry.recovered(held, _bars(first, cut)._asdict(), _records(first, cut, cut))
    assert list(states) == [cut - 1]  # every bar complete: one state, after the newest
    if not np.isfinite(states[cut - 1]).all():  # warm-up (or no range to recover from): none stored
        return
    held.stored["S"] = states
    start = max(cut - held.window, 0)  # the state path reads the window of the features not carried
    rows = np.arange(cut - start, end - start)
    rec = _records(start, end, end - partial)
    plan = Plan(bar_ts=rec["ts"].astype(np.int64), start=cut - start, first=0)
    values, after = carry.advanced(held, [("S", plan, rec)], _bars(start, end), rows)
    for d in kept:
        assert _close(values[d.name], full[d.name][cut:end]), (d.name, d.normalized, cut, first)
    complete = max(end - partial, cut) - 1  # the state of the last complete bar, or the one used
    assert sorted(after[0]) == sorted({complete, end - 1})
    if complete < end - 1:  # the next run starts at the partial bar: from the state kept before it
        held.stored["S"] = {complete: after[0][complete]}
        plan = Plan(bar_ts=rec["ts"].astype(np.int64), start=complete + 1 - start, first=0)
        again, _ = carry.advanced(held, [("S", plan, rec)], _bars(start, end), rows[complete + 1 - cut :])
        for d in kept:
            assert _close(again[d.name], full[d.name][complete + 1 : end]), (d.name, d.normalized, complete)


def test_the_shipped_definitions_carried_and_their_window():
    names = [d.name for d in state.carried(BUILTIN_SET)]
    assert names == [
        "ema_12",
        "ema_26",
        "macd",
        "macd_signal",
        "macd_hist",
        "rsi_14",
        "atr_14",
        "natr_14",
        "adx_14",
        "plus_di_14",
        "minus_di_14",
    ]
    assert state.window(BUILTIN_SET) == 200  # sma_200: the longest look-back of the rest (was 450)


def test_a_definition_read_by_another_or_fed_a_feature_is_not_carried():
    features = FeatureSet(
        tuple(
            resolve(
                [
                    {"name": "e", "talib": "EMA", "params": {"timeperiod": 5}},
                    {"name": "d", "expr": "e[t-1]"},
                    {"name": "r", "talib": "RSI", "input": "d"},
                    {"name": "one", "talib": "ATR", "params": {"timeperiod": 1}},
                    {"name": "a", "talib": "ATR", "params": {"timeperiod": 3}},
                ]
            )
        )
    )
    assert [d.name for d in state.carried(features)] == ["a"]
    assert state.signature(features) != state.signature(FeatureSet(features.definitions[:-1]))


def test_flat_bars_leave_no_state_where_a_true_range_cannot_be_recovered():
    flat = make_bars(300, seed=3)
    for name in ("open", "high", "low", "close"):
        flat[name] = 10.0
    features = FeatureSet(tuple(resolve([{"name": "p", "talib": "PLUS_DI", "params": {"timeperiod": 5}}])))
    held = carry.Carry(state.carried(features), state.signature(features), state.window(features))
    bars = {name: flat[name].to_numpy().astype(np.float64) for name in ("open", "high", "low", "close", "volume")}
    rec = np.zeros(300, dtype=[("ts", ">i8"), ("ingested_at", ">i8"), ("closes_at", ">i8")])
    rec["ts"] = np.arange(300)
    (states,) = carry.recovered(held, bars, rec).values()
    assert not np.isfinite(states).all()  # not stored: the next run reads the look-back
