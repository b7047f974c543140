"""`full-backfill` — one year of bars, every feature, then the aggregate refresh. Each stage is a
subflow with its own flow run id, so each pipeline_runs row lines up with a run in the UI."""

from __future__ import annotations

from prefect import flow
from prefect.states import State

from flows.common import apply_retention, fetch_bars, judged, refresh_aggregates
from flows.features import features
from mfs.config import get_config
from mfs.flow_names import BACKFILL, COLLECT, FULL_BACKFILL
from mfs.orchestration.locks import run_lock
from mfs.orchestration.runtime import flow_timeout, offline_requested


@flow(name=BACKFILL, timeout_seconds=flow_timeout(FULL_BACKFILL))
def backfill(symbols: list[str] | None = None, days: int | None = None, offline: bool = False) -> dict | State:
    """Bars for `days` (default ingest.backfill_days) of history, hourly and daily."""
    with run_lock(COLLECT, get_config().orchestration.lock_wait_s):
        return judged(
            BACKFILL, lambda run_id: fetch_bars(symbols, None, days, offline_requested(offline), run_id, backfill=True)
        )


@flow(name=FULL_BACKFILL, timeout_seconds=flow_timeout(FULL_BACKFILL))
def full_backfill(symbols: list[str] | None = None, days: int | None = None, offline: bool = False) -> dict:
    """symbols: default from config; days: default ingest.backfill_days (365); offline: synthetic Yahoo."""
    bars = backfill(symbols, days, offline)
    feats = features(symbols, None, full=True, market_hours_only=False, wait_for_collect=False)  # every interval
    aggregates = refresh_aggregates()
    retention = apply_retention()
    return {"bars": bars, "features": feats, "aggregates": aggregates, "retention": retention}
