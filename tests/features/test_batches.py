"""How a run that reads whole histories cuts its symbols into batches: by bars, not by symbols."""

from __future__ import annotations

from mfs.features.pool import batches_by_rows


def test_batches_hold_at_most_the_symbols_and_the_bars_allowed_in_order():
    bars = {"A": 60, "B": 30, "C": 30, "D": 10, "E": 200, "F": 5}
    batches = batches_by_rows(list("ABCDEF"), 3, bars, limit=100)
    assert batches == [["A", "B"], ["C", "D"], ["E"], ["F"]]  # E alone: more bars than the limit
    assert batches_by_rows(list("ABCDEF"), 2, {}, limit=100) == [["A", "B"], ["C", "D"], ["E", "F"]]


def test_a_deeper_history_makes_smaller_batches_of_the_same_bars():
    symbols = [f"S{i}" for i in range(500)]
    shallow = batches_by_rows(symbols, 100, dict.fromkeys(symbols, 284))  # 60 days of hourly bars
    deep = batches_by_rows(symbols, 100, dict.fromkeys(symbols, 3_485))  # 730 days
    assert max(map(len, shallow)) == 100 and max(len(b) * 3_485 for b in deep) <= 100_000
