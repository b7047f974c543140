"""Register the deployments of prefect.yaml on a Prefect server: the process work pool,
``prefect --no-prompt deploy --all``, then the alert automations. Schedules live only in
prefect.yaml; nothing here adds or changes one."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import yaml

from mfs import paths
from mfs.config import get_config
from mfs.errors import ConfigError
from mfs.flow_names import COLLECT, DEPLOYMENTS, FULL_BACKFILL
from mfs.logs import get_logger
from mfs.market import normalize_symbols
from mfs.orchestration.stack import PrefectStack, StackError
from mfs.storage.connection import connection

log = get_logger("mfs.orchestration.deploy")


def read_prefect_yaml() -> dict[str, Any]:
    return yaml.safe_load((paths.project_root() / "prefect.yaml").read_text())


def work_pool_name() -> str:
    """The pool of prefect.yaml, which must be the one the config's workers poll."""
    pools = {d["work_pool"]["name"] for d in read_prefect_yaml()["deployments"]}
    configured = get_config().orchestration.work_pool
    if pools != {configured}:
        raise ConfigError(
            f"prefect.yaml deploys to work pool(s) {sorted(pools)} but orchestration.work_pool "
            f"is {configured!r}: make them the same"
        )
    return configured


def deploy(stack: PrefectStack) -> dict[str, Any]:
    started = time.monotonic()
    pool = work_pool_name()
    created_pool = False
    if stack.prefect("work-pool", "inspect", pool, check=False).returncode != 0:
        stack.prefect("work-pool", "create", pool, "--type", "process")
        created_pool = True
    # `deploy` fills {{ $VAR }} from its own environment when the variable is set: without
    # MFS_PROJECT_ROOT the pull step keeps the placeholder, and each worker resolves it to its
    # own checkout at run time (workers on other machines need not share our path).
    stack.prefect("--no-prompt", "deploy", "--all", unset=("MFS_PROJECT_ROOT",))
    alerts = subprocess.run(
        [sys.executable, "-m", "mfs.orchestration.alerts"],
        env=stack.env(),
        cwd=paths.project_root(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if alerts.returncode != 0:
        raise StackError(f"alert setup failed:\n{(alerts.stdout + alerts.stderr)[-2000:]}")
    log.info("deployed", pool=pool, deployments=list(DEPLOYMENTS), seconds=round(time.monotonic() - started, 1))
    return {
        "work_pool": pool,
        "created_pool": created_pool,
        "deployments": list(DEPLOYMENTS),
        "alerts": alerts.stdout.strip().splitlines()[-1:] or [""],
    }


def run_full_backfill(
    stack: PrefectStack, offline: bool, days: int | None = None, timeout_s: float = 3600
) -> subprocess.CompletedProcess:
    """Trigger full-backfill and watch it: `prefect deployment run --watch` exits 0 on
    Completed and 1 otherwise; the caller decides what a failure means."""
    args = ["deployment", "run", f"{FULL_BACKFILL}/full-backfill", "--watch", "--watch-timeout", str(int(timeout_s))]
    if offline:
        args += ["--param", "offline=true"]
    if days:
        args += ["--param", f"days={int(days)}"]
    return stack.prefect(*args, timeout=timeout_s + 60, check=False)


def scheduled_symbols() -> set[str]:
    """The symbols some schedule collects: of each deployment of prefect.yaml that runs the
    collect flow on an active schedule, its ``symbols`` parameter, else the configured symbols
    (what its runs collect when none is given)."""
    configured = get_config().symbols
    scheduled: set[str] = set()
    for deployment in read_prefect_yaml()["deployments"]:
        if DEPLOYMENTS.get(deployment["name"]) != COLLECT:
            continue
        if any(s.get("active", True) for s in deployment.get("schedules") or []):
            scheduled |= set(normalize_symbols((deployment.get("parameters") or {}).get("symbols") or configured))
    return scheduled


def unscheduled_symbols(url: str | None = None) -> list[dict[str, Any]]:
    """Symbols with stored bars that no schedule collects (collected by hand, `mfs collect
    --symbols`, or dropped from the configuration): they stay in data_freshness and age there,
    and nothing refreshes them. Each with its newest bar, oldest first."""
    scheduled = sorted(scheduled_symbols())
    with connection(url) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT symbol, max(newest_bar) FROM data_freshness
               WHERE symbol <> ALL(%s::text[]) GROUP BY symbol ORDER BY 2, 1""",
            (scheduled,),
        )
        return [{"symbol": symbol, "newest_bar": newest} for symbol, newest in cur.fetchall()]


def recent_runs(limit: int = 5) -> list[dict[str, Any]]:
    """The newest pipeline_runs rows (run ids are Prefect flow run ids): the status summary."""
    with connection() as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT run_id, flow, status, round(extract(epoch FROM finished_at - started_at)::numeric, 1),
                      counts, error_summary
               FROM pipeline_runs ORDER BY started_at DESC LIMIT %s""",
            (limit,),
        )
        return [
            {"run_id": r[0], "flow": r[1], "status": r[2], "seconds": r[3], "counts": r[4], "error": r[5]}
            for r in cur.fetchall()
        ]
