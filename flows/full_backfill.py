"""`full-backfill` — one year of bars, every feature, then the aggregate refresh. Each stage is a
subflow with its own flow run id, so each pipeline_runs row lines up with a run in the UI."""

from __future__ import annotations

from prefect import flow
from prefect.states import State

from flows.common import apply_retention, fetch_bars, judged, refresh_aggregates
from flows.features import features
from mfs.config import get_config
from mfs.flow_names import BACKFILL, COLLECT, FULL_BACKFILL
from mfs.orchestration.artifacts import publish_stages
from mfs.orchestration.locks import run_lock
from mfs.orchestration.runtime import flow_run_name, flow_timeout, offline_requested


@flow(name=BACKFILL, flow_run_name=flow_run_name, timeout_seconds=flow_timeout(FULL_BACKFILL))
def backfill(symbols: list[str] | None = None, days: int | None = None, offline: bool = False) -> dict | State:
    """Bars for `days` (default ingest.backfill_days) of history, hourly and daily."""
    with run_lock(COLLECT, get_config().orchestration.lock_wait_s):
        return judged(
            BACKFILL, lambda run_id: fetch_bars(symbols, None, days, offline_requested(offline), run_id, backfill=True)
        )


@flow(name=FULL_BACKFILL, flow_run_name=flow_run_name, timeout_seconds=flow_timeout(FULL_BACKFILL))
def full_backfill(symbols: list[str] | None = None, days: int | None = None, offline: bool = False) -> dict:
    """symbols: default from config; days: default ingest.backfill_days (365); offline: synthetic Yahoo.
    Its own page carries every stage's per-symbol results (the subflows' pages have theirs)."""
    stages = [backfill(symbols, days, offline, return_state=True)]
    if stages[0].is_completed():  # every interval, after the bars
        stages.append(
            features(symbols, None, full=True, market_hours_only=False, wait_for_collect=False, return_state=True)
        )
    unfinished = [s for s in stages if not s.is_completed()]
    outcome = f"{unfinished[0].name}: {unfinished[0].message}" if unfinished else "completed"
    publish_stages(FULL_BACKFILL, [str(s.state_details.flow_run_id) for s in stages], outcome)
    for state in unfinished:
        state.result()  # raises the stage's error: this run fails with it
    bars, feats = (s.result() for s in stages)
    aggregates = refresh_aggregates()
    retention = apply_retention()
    return {"bars": bars, "features": feats, "aggregates": aggregates, "retention": retention}
