"""Tasks and run bookkeeping shared by the flows. Orchestration only: every step calls src/mfs."""

from __future__ import annotations

from collections.abc import Callable

from prefect import task
from prefect.states import State

from mfs import aggregates, features
from mfs.aggregates.refresh import RefreshResult
from mfs.aggregates.retention import RetentionResult
from mfs.config import get_config
from mfs.orchestration.artifacts import publish
from mfs.orchestration.limits import yahoo_request_slot
from mfs.orchestration.runtime import anomalies_state, current_run_id, drift_state, nothing_new_state
from mfs.runs import RunReport


@task(name="fetch-yahoo-bars")
def fetch_bars(
    symbols: list[str] | None,
    interval: str | None,
    days: int | None,
    offline: bool,
    run_id: str | None,
    backfill: bool = False,
) -> RunReport:
    """Yahoo → validated bars → market_data; failed symbols are in the report. Not retried as a
    task: ``mfs.ingest`` retries each request itself and never raises a Yahoo error, and a task
    retry would fetch every symbol again."""
    # deferred: yfinance and its HTML parsers are ~180 ms (python -X importtime) the features and aggregates flows never
    # need
    from mfs import ingest

    slot = yahoo_request_slot()  # the request budget every shard on every worker shares
    if backfill:
        return ingest.backfill(
            symbols, days=days, offline=offline, run_id=run_id, raise_on_failure=False, request_slot=slot
        )
    return ingest.collect(
        symbols, interval, days=days, offline=offline, run_id=run_id, raise_on_failure=False, request_slot=slot
    )


@task(name="compute-features")
def compute_features(symbols: list[str] | None, interval: str | None, full: bool, run_id: str | None) -> RunReport:
    return features.compute(symbols, interval, full=full, run_id=run_id, raise_on_failure=False)


@task(name="refresh-aggregates")
def refresh_aggregates() -> RefreshResult:
    return aggregates.refresh()


@task(name="apply-retention")
def apply_retention() -> RetentionResult:
    """Drop raw chunks older than aggregates.retention_days (a no-op when it is not set)."""
    return aggregates.retention()


def judged(flow: str, stage: Callable[[str | None], RunReport]) -> dict | State:
    """Run one stage with this flow run's id, publish its artifacts, then be honest: failed
    symbols beyond runs.failed_symbol_tolerance raise (the run ends Failed, artifact listing them);
    high-severity data anomalies end it in the Completed state "Data anomalies" (alerted), drifting
    features in "Feature drift" (alerted), a run that wrote nothing in the Completed state "Nothing new"."""
    tolerance = get_config().runs.failed_symbol_tolerance
    try:
        report = stage(current_run_id())
    except Exception as exc:
        publish(flow, [], "failed", error=f"{type(exc).__name__}: {exc}", tolerance=tolerance)
        raise
    failed = len(report.failed_symbols)
    outcome = ("failed" if failed > tolerance else "completed") + (f" with {failed} failed symbol(s)" if failed else "")
    publish(flow, [report], outcome, tolerance=tolerance)
    report.raise_if_failed(tolerance)
    counts = report.counts().as_dict()
    return anomalies_state(counts) or drift_state(counts) or nothing_new_state(flow, counts) or counts
