"""Bar validation: each defect is caught with its reason; good bars pass untouched."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mfs.ingest.validate import validate_bars
from mfs.sources.synthetic import synthetic_bars

ASOF = "2025-12-31 23:00Z"


def hourly() -> pd.DataFrame:
    return synthetic_bars("AAPL", "1h", "2025-11-03", "2025-11-08", asof=ASOF)


def test_good_bars_pass():
    for interval in ("1h", "1d"):
        bars = synthetic_bars("AAPL", interval, "2025-01-01", "2025-12-01", asof=ASOF)
        checked = validate_bars(bars, interval)
        assert checked.rejected == []
        pd.testing.assert_frame_equal(checked.good, bars)


def test_each_defect_is_quarantined_with_its_reason():
    bars = hourly()
    bars.loc[1, "close"] = np.nan
    bars.loc[3, "open"] = -1.0
    bars.loc[5, "high"] = bars.loc[5, "low"] - 1
    bars.loc[7, "volume"] = -5
    bars.loc[9, ["open", "high", "low", "close"]] *= 10  # plausible on its own: not validation's call
    saturday = bars.iloc[[0]].assign(ts=pd.Timestamp("2025-11-08 14:30", tz="UTC"))
    evening = bars.iloc[[0]].assign(ts=pd.Timestamp("2025-11-04 23:30", tz="UTC"))
    duplicate = bars.iloc[[11]]
    frame = pd.concat([bars, saturday, evening, duplicate], ignore_index=True)
    checked = validate_bars(frame, "1h")
    assert checked.reasons == {
        "not_finite": 1,
        "non_positive": 1,
        "range": 1,
        "bad_volume": 1,
        "outside_session": 2,
        "duplicate_ts": 1,
    }
    assert len(checked.good) == len(bars) - 4
    assert checked.good["ts"].is_unique
    by_code = {r["code"]: r for r in checked.rejected}
    assert by_code["not_finite"]["raw"]["close"] == "nan"
    assert "close" in by_code["not_finite"]["reason"]
    assert by_code["bad_volume"]["raw"]["volume"] == -5
    # a move of any size is a bar: mfs.ingest.quality decides whether it is a market event
    assert {bars.loc[9, "ts"], bars.loc[10, "ts"]} <= set(checked.good["ts"])


def test_fractional_volume_is_refused_and_no_move_is():
    bars = hourly()
    bars["volume"] = bars["volume"].astype(float)
    bars.loc[2, "volume"] = 10.5
    bars.loc[4:, ["open", "high", "low", "close"]] *= 0.1  # -90% from bar 4 on
    assert validate_bars(bars, "1h").reasons == {"bad_volume": 1}


def test_daily_bar_must_be_labelled_with_a_session_date():
    bars = synthetic_bars("MSFT", "1d", "2025-11-01", "2025-12-01", asof=ASOF)
    bars.loc[2, "ts"] = bars.loc[2, "ts"] + pd.Timedelta(hours=14)  # 14:30 UTC instead of NY midnight
    checked = validate_bars(bars, "1d")
    assert checked.reasons == {"outside_session": 1}


def test_the_order_and_index_of_the_input_do_not_matter_and_it_is_left_alone():
    bars = hourly()
    shuffled = bars.sample(frac=1, random_state=7)
    shuffled.index = shuffled.index * 10  # a filtered or concatenated frame's index
    shuffled["volume"] = shuffled["volume"].astype(float)
    before = shuffled.copy()
    for given in (shuffled, shuffled.sort_values("ts"), bars.iloc[[5]]):
        checked = validate_bars(given, "1h")
        assert checked.rejected == []
        expected = bars.set_index("ts").loc[given["ts"].sort_values()].reset_index()[list(bars.columns)]
        pd.testing.assert_frame_equal(checked.good, expected)
    pd.testing.assert_frame_equal(shuffled, before)


def test_a_bar_without_a_timestamp_is_quarantined():
    bars = hourly()
    bars.loc[3, "ts"] = pd.NaT
    checked = validate_bars(bars, "1h")
    assert checked.reasons == {"outside_session": 1}
    assert checked.good["ts"].is_monotonic_increasing and len(checked.good) == len(bars) - 1
