"""The scaling benchmark's order of runs and how the smallest scale's runs are combined."""

from __future__ import annotations

import pandas as pd

from mfs.bench import scaling


def test_the_smallest_scale_runs_before_each_larger_one_and_after_the_last():
    assert scaling._interleaved([500, 2000, 8000]) == [500, 500, 2000, 500, 500, 8000, 500, 500]
    assert scaling._interleaved([2, 4], smallest_each_time=1) == [2, 4, 2]


def test_runs_combine_as_medians_with_the_highest_peak_memory():
    runs = [
        {"symbols": 500, "edition": "apache", "ingest_s": 1.0, "product_peak_rss_mb": 700.0, "bars": 10},
        {"symbols": 500, "edition": "apache", "ingest_s": 3.0, "product_peak_rss_mb": 760.0, "bars": 10},
        {"symbols": 500, "edition": "apache", "ingest_s": 1.5, "product_peak_rss_mb": 720.0, "bars": 10},
    ]
    assert scaling._median_of_runs(runs) == {
        "symbols": 500,
        "edition": "apache",
        "ingest_s": 1.5,
        "product_peak_rss_mb": 760.0,
        "bars": 10,
        "runs": 3,
    }


def _store(
    n: int, ingest_s: float, history_ms: list[float], new_hour_ms: list[float], control_ms: list[float] | None = None
) -> scaling._Store:
    figures = {"symbols": n, "ingest_s": ingest_s, "ingest_new_hour_s": sum(new_hour_ms) * n / 1000}
    batch_ms = {
        scaling.PER_BATCH["ingest_s"]: history_ms,
        scaling.PER_BATCH["ingest_new_hour_s"]: new_hour_ms,
        scaling.HISTORY_CONTROL: control_ms or [],
    }
    return scaling._Store("postgresql://x/y", [], pd.Timestamp("2026-01-02", tz="UTC"), {}, figures, batch_ms)


def test_the_ingest_is_compared_by_the_median_batch_of_every_store_of_a_scale():
    small = scaling._combined([_store(2, 1.0, [500.0], [1.0, 1.0]), _store(2, 3.0, [1500.0], [1.0, 9.0])])
    # One slow batch in sixteen costs the large store's sum, not its median batch.
    large = scaling._combined([_store(32, 20.0, [600.0] * 15 + [6000.0], [1.1] * 16)])
    assert small[scaling.PER_BATCH["ingest_s"]] == 1000.0  # the median of both stores' batches
    assert small[scaling.PER_BATCH["ingest_new_hour_s"]] == 1.0
    vs_linear = scaling._vs_linear(large, small)
    assert vs_linear == {"ingest_s": 0.6, "ingest_new_hour_s": 1.1}
    # Phases timed as one call compare seconds per symbol.
    small["features_backfill_s"], large["features_backfill_s"] = 2.0, 40.0
    assert scaling._vs_linear(large, small)["features_backfill_s"] == 1.25


def test_a_larger_store_history_is_compared_with_its_control_batches():
    small = scaling._combined([_store(2, 1.0, [500.0], [1.0]), _store(2, 1.0, [500.0], [1.0])])
    # Stored while the host was slower: its batches and their controls both cost more.
    large = scaling._combined([_store(32, 20.0, [900.0] * 16, [1.0] * 16, control_ms=[800.0] * 15 + [90.0])])
    assert scaling.HISTORY_CONTROL not in small
    assert large[scaling.HISTORY_CONTROL] == 800.0
    assert scaling._vs_linear(large, small)["ingest_s"] == 1.12  # not 900 / 500 = 1.8


def test_progress_labels_name_the_depth_only_when_several_are_run():
    assert scaling._label(500, None, 2, 4) == "[500 symbols, run 2 of 4] "
    assert scaling._label(500, 730) == "[500 symbols x 730 days] "
