"""What a flow asks of Prefect at run time: its run id, the market gate, timeouts, and scale-out
by shards. (No task retries: ``mfs.ingest`` retries each Yahoo request itself.)

Scale-out uses Prefect itself: a parent run splits its symbols into N subsets and submits one
run of the same deployment per subset to the work pool (``run_deployment``); whichever workers
poll the pool — on this machine or others — pick them up. No scheduler of our own.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

from prefect import runtime
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.states import Completed, State

from mfs.calendar import market_gate
from mfs.config import get_config
from mfs.errors import ConfigError, RunFailedError
from mfs.flow_names import CONFIG_KEYS, FEATURES, run_name
from mfs.logs import get_logger
from mfs.market import normalize_symbols
from mfs.orchestration.artifacts import publish_shards
from mfs.runs import finish_run, start_run

log = get_logger("mfs.orchestration.runtime")
MARKET_CLOSED = "Market closed"
# A Completed state of its own for a run whose data has high-severity anomalies: it did its work,
# and a person must look (the alert automations listen for it).
DATA_ANOMALIES = "Data anomalies"
# A Completed state of its own for a run that did its work and found nothing to write: a collect
# whose bars were all stored already, a features run with no new bar. It must not look like a run
# that wrote something (the UI colours both green).
NOTHING_NEW = "Nothing new"
# A Completed state of its own for a features run whose drift check found features beyond their
# threshold (mfs.features.monitoring.drift): the rows are written, and a person must look.
FEATURE_DRIFT = "Feature drift"
SHARD_POLL_S = 2.0


def current_run_id() -> str | None:
    """The Prefect flow run id: passed as ``run_id`` so pipeline_runs and the UI line up."""
    run_id = runtime.flow_run.id
    return str(run_id) if run_id else None


def flow_run_name() -> str:
    """A flow run's name (Prefect's ``flow_run_name``): what it covers and the New York time it
    runs for — ``features 1h · 2026-12-07 13:05 ET``. A shard keeps the name its parent gave it
    (the parent's name and which shard)."""
    params = dict(runtime.flow_run.parameters or {})
    if params.get("shard_of") and runtime.flow_run.name:
        return str(runtime.flow_run.name)
    when = params.get("asof") or runtime.flow_run.scheduled_start_time or dt.datetime.now(dt.UTC)
    if isinstance(when, str):
        when = dt.datetime.fromisoformat(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return run_name(runtime.flow_run.flow_name, params, when, list(get_config().intervals))


def flow_timeout(flow: str) -> float | None:
    """orchestration.timeout_s of ``flow`` (a name of mfs.flow_names)."""
    return get_config().orchestration.timeout_s.get(CONFIG_KEYS.get(flow, flow))


def offline_requested(offline: bool) -> bool:
    """A parameter, or MFS_OFFLINE=1 on the worker (a fully offline stack: synthetic Yahoo)."""
    return bool(offline) or os.environ.get("MFS_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def market_closed_state(asof: dt.datetime | None = None, flow: str | None = None) -> State | None:
    """None when the market gate is open at ``asof`` (default: the run's scheduled start),
    else a Completed state named "Market closed" — a quick non-failure end for holidays,
    weekends and hours after a half day's close. With ``flow``, the run is recorded in
    pipeline_runs with status 'market_closed' (so "no run today" is visible in SQL too)."""
    when = asof or runtime.flow_run.scheduled_start_time or dt.datetime.now(dt.UTC)
    is_open, reason = market_gate(when)
    if is_open:
        return None
    log.info(f"market closed, nothing to do: {reason}", asof=str(when))
    run_id = current_run_id()
    if flow and run_id:
        start_run(run_id, flow, {"asof": str(when)})
        finish_run(run_id, "market_closed", {}, reason)
    return Completed(name=MARKET_CLOSED, message=reason)


def split_symbols(symbols: list[str], shards: int) -> list[list[str]]:
    """Round-robin subsets (no empty ones): shard i gets symbols i, i+N, i+2N, …"""
    if shards < 1:
        raise ValueError(f"shards must be ≥ 1, got {shards}")
    return [part for part in (symbols[i::shards] for i in range(shards)) if part]


def run_shards(parameters: dict[str, Any], shards: int) -> dict[str, Any]:
    """Submit one run of this deployment per symbol subset, wait for all, fail if any failed."""
    deployment = runtime.deployment.name
    flow_name = runtime.flow_run.flow_name
    if not deployment:
        raise ConfigError("shards > 1 needs a deployment run (shards are submitted to its work pool)")
    symbols = normalize_symbols(parameters.get("symbols") or get_config().symbols)
    parent = current_run_id()
    submitted = []
    for index, part in enumerate(split_symbols(symbols, shards), start=1):
        child = run_deployment(
            name=f"{flow_name}/{deployment}",
            timeout=0,
            parameters={
                **parameters,
                "symbols": part,
                "shards": 1,
                "shard_of": parent,
                "market_hours_only": False,
            },  # the parent already passed the gate
            flow_run_name=f"{runtime.flow_run.name}-shard-{index}of{shards}",
        )
        assert isinstance(child, FlowRun)  # called from a sync flow: the run, not a coroutine
        submitted.append((index, part, child.id))
        log.info("shard submitted", shard=index, symbols=len(part), flow_run=str(child.id))
    rows = _wait_for_runs(submitted)
    failed = [r for r in rows if r["state type"] != "COMPLETED"]
    outcome = f"{len(failed)} of {len(rows)} shards did not complete" if failed else f"{len(rows)} shards completed"
    publish_shards(flow_name, rows, outcome)
    if failed:
        raise RunFailedError(f"{flow_name}: {outcome}: " + ", ".join(f"{r['flow run']} {r['state']}" for r in failed))
    return {"shards": len(rows), "symbols": len(symbols)}


def _wait_for_runs(submitted: list[tuple[int, list[str], Any]]) -> list[dict[str, Any]]:
    with get_client(sync_client=True) as client:
        while True:
            runs = [client.read_flow_run(run_id) for _i, _p, run_id in submitted]
            if all(r.state is not None and r.state.is_final() for r in runs):
                break
            time.sleep(SHARD_POLL_S)
    return [
        {
            "shard": index,
            "flow run": run.name,
            "state": run.state.name if run.state else "unknown",
            "state type": run.state.type.value if run.state else "UNKNOWN",
            "symbols": ",".join(part),
        }
        for (index, part, _id), run in zip(submitted, runs, strict=False)
    ]


def anomalies_state(counts: dict[str, Any]) -> State | None:
    """A Completed state named "Data anomalies" when the run recorded high-severity anomalies
    (``counts``: its ``RunCounts.as_dict()``), saying how many and the first ones; else None."""
    summary = counts.get("anomalies") or {}
    high = [a for a in summary.get("list", []) if a["severity"] == "high"]
    if not summary.get("high"):
        return None
    first = "; ".join(f"{a['symbol']} {a['interval']} {a['ts']}: {a['kind']}" for a in high[:3])
    message = (
        f"{summary['high']} high-severity data anomalies ({summary.get('held_back', 0)} bars held back): {first}"
        " — see the run's anomalies artifact or the data_quality view"
    )
    log.warning("run completed with high-severity data anomalies", high=summary["high"])
    return Completed(name=DATA_ANOMALIES, message=message, data=counts)


def nothing_new_state(flow: str, counts: dict[str, Any]) -> State | None:
    """A Completed state named "Nothing new" when a run without failed symbols wrote nothing
    (``counts``: its ``RunCounts.as_dict()``): no bar inserted or changed by a collect or a
    backfill, no feature row written by a features run; else None."""
    if counts.get("symbols_failed"):
        return None
    if flow == FEATURES:
        if counts.get("written"):
            return None
        message = f"{counts.get('fetched', 0)} bars read, no feature row to write: every bar has its features already"
    else:
        if counts.get("inserted") or counts.get("updated"):
            return None
        message = f"{counts.get('fetched', 0)} bars fetched, none new or changed: the store had them all"
    log.info(f"nothing new: {message}")
    return Completed(name=NOTHING_NEW, message=message, data=counts)


def drift_state(counts: dict[str, Any]) -> State | None:
    """A Completed state named "Feature drift" when the run's drift check found drifting features
    (``counts["monitoring"]["drifting"]``), naming the first ones; else None."""
    drifting = (counts.get("monitoring") or {}).get("drifting") or []
    if not drifting:
        return None
    first = "; ".join(
        f"{d['feature']} {d['interval']} ({d['symbol_group']}): PSI {d['psi']:.2f} > {d['threshold']:.2f}"
        for d in drifting[:3]
    )
    message = f"{len(drifting)} drifting feature(s): {first} — see the run's drift artifact or the feature_drift view"
    log.warning("run completed with drifting features", drifting=len(drifting))
    return Completed(name=FEATURE_DRIFT, message=message, data=counts)
