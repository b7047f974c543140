"""``mfs stack up|down|status|deploy|backfill``: the local Prefect stack (server + workers)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mfs.cli.output import print_json, print_table
from mfs.errors import MfsError

if TYPE_CHECKING:
    from mfs.orchestration.stack import PrefectStack


def register(sub: argparse._SubParsersAction) -> None:
    stack = sub.add_parser("stack", help="local Prefect server, workers and deployments (UI on 127.0.0.1)")
    verbs = stack.add_subparsers(dest="verb", required=True, metavar="VERB")
    up = verbs.add_parser("up", help="start the Prefect server (own database) and workers; deploy prefect.yaml")
    up.add_argument("--workers", type=int, default=1, help="process workers to run on this machine (default 1)")
    up.add_argument("--offline", action="store_true", help="workers use the synthetic Yahoo (MFS_OFFLINE=1)")
    up.add_argument("--no-deploy", action="store_true", help="start processes only")
    up.set_defaults(func=cmd_up)
    verbs.add_parser("down", help="stop workers, then the server").set_defaults(func=cmd_down)
    st = verbs.add_parser("status", help="UI address, server health, running workers")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)
    verbs.add_parser("deploy", help="work pool + `prefect deploy --all` + alert automations").set_defaults(
        func=cmd_deploy
    )
    bf = verbs.add_parser("backfill", help="trigger the full-backfill deployment and wait for it")
    bf.add_argument("--offline", action="store_true", help="synthetic Yahoo")
    bf.add_argument("--days", type=int, default=None, help="history to load (default ingest.backfill_days)")
    bf.set_defaults(func=cmd_backfill)


def _stack(with_database: bool = False) -> PrefectStack:
    # deferred: Prefect and SQLAlchemy, ~220 ms (python -X importtime, over what `mfs --help` loads); the deployment
    # module likewise (~250 ms).
    from mfs.orchestration.stack import PrefectStack, local_prefect_database_url

    stack = PrefectStack.default()
    if with_database:
        stack.database_url = local_prefect_database_url()
    return stack


def cmd_up(args: argparse.Namespace) -> int:
    # deferred: Prefect and SQLAlchemy, ~250 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.orchestration import deploy as deployment

    stack = _stack(with_database=True)
    if args.offline:
        stack.extra_env["MFS_OFFLINE"] = "1"
    started = stack.start_server()
    print(
        f"prefect server {'started' if started else 'already running'}: {stack.ui_url} "
        f"(database: {'PostgreSQL prefect' if stack.database_url else 'SQLite'})"
    )
    if not args.no_deploy:
        result = deployment.deploy(stack)
        print(f"deployed {', '.join(result['deployments'])} to work pool {result['work_pool']}; {result['alerts'][0]}")
    for i in range(1, args.workers + 1):
        name = f"worker-{i}"
        print(f"{name}: {'started' if stack.start_worker(name) else 'already running'}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stopped = _stack().stop()
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    # deferred: ~37 ms (psutil, rich.progress) (python -X importtime, over what `mfs --help` loads)
    from mfs.dashboard import service as dashboard
    from mfs.orchestration.alerts import alerts_status

    status = {**_stack().status(), "alerts": alerts_status()}
    board = dashboard.status()
    status["dashboard"] = board["dashboard"] if board["up"] else None
    if args.json:
        print_json(status)
    else:
        print(f"UI:      {status['ui']}  ({'up' if status['server'] else 'DOWN'})")
        print(f"dashboard: {status['dashboard'] or 'not running (mfs dashboard --background)'}")
        workers = status["workers"]
        print(f"workers: {', '.join(map(str, workers)) if isinstance(workers, list) and workers else 'none'}")
        print(f"logs:    {status['logs']}")
        print(f"alerts:  {status['alerts']}")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    # deferred: Prefect and SQLAlchemy, ~250 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.orchestration import deploy as deployment

    result = deployment.deploy(_stack())
    print(f"deployed {', '.join(result['deployments'])} to work pool {result['work_pool']}; {result['alerts'][0]}")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    # deferred: Prefect and SQLAlchemy, ~250 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.orchestration import deploy as deployment

    stack = _stack()
    if not stack.healthy():
        raise MfsError(f"no Prefect server at {stack.api_url}: run `mfs stack up` first")
    result = deployment.run_full_backfill(stack, offline=args.offline, days=args.days)
    tail = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()][-6:]
    print("\n".join(tail))
    if result.returncode != 0:
        raise MfsError(f"full-backfill did not complete (see {stack.ui_url}/runs)")
    print(f"full-backfill completed: {stack.ui_url}/runs")
    keys = ("symbols_ok", "symbols_failed", "fetched", "inserted", "updated", "quarantined", "written")
    print_table(
        "pipeline runs (newest first)",
        ["flow", "status", "seconds", *keys, "run id"],
        [
            [r["flow"], r["status"], r["seconds"], *[r["counts"].get(k, "") for k in keys], r["run_id"]]
            for r in deployment.recent_runs(3)
        ],
    )
    return 0
