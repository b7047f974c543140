"""The population stability index and which features it can watch. Pure numpy.

PSI = sum over bins of (recent% - reference%) * ln(recent% / reference%), the bins being the
reference window's deciles. It is symmetric in its use, needs no distributional assumption and has
customary readings (below 0.1: stable, 0.1–0.25: moved, above 0.25: shifted). A two-sample test
(KS) was not used: hourly feature values are strongly autocorrelated (RSI, rolling windows), so
its p-values assume far more independent draws than there are and flag every clean window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BINS = 10
# An empty bin would make ln(0): each share is at least this (a tenth of a value in 1,000).
FLOOR = 1e-4


def psi(reference: np.ndarray, recent: np.ndarray, bins: int = BINS) -> float:
    """PSI of ``recent`` against ``reference`` (NaNs ignored) over ``bins`` quantile bins of the
    reference; ties collapse bins (a feature with few distinct values gets fewer bins)."""
    reference = reference[~np.isnan(reference)]
    recent = recent[~np.isnan(recent)]
    if not len(reference) or not len(recent):
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = _shares(reference, edges)
    new_share = _shares(recent, edges)
    return float(np.sum((new_share - ref_share) * np.log(new_share / ref_share)))


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return np.maximum(counts / len(values), FLOOR)


def scale_free(values: dict[str, np.ndarray], scaled: dict[str, np.ndarray], names: Sequence[str]) -> list[str]:
    """Of ``names``, the features whose values do not change when every price and volume of the
    bars is multiplied by a constant (``values`` on the bars, ``scaled`` on them × 10): returns,
    ratios, oscillators. A price or volume level (a moving average, OBV) follows the market's own
    trend, so its distribution moves in an unchanged market too: drift is watched on the
    scale-free features only (measured, not listed: a new definition is classified the same way)."""
    out = []
    for name in names:
        a, b = values[name], scaled[name]
        both = ~np.isnan(a) & ~np.isnan(b)
        if both.any() and np.allclose(a[both], b[both], rtol=1e-6, atol=1e-9) and np.nanstd(a) > 0:
            out.append(name)
    return out
