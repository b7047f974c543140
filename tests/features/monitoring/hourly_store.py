"""A store built by a backfill and two weeks of simulated hourly runs on a pinned clock: collect
at the hour, features five minutes later, four times a session (the runs at 10:00, 12:00 and
14:00 New York fetch the bar in progress: partial bars, completed by the next run), the half day
after Thanksgiving, a Yahoo correction of a past MSFT bar from 2026-11-20 on, and AAPL's 4-for-1
split on 2026-11-30 (Yahoo re-adjusts its whole history)."""

from __future__ import annotations

import pandas as pd

from mfs.calendar import sessions
from mfs.sources.yahoo import clear_request_cache
from tests.dataset.store import FEATURES_LAG, _pinned_run, empty_store, ny, pinned_runs

SYMBOLS = ["AAPL", "MSFT", "KO"]
CORRECTION = "correct:2026-11-18T15:30Z:1.01"  # the 10:30 bar of 2026-11-18, served 1% higher from 11-20 on
SPLIT = "split:2026-11-30:4"
DAYS = [d.strftime("%Y-%m-%d") for d in sessions("2026-11-16", "2026-11-30")]
HOURS = (10, 12, 14, 16)


def _faults(day: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if day >= "2026-11-20":
        out["MSFT"] = [CORRECTION]
    if day >= "2026-11-30":
        out["AAPL"] = [SPLIT]
    return out


def build_hourly_store(url: str, backfill_days: int = 90) -> list[pd.Timestamp]:
    """Build it; returns the collect moments (UTC)."""
    from mfs.sources.fake_yahoo import synthetic_session

    empty_store(url)
    moments = []
    with pinned_runs():
        days: int | None = backfill_days
        for day in DAYS:
            for hour in HOURS if day != "2026-11-27" else (10, 12, 13):  # a half day: closes at 13:00
                clear_request_cache()
                t = ny(day, hour)
                _pinned_run(t, SYMBOLS, synthetic_session, _faults(day), days=days)
                moments.append(t)
                days = None
    return moments


__all__ = ["FEATURES_LAG", "SYMBOLS", "build_hourly_store", "ny"]
