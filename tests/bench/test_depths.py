"""The scaling benchmark's comparison of depths: the hourly work and peaks as they are, the
history per bar stored."""

from __future__ import annotations

from mfs.bench import depths


def test_depths_compare_the_hourly_work_as_it_is_and_the_history_per_bar():
    shallow = {"symbols": 250, "bars": 1_000, "aggregate_refresh_s": 0.2, "features_backfill_s": 1.0}
    deep = {"symbols": 250, "bars": 12_000, "aggregate_refresh_s": 0.8, "features_backfill_s": 18.0}
    deep["product_peak_rss_mb"] = shallow["product_peak_rss_mb"] = 700.0
    ratios = depths.vs_depth([{"days": 60, "scales": [shallow]}, {"days": 730, "scales": [deep]}])
    # An hour's refresh should not grow with the history (4.0: it does); the backfill per bar 1.5x.
    assert ratios == {
        "250": {"730": {"aggregate_refresh_s": 4.0, "features_backfill_s": 1.5, "product_peak_rss_mb": 1.0}}
    }
