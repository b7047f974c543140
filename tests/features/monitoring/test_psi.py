"""The PSI and the choice of monitored features, without a database."""

from __future__ import annotations

import numpy as np

from mfs.features import definitions
from mfs.features.monitoring.drift import monitored
from mfs.features.monitoring.psi import psi


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(7)
    reference = rng.normal(size=5000)
    assert psi(reference, rng.normal(size=500)) < 0.05
    assert 0.1 < psi(reference, rng.normal(0.5, 1, size=500)) < 0.5
    wider = psi(reference, rng.normal(0, 5, size=500))  # volatility × 5: mostly in the outer deciles
    assert wider > 1.5
    assert np.isnan(psi(reference, np.full(10, np.nan)))  # NULLs only: no verdict
    assert psi(np.r_[reference, np.nan], rng.normal(size=500)) < 0.05  # NULLs are left out


def test_the_monitored_features_are_the_scale_free_ones():
    names = set(monitored(definitions.load()))
    assert {"return_1", "rsi_14", "volatility_20", "range_pct", "natr_14", "bb_width", "volume_ratio_20"} <= names
    # levels follow the market's trend; calendar columns follow the calendar
    assert not names & {"sma_20", "ema_12", "obv", "atr_14", "macd", "volume_sma_20", "vwap_20", "hour_et", "dow_et"}
    assert len(names) == 20
