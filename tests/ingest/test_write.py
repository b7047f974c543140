"""How ``store_bars`` cuts its frames into transactions."""

from __future__ import annotations

import pandas as pd

from mfs.ingest.write import BATCH_MAX_SYMBOLS, BATCH_MIN_BARS, _batches


def _frames(count: int, bars: int) -> list[tuple[str, pd.DataFrame]]:
    frame = pd.DataFrame({"ts": range(bars)})
    return [(f"S{i}", frame) for i in range(count)]


def test_history_keeps_the_configured_batch_size():
    per_symbol = BATCH_MIN_BARS // 10  # 25 symbols hold far more than a batch's minimum
    batches = _batches(_frames(60, per_symbol), 25)
    assert [len(b) for b in batches] == [25, 25, 10]
    assert [s for b in batches for s, _ in b] == [f"S{i}" for i in range(60)]


def test_one_new_bar_per_symbol_fills_a_batch_up_to_its_symbol_limit():
    batches = _batches(_frames(2 * BATCH_MAX_SYMBOLS + 3, 1), 25)
    assert [len(b) for b in batches] == [BATCH_MAX_SYMBOLS, BATCH_MAX_SYMBOLS, 3]


def test_a_batch_closes_once_it_holds_the_minimum_of_bars():
    small, large = _frames(30, 1), _frames(30, BATCH_MIN_BARS)
    batches = _batches(small + large, 25)
    # 30 one-bar symbols, then the first large one brings the batch over the minimum
    assert [len(b) for b in batches] == [31, 25, 4]
