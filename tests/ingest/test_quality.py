"""The market-aware checks of one series (mfs.ingest.quality): what each kind of evidence finds,
and that clean series — a year of the synthetic market, real recorded daily bars — raise none of
them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfs.bench.quality import RECORDED, recorded_daily
from mfs.calendar import daily_bar_label
from mfs.config import QualityConfig
from mfs.ingest.quality import Split, check_bars, examine
from mfs.sources.synthetic import synthetic_bars

ASOF = pd.Timestamp("2025-12-31 23:00", tz="UTC")
RULES = QualityConfig()
PRICES = ["open", "high", "low", "close"]


def hourly(symbol: str = "AAPL", start: str = "2025-11-03", end: str = "2025-11-22") -> pd.DataFrame:
    return synthetic_bars(symbol, "1h", start, end, asof=ASOF)


def kinds(found) -> list[str]:
    return [f.kind for f in found.findings]


@pytest.mark.parametrize("factor", [0.3, 0.1, 2.5])
@pytest.mark.parametrize("interval", ["1h", "1d"])
def test_a_level_shift_of_any_size_is_stored_with_one_anomaly(interval, factor):
    bars = synthetic_bars("PEP", interval, "2025-06-01" if interval == "1d" else "2025-11-03", "2025-11-22", asof=ASOF)
    at = len(bars) // 2
    bars.loc[at:, PRICES] *= factor
    found = examine(bars, interval, RULES)
    assert not found.held.any()
    assert kinds(found) == ["level_shift"]
    assert found.findings[0].ts == bars.loc[at, "ts"] and not found.findings[0].held


@pytest.mark.parametrize(
    ("factor", "kind"), [(10.0, "power_of_ten"), (100.0, "power_of_ten"), (0.01, "power_of_ten"), (3.0, "spike")]
)
def test_a_one_bar_spike_that_reverts_is_held_back_and_its_neighbours_kept(factor, kind):
    bars = hourly()
    bars.loc[40, PRICES] *= factor
    found = examine(bars, "1h", RULES)
    assert kinds(found) == [kind]
    assert list(np.flatnonzero(found.held)) == [40] and found.findings[0].held


def test_a_jump_on_the_newest_bar_is_stored_unconfirmed():
    bars = hourly()
    bars.loc[len(bars) - 1, PRICES] *= 10
    found = examine(bars, "1h", RULES)
    assert kinds(found) == ["level_shift"] and not found.held.any()
    assert "not yet confirmed" in found.findings[0].detail


def _unadjusted(bars: pd.DataFrame, day: str, ratio: float) -> pd.DataFrame:
    after = bars["ts"] >= daily_bar_label(pd.Timestamp(day))
    bars.loc[after, PRICES] /= ratio
    return bars


def test_an_unadjusted_split_holds_back_every_bar_from_the_ex_date():
    bars = _unadjusted(hourly(), "2025-11-12", 4.0)
    split = Split(daily_bar_label(pd.Timestamp("2025-11-12")), 4.0)
    found = examine(bars, "1h", RULES, splits=[split])
    after = (bars["ts"] >= split.ex_label).to_numpy()
    assert (found.held == after).all() and after.any()
    assert set(kinds(found)) == {"unadjusted_split"} and all(f.severity == "high" for f in found.findings)
    # without the split event the same series is a level shift, stored
    assert kinds(examine(bars, "1h", RULES)) == ["level_shift"]


def test_a_properly_adjusted_split_raises_nothing_and_a_phantom_one_is_held():
    bars = hourly()
    split = Split(daily_bar_label(pd.Timestamp("2025-11-12")), 4.0)
    assert examine(bars, "1h", RULES, splits=[split]).findings == []
    before = bars["ts"] < split.ex_label
    bars.loc[before, PRICES] /= 4.0  # adjusted for a split the prices do not show
    found = examine(bars, "1h", RULES, splits=[split])
    assert set(kinds(found)) == {"phantom_split"} and found.held.sum() == (~before).sum()


def test_stale_bars_and_gaps_are_recorded_not_held():
    bars = hourly()
    frozen = bars.loc[19, "close"]
    bars.loc[20:23, PRICES] = frozen
    bars.loc[20:23, "volume"] = 0
    found = examine(bars.drop(index=[50]).reset_index(drop=True), "1h", RULES, served_ns=None)
    assert sorted(kinds(found)) == ["gap", "stale"] and not found.held.any()
    stale = next(f for f in found.findings if f.kind == "stale")
    assert stale.ts == bars.loc[20, "ts"] and "4 hourly bars" in stale.detail
    assert next(f for f in found.findings if f.kind == "gap").ts == bars.loc[50, "ts"]


def test_check_bars_splits_the_response_into_stored_and_held():
    bars = hourly()
    bars.loc[30, PRICES] *= 100
    checked = check_bars(bars, "1h", RULES, asof=ASOF)
    assert len(checked.good) == len(bars) - 1 and len(checked.held) == 1
    assert checked.held["ts"].iloc[0] == bars.loc[30, "ts"]
    off = check_bars(bars, "1h", QualityConfig(enabled=False), asof=ASOF)
    assert len(off.good) == len(bars) and off.findings == []


# -- false positives: clean series raise nothing -----------------------------------------------


def _synthetic_year(interval: str, symbols: list[str]):
    for symbol in symbols:
        yield symbol, synthetic_bars(symbol, interval, "2024-12-01", "2025-12-01", asof=ASOF)


SYNTHETIC = ["AAPL", "MSFT", "NVDA", "PEP", "KO", "XOM", "JPM", "TSLA", "SPY", "BRK-B", "GME", "AMC"]


@pytest.mark.parametrize("interval", ["1h", "1d"])
def test_a_clean_year_of_the_synthetic_market_raises_no_anomaly(interval):
    bars_seen = 0
    for _symbol, bars in _synthetic_year(interval, SYNTHETIC):
        found = examine(bars, interval, RULES)
        assert found.findings == [], found.findings[:3]
        bars_seen += len(bars)
    assert bars_seen > (12 * 1700 if interval == "1h" else 12 * 240)


def test_real_recorded_daily_bars_hold_nothing_back_and_record_only_real_moves():
    found = {s: examine(recorded_daily(s), "1d", RULES) for s in RECORDED}
    assert all(not f.held.any() for f in found.values())
    recorded = {
        (s, f.kind, f.ts.tz_convert("America/New_York").date().isoformat())
        for s, e in found.items()
        for f in e.findings
    }
    # AAPL's profit warning of 2000-09-29 (-52% in a day): a real move, stored, doubt recorded.
    assert ("AAPL", "level_shift", "2000-09-29") in recorded
    assert {kind for _s, kind, _d in recorded} <= {"level_shift", "gap"}


def test_real_unadjusted_splits_are_recognised_from_their_events():
    # The recorded closes are as traded: AAPL split 2:1 on 2000-06-21 and 2005-02-28.
    from bokeh_sampledata import stocks

    raw = pd.DataFrame(stocks.AAPL)
    days = pd.DatetimeIndex(pd.to_datetime(raw["date"])).tz_localize("America/New_York").tz_convert("UTC")
    frame = pd.DataFrame({"ts": days, **{c: raw[c].astype(float) for c in PRICES}})
    frame = frame[
        (frame["ts"] >= pd.Timestamp("2005-01-01", tz="UTC")) & (frame["ts"] < pd.Timestamp("2005-06-01", tz="UTC"))
    ]
    frame = frame.reset_index(drop=True)
    split = Split(daily_bar_label(pd.Timestamp("2005-02-28")), 2.0)
    found = examine(frame, "1d", RULES, splits=[split])
    assert found.findings[0].kind == "unadjusted_split"
    assert found.held.sum() == (frame["ts"] >= split.ex_label).sum()


def test_with_newest_jump_hold_the_newest_bar_waits_for_confirmation():
    bars = hourly()
    bars.loc[len(bars) - 1, PRICES] *= 0.3
    found = examine(bars, "1h", QualityConfig(newest_jump="hold"))
    assert kinds(found) == ["level_shift"] and list(np.flatnonzero(found.held)) == [len(bars) - 1]
    assert found.findings[0].held and "held until a later bar confirms it" in found.findings[0].detail
