"""Market gating and shard splitting (pure parts of mfs.orchestration.runtime)."""

from __future__ import annotations

import datetime as dt

import pytest

from mfs.orchestration.runtime import MARKET_CLOSED, market_closed_state, split_symbols

UTC = dt.UTC


@pytest.mark.parametrize(
    "when, closed",
    [
        (dt.datetime(2027, 1, 1, 15, tzinfo=UTC), True),  # New Year's Day, 10:00 New York
        (dt.datetime(2026, 11, 28, 15, tzinfo=UTC), True),  # Saturday
        (dt.datetime(2026, 11, 27, 19, tzinfo=UTC), False),  # half day, 14:00 NY: last bar's final values
        (dt.datetime(2026, 11, 27, 20, tzinfo=UTC), True),  # half day, 15:00 NY: closed since 13:00
        (dt.datetime(2026, 11, 30, 14, tzinfo=UTC), False),  # Monday 09:00 NY, before the open
        (dt.datetime(2026, 11, 30, 21, tzinfo=UTC), False),  # Monday 16:00 NY, the 15:30 bar completes
        (dt.datetime(2027, 3, 8, 13, tzinfo=UTC), False),  # after the DST change: 09:00 NY is 13:00 UTC
    ],
)
def test_market_gate_states(when, closed):
    state = market_closed_state(when)
    if closed:
        assert state is not None and state.is_completed() and state.name == MARKET_CLOSED
        assert state.message.startswith("market closed")
    else:
        assert state is None


def test_split_symbols_round_robin_without_empty_shards():
    assert split_symbols(["A", "B", "C", "D", "E"], 2) == [["A", "C", "E"], ["B", "D"]]
    assert split_symbols(["A"], 3) == [["A"]]
    with pytest.raises(ValueError, match="shards"):
        split_symbols(["A"], 0)


def test_flow_timeouts_come_from_config():
    from flows.collect import collect
    from flows.features import features
    from flows.full_backfill import full_backfill
    from mfs.config import get_config

    timeouts = get_config().orchestration.timeout_s
    assert collect.timeout_seconds == timeouts["collect"] < 3600  # an hourly run never overlaps the next
    assert features.timeout_seconds == timeouts["features"] < 3600
    assert full_backfill.timeout_seconds == timeouts["full_backfill"]
