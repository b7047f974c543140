"""How a TA-Lib function's values depend on where a computation starts, measured when a
definition is read.

An incremental run computes a symbol's new bars from a look-back window, not from its first bar,
and must store what a full recompute would. TA-Lib's flags say *that* a function is
path-dependent or has an unstable period, not *how*, so each TA-Lib definition is run on a fixed
random walk twice — from its start and from a later bar — and classified:

* ``none``: the window reproduces the full history once it is long enough; ``memory`` is the
  shortest tried window (bars before the first new one) that agrees to 1e-10 relative — the
  warm-up for a moving average, longer for exponential smoothing (EMA, Wilder, KAMA);
* ``add``: a running sum (OBV, AD): the window is off by a constant, so it is re-based on the
  stored value of its first bar;
* ``scale``: a running product (NVI, PVI): off by a factor, re-based the same way;
* ``index``: a position in the computed array (MAXINDEX …): stored as bars since that position
  (0 = this bar), which does not depend on the start.

A function that is none of these (VWAP from the first bar: a ratio of two running sums) cannot be
continued from a stored value and is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import talib.abstract

from mfs.features import engine

PROBE_BARS = 6_000
PROBE_START = 3_000  # the first "new" bar of the probed incremental run
# The look-backs tried, shortest first (all start after the probe's first bar).
WINDOWS = (32, 64, 96, 128, 160, 200, 256, 320, 400, 450, 500, 640, 800, 1_000, 1_280, 1_600, 2_000, 2_700)
TOLERANCE = 1e-11  # relative: a margin of 100 below the 1e-9 the property tests hold runs to
KINDS = ("none", "index", "add", "scale")


@dataclass(frozen=True)
class Behaviour:
    kind: str  # one of KINDS
    memory: int  # bars of look-back an incremental run needs
    finite: bool = True  # a value reads only its look-back window (no smoothing that carries on)


@lru_cache(maxsize=1)
def probe_bars() -> dict[str, np.ndarray]:
    """A fixed random walk: positive cent prices, valid ranges, integer volumes."""
    rng = np.random.default_rng(20261201)
    close = np.round(50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, PROBE_BARS))), 2)
    open_ = np.round(np.concatenate(([close[0]], close[:-1])) * (1 + rng.normal(0, 0.002, PROBE_BARS)), 2)
    high = np.maximum(open_, close) + np.round(np.abs(rng.normal(0, 0.2, PROBE_BARS)), 2)
    low = np.maximum(np.minimum(open_, close) - np.round(np.abs(rng.normal(0, 0.2, PROBE_BARS)), 2), 0.01)
    volume = rng.integers(1_000, 1_000_000, PROBE_BARS).astype(np.float64)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def agrees(got: np.ndarray, want: np.ndarray, tolerance: float = TOLERANCE) -> bool:
    """Same NaNs, and every other value within ``tolerance`` relative (to the value, or to the
    series' median magnitude where the value is near zero)."""
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        return False
    m = ~np.isnan(want)
    if not m.any():
        return True
    scale = np.maximum(np.abs(want[m]), max(float(np.median(np.abs(want[m]))), 1e-300))
    return bool((np.abs(got[m] - want[m]) / scale).max() <= tolerance)


def behaviour(
    function: str, inputs: Sequence[str], args: Sequence[Any], output: int, lookback: int
) -> Behaviour | None:
    """How ``function`` (fed the bar columns ``inputs``) depends on its start; None when no
    look-back and no re-basing reproduces the full history."""
    call = talib.abstract.Function(function).func_object  # type: ignore[attr-defined]  # absent from .pyi
    bars = probe_bars()

    def run(first: int) -> np.ndarray:
        result = call(*(np.ascontiguousarray(bars[name][first:]) for name in inputs), *args)
        return np.asarray(result if isinstance(result, np.ndarray) else result[output], dtype=np.float64)

    full = run(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        for kind in KINDS:
            want = engine.positional(full) if kind == "index" else full
            for window in WINDOWS:
                first = PROBE_START - window
                got = run(first)
                if kind == "index":
                    got = engine.positional(got)
                elif kind != "none":
                    if np.isnan(got[0]) or np.isnan(full[first]) or (kind == "scale" and got[0] == 0):
                        break
                    got = engine.rebase(got, kind, float(full[first]))
                if agrees(got[window:], want[PROBE_START:]):
                    first = PROBE_START - lookback
                    finite = kind != "none" or agrees(run(first)[lookback:], full[PROBE_START:])
                    return Behaviour(kind, 0 if kind in ("add", "scale") else window, finite)
    return None


def chain_memory(definitions: Sequence[Any], name: str) -> int | None:
    """The look-back feature ``name`` needs when it reads other features (``definitions``: it and
    everything before it): the whole chain computed on the probe bars from a later start (running
    sums continued) against the full history. None when no tried look-back agrees."""
    bars = probe_bars()
    ts = np.arange(PROBE_BARS, dtype=np.int64) * 3_600_000_000_000 + 1_700_000_000_000_000_000

    def run(first: int, anchors: dict[str, float]) -> dict[str, np.ndarray]:
        return engine.compute(
            ts[first:].astype("datetime64[ns]"),
            *(bars[c][first:] for c in ("open", "high", "low", "close", "volume")),
            anchors=anchors,
            definitions=definitions,
        )

    full = run(0, {})
    for window in WINDOWS:
        first = PROBE_START - window
        anchors = {d.name: float(full[d.name][first]) for d in definitions if d.cumulative}
        if any(np.isnan(v) for v in anchors.values()):
            continue
        if agrees(run(first, anchors)[name][window:], full[name][PROBE_START:]):
            return window
    return None
