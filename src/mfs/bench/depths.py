"""How the scaling benchmark's phases grow with the depth of the history (``mfs bench --scales
250,500 --days 60,730``): at the same number of symbols, each phase's figure at every depth over
the shallowest depth's."""

from __future__ import annotations

from typing import Any

# With several depths (``--days 60,730``), each phase compared at the same number of symbols: the
# hourly work and the peaks as they are (each should not grow with the history: 1.0 = flat), the
# history's work per bar stored (1.0 = linear in the depth).
DEPTH_PHASES = {
    "ingest_new_hour_s": "per hour",
    "features_incremental_s": "per hour",
    "aggregate_refresh_s": "per hour",
    "ingest_s": "per bar",
    "features_backfill_s": "per bar",
    "aggregate_backfill_refresh_s": "per bar",
    "product_peak_rss_mb": "peak",
    "features_backfill_peak_rss_mb": "peak",
    "new_hour_peak_rss_mb": "peak",
}


def vs_depth(by_depth: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per scale (symbols) and deeper depth (days), each DEPTH_PHASES figure over the shallowest
    depth's: a cost per hour or a peak as it is, a cost of the history per bar stored."""
    base = by_depth[0]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for i, first in enumerate(base["scales"]):
        ratios = {}
        for depth in by_depth[1:]:
            result = depth["scales"][i]
            ratios[str(depth["days"])] = {
                k: round(depth_figure(result, k) / depth_figure(first, k), 2)
                for k in DEPTH_PHASES
                if depth_figure(first, k) and depth_figure(result, k)
            }
        out[str(first["symbols"])] = ratios
    return out


def depth_figure(result: dict[str, Any], phase: str) -> float:
    """A phase's figure as DEPTH_PHASES compares it across depths (0.0 when it is missing)."""
    value = result.get(phase) or 0.0
    if DEPTH_PHASES.get(phase) == "per bar":
        return value / result["bars"] if result.get("bars") else 0.0
    return float(value)
