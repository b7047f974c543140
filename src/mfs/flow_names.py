"""The pipeline's flow names, defined once: Prefect flow names, run names in ``pipeline_runs``,
run-lock names, and the keys of their per-flow settings."""

from __future__ import annotations

COLLECT = "collect"  # recent bars (deployment yahoo-hourly); also the lock every bar writer takes
FEATURES = "features"  # indicators for new bars (deployment features-hourly)
BACKFILL = "backfill"  # history of bars: `mfs backfill`, and the first stage of full-backfill
FULL_BACKFILL = "full-backfill"  # history, every feature, the aggregates (by hand)

# Keys of runs.expected_runtime_s and orchestration.timeout_s (YAML keys, hence underscores).
CONFIG_KEYS = {COLLECT: "collect", FEATURES: "features", FULL_BACKFILL: "full_backfill"}
# prefect.yaml's deployments and the flow each runs.
DEPLOYMENTS = {"yahoo-hourly": COLLECT, "features-hourly": FEATURES, "full-backfill": FULL_BACKFILL}


def flow_of_config_key(key: str) -> str:
    """The flow a per-flow setting's key names (``full_backfill`` -> ``full-backfill``)."""
    return {k: flow for flow, k in CONFIG_KEYS.items()}.get(key, key)
