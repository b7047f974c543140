"""`collect` — recent Yahoo bars for the configured symbols (deployment `yahoo-hourly`)."""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext

from prefect import flow
from prefect.states import State

from flows.common import fetch_bars, judged
from mfs.config import get_config
from mfs.flow_names import COLLECT
from mfs.orchestration.locks import run_lock
from mfs.orchestration.runtime import flow_run_name, flow_timeout, market_closed_state, offline_requested, run_shards


@flow(name=COLLECT, flow_run_name=flow_run_name, timeout_seconds=flow_timeout(COLLECT))
def collect(
    symbols: list[str] | None = None,
    interval: str | None = None,
    days: int | None = None,
    offline: bool = False,
    shards: int = 1,
    market_hours_only: bool = True,
    asof: dt.datetime | None = None,
    shard_of: str | None = None,
) -> dict | State:
    """symbols: default from config; interval: 1h or 1d, default every configured interval;
    days: default ingest.incremental_days; offline: synthetic Yahoo; shards: split into N runs of
    this deployment for the work pool; market_hours_only: end "Market closed" outside NYSE
    sessions (asof: judge this time instead of the schedule's)."""
    if market_hours_only and (closed := market_closed_state(asof, COLLECT)):
        return closed
    wait_s = get_config().orchestration.lock_wait_s
    offline = offline_requested(offline)
    if shards > 1:
        with run_lock(COLLECT, wait_s):
            return run_shards({"symbols": symbols, "interval": interval, "days": days, "offline": offline}, shards)
    with nullcontext() if shard_of else run_lock(COLLECT, wait_s):  # the parent holds it for shards
        return judged(COLLECT, lambda run_id: fetch_bars(symbols, interval, days, offline, run_id))
