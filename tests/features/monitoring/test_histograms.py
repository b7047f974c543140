"""The drift check's per-session histograms on the fixed grid, against numpy on the values."""

from __future__ import annotations

import numpy as np

from mfs.features.monitoring.histograms import TINY, WIDTH, Histograms, grid_bins, psi_counts
from mfs.features.monitoring.psi import psi


def test_the_grid_orders_values_and_each_bin_is_two_percent_wide():
    rng = np.random.default_rng(3)
    values = np.sort(np.concatenate([rng.lognormal(0, 6, 20000), -rng.lognormal(0, 6, 20000), [0.0, 1e-12, -1e-12]]))
    bins = grid_bins(values)
    assert np.all(np.diff(bins) >= 0)  # ordered like the values
    assert np.all(bins[np.abs(values) < TINY] == 0)
    for b in np.unique(bins[np.abs(values) >= TINY]):
        inside = np.abs(values[bins == b])
        assert inside.max() / inside.min() < 1 + WIDTH, b  # a decile read to its bin is within 2 %


def test_histograms_of_sessions_sum_to_the_values_counted():
    rng = np.random.default_rng(5)
    days = np.arange(np.datetime64("2026-01-05"), np.datetime64("2026-01-15"))
    sessions = rng.choice(days, 5000)
    values = rng.normal(size=5000)
    values[::17] = np.nan
    h = Histograms.of_values(sessions, values, days)
    assert h.counts.sum() == np.count_nonzero(~np.isnan(values))
    for i, day in enumerate(days):
        assert h.counts[i].sum() == np.count_nonzero((sessions == day) & ~np.isnan(values))
    again = Histograms.of_sessions(days, [h.sparse(i) for i in range(len(days))])
    assert np.array_equal(again.counts[:, np.searchsorted(again.bins, h.bins)], h.counts)


def test_the_psi_read_off_the_grid_is_the_psi_of_the_values():
    """No shift, half a standard deviation and 5 × the volatility, for returns-sized, unit and
    RSI-sized values: within 0.01 + 2 % of ``psi`` on the values (the thresholds are 2.0 and above)."""
    rng = np.random.default_rng(7)
    for scale in (0.007, 1.0, 50.0):
        reference = rng.normal(0, scale, 20000) + (50 if scale == 50.0 else 0)
        for recent in (reference[:2000] + rng.normal(0, scale / 10, 2000), reference[:2000] + 0.5 * scale,
                       (reference[:2000] - reference.mean()) * 5 + reference.mean()):  # fmt: skip
            both = np.concatenate([reference, recent])
            _bins, inverse = np.unique(grid_bins(both), return_inverse=True)
            ref_counts = np.bincount(inverse[: len(reference)], minlength=len(_bins))
            new_counts = np.bincount(inverse[len(reference) :], minlength=len(_bins))
            exact = psi(reference, recent)
            assert abs(psi_counts(ref_counts, new_counts) - exact) <= 0.01 + 0.02 * exact, scale
