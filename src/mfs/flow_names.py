"""The pipeline's flow names, defined once: Prefect flow names, run names in ``pipeline_runs``,
run-lock names, and the keys of their per-flow settings; and the name of each flow run, which
says what the run covers (``features 1h · 2026-12-07 13:05 ET``) instead of Prefect's random one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from mfs.market import NY

COLLECT = "collect"  # recent bars (deployment yahoo-hourly); also the lock every bar writer takes
FEATURES = "features"  # indicators for new bars (deployment features-hourly)
BACKFILL = "backfill"  # history of bars: `mfs backfill`, and the first stage of full-backfill
FULL_BACKFILL = "full-backfill"  # history, every feature, the aggregates (by hand)
FEATURE_AUDIT = "feature-audit"  # the daily self-audit of stored feature values (deployment feature-audit)
BACKUP = "backup"  # a pgBackRest backup of the local cluster (deployment nightly-backup)

# Keys of runs.expected_runtime_s and orchestration.timeout_s (YAML keys, hence underscores).
CONFIG_KEYS = {COLLECT: "collect", FEATURES: "features", FULL_BACKFILL: "full_backfill"}
# prefect.yaml's deployments and the flow each runs.
DEPLOYMENTS = {
    "yahoo-hourly": COLLECT,
    "features-hourly": FEATURES,
    "full-backfill": FULL_BACKFILL,
    "feature-audit": FEATURE_AUDIT,
    "nightly-backup": BACKUP,
}


def flow_of_config_key(key: str) -> str:
    """The flow a per-flow setting's key names (``full_backfill`` -> ``full-backfill``)."""
    return {k: flow for flow, k in CONFIG_KEYS.items()}.get(key, key)


def run_name(flow: str, parameters: Mapping[str, Any], when: dt.datetime, intervals: list[str]) -> str:
    """What a run covers, in its name: the flow and interval(s), the symbols when given (a list
    of up to three by name, more by count), full recomputes and history days, then the New York
    time it runs for (``asof``, else its scheduled start). ``intervals``: the configured ones, for
    a run of every interval."""
    parts = [f"{flow} {parameters.get('interval') or '+'.join(intervals)}"]
    symbols = parameters.get("symbols")
    if isinstance(symbols, str):  # "AAPL,MSFT" as typed in a UI form
        symbols = [s for s in symbols.split(",") if s.strip()]
    if symbols:
        parts.append(",".join(symbols) if len(symbols) <= 3 else f"{len(symbols)} symbols")
    if parameters.get("full"):
        parts.append("full history")
    if parameters.get("days"):
        parts.append(f"{parameters['days']} days")
    parts.append(f"{when.astimezone(ZoneInfo(NY)):%Y-%m-%d %H:%M} ET")
    return " · ".join(parts)


def artifact_key(flow: str, kind: str) -> str:
    """The key of a flow's artifact of ``kind``: Prefect keys allow lowercase letters, digits and dashes only."""
    return f"{flow}-{kind}".replace("_", "-").lower()
