"""The built-in features, now defined in config/features.yaml, are bit-identical to what the engine
computed when they were hand-coded: ``data/builtin_features_v1.npz`` holds that engine's output
(feature_version 1) on random walks, a degenerate stretch (flat prices, zero volume), real daily AAPL
bars and an incremental window with OBV continued from a stored value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mfs.features import engine
from mfs.features.spec import FEATURE_NAMES

GOLDEN = Path(__file__).with_name("data") / "builtin_features_v1.npz"
CASES = ("walk0", "walk1", "degenerate", "daily", "aapl", "anchored")


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return dict(data)


@pytest.mark.parametrize("case", CASES)
def test_builtin_features_are_bit_identical_to_the_hand_coded_engine(golden, case) -> None:
    ts = pd.DatetimeIndex(golden[f"{case}__ts"]).tz_localize("UTC")
    bars = [golden[f"{case}__in_{c}"] for c in ("open", "high", "low", "close", "volume")]
    out = engine.compute(ts, *bars, obv_anchor=12345.0 if case == "anchored" else None)
    for name in FEATURE_NAMES:
        expected = golden[f"{case}__{name}"]
        assert out[name].dtype == expected.dtype, name
        assert np.array_equal(out[name], expected, equal_nan=True), name
