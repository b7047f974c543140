"""`feature-audit` — the daily self-audit (deployment feature-audit): a random sample of symbols
recomputed from their stored bars with the current definitions, every stored value compared."""

from __future__ import annotations

from prefect import flow, task

from mfs.config import get_config
from mfs.features.monitoring.audit import audit
from mfs.flow_names import COLLECT, FEATURE_AUDIT, FEATURES
from mfs.orchestration.locks import run_lock, wait_for_release
from mfs.orchestration.monitoring_artifacts import publish_audit
from mfs.orchestration.runtime import current_run_id, flow_run_name, flow_timeout
from mfs.runs import RunReport


@task(name="audit-features")
def audit_features(symbols: list[str] | None, sample: int | None, run_id: str | None) -> RunReport:
    return audit(symbols, sample, run_id=run_id, raise_on_failure=False)


@flow(name=FEATURE_AUDIT, flow_run_name=flow_run_name, timeout_seconds=flow_timeout(FEATURE_AUDIT))
def feature_audit(symbols: list[str] | None = None, sample: int | None = None) -> dict:
    """symbols: audit these (default: a random sample); sample: how many (default
    monitoring.audit_sample). Holds the features run lock: no feature row changes meanwhile."""
    wait_s = get_config().orchestration.lock_wait_s
    wait_for_release(COLLECT, wait_s)
    with run_lock(FEATURES, wait_s):
        try:
            report = audit_features(symbols, sample, current_run_id())
        except Exception as exc:
            publish_audit(None, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
    failed = len(report.failed_symbols)
    publish_audit(report, f"failed: {failed} symbol(s) differ from the recompute" if failed else "passed")
    report.raise_if_failed(0)  # RunFailedError naming the symbols, intervals and features: the run ends Failed
    return report.counts().as_dict()
