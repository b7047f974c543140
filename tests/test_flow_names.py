"""Flow run names say what a run covers: flow, interval(s), symbols, history, New York time."""

from __future__ import annotations

import datetime as dt

from mfs.flow_names import run_name

AT = dt.datetime(2026, 12, 7, 18, 5, tzinfo=dt.UTC)  # 13:05 New York (EST)


def test_a_scheduled_run_of_one_interval() -> None:
    assert run_name("features", {"interval": "1h"}, AT, ["1h", "1d"]) == "features 1h · 2026-12-07 13:05 ET"


def test_every_interval_symbols_by_name_or_count_full_and_days() -> None:
    assert run_name("collect", {"symbols": ["AAPL", "MSFT"], "days": 3}, AT, ["1h", "1d"]) == (
        "collect 1h+1d · AAPL,MSFT · 3 days · 2026-12-07 13:05 ET"
    )
    assert run_name("collect", {"symbols": "AAPL,MSFT"}, AT, ["1h"]) == "collect 1h · AAPL,MSFT · 2026-12-07 13:05 ET"
    many = [f"S{i}" for i in range(40)]
    assert run_name("features", {"symbols": many, "full": True}, AT, ["1h"]) == (
        "features 1h · 40 symbols · full history · 2026-12-07 13:05 ET"
    )


def test_new_york_time_follows_daylight_saving() -> None:
    summer = dt.datetime(2026, 7, 1, 17, 5, tzinfo=dt.UTC)  # 13:05 EDT
    assert run_name("collect", {}, summer, ["1h", "1d"]).endswith("2026-07-01 13:05 ET")
