"""Property tests on the engine (fast, no database): no look-ahead, and a look-back window with an
OBV anchor reproduces the full-history values — the two facts incremental runs rely on."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mfs.features import engine
from mfs.features.spec import FEATURE_NAMES
from tests.features.feature_helpers import make_bars


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
