"""The scaling benchmark's order of runs and how the smallest scale's runs are combined."""

from __future__ import annotations

from mfs.bench import scaling


def test_the_smallest_scale_runs_before_each_larger_one_and_after_the_last():
    assert scaling._interleaved([500, 2000, 8000]) == [500, 2000, 500, 8000, 500]
    assert scaling._interleaved([2, 4]) == [2, 4, 2]


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
