"""`features` — indicators for new bars (deployment `features-hourly`)."""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext

from prefect import flow
from prefect.states import State

from flows.common import compute_features, judged
from mfs.config import get_config
from mfs.flow_names import COLLECT, FEATURES
from mfs.orchestration.locks import run_lock, wait_for_release
from mfs.orchestration.runtime import flow_run_name, flow_timeout, market_closed_state, run_shards


@flow(name=FEATURES, flow_run_name=flow_run_name, timeout_seconds=flow_timeout(FEATURES))
def features(
    symbols: list[str] | None = None,
    interval: str | None = None,
    full: bool = False,
    shards: int = 1,
    market_hours_only: bool = True,
    asof: dt.datetime | None = None,
    shard_of: str | None = None,
    wait_for_collect: bool = True,
) -> dict | State:
    """interval: 1h or 1d, default every configured interval; full: recompute all history
    instead of new bars; wait_for_collect: start only once a collection still writing bars has
    finished (scheduled five minutes after each collection, which can take longer than that)."""
    if market_hours_only and (closed := market_closed_state(asof, FEATURES)):
        return closed
    wait_s = get_config().orchestration.lock_wait_s
    if wait_for_collect and not shard_of:
        wait_for_release(COLLECT, wait_s)
    if shards > 1:
        with run_lock(FEATURES, wait_s):
            return run_shards(
                {"symbols": symbols, "interval": interval, "full": full, "wait_for_collect": False}, shards
            )
    with nullcontext() if shard_of else run_lock(FEATURES, wait_s):
        return judged(FEATURES, lambda run_id: compute_features(symbols, interval, full, run_id))
