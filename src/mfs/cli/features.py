"""``mfs features``: compute technical indicators for new (or, with --full, all) bars."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mfs.cli.output import print_json, print_run_table, print_table
from mfs.config import get_config
from mfs.flow_names import FEATURES
from mfs.market import INTERVALS

if TYPE_CHECKING:
    from mfs.runs import RunReport

SUMMARY_COLUMNS = ["symbol", "stage", "status", "bars_read", "inserted", "updated", "written", "seconds", "reason"]


def register(sub: argparse._SubParsersAction) -> None:
    feat = sub.add_parser(
        "features",
        help="compute indicators per symbol in isolated worker processes (incremental unless --full)",
    )
    feat.add_argument(
        "action",
        nargs="?",
        choices=("compute", "list", "prune"),
        default="compute",
        help="compute (default): update the features; list: the feature registry; "
        "prune: drop the columns of retired features",
    )
    feat.add_argument("--symbols", help="comma-separated tickers (default: config symbols)")
    feat.add_argument(
        "--interval",
        choices=INTERVALS,
        default=None,
        help="one interval (default: every configured interval, config intervals)",
    )
    feat.add_argument(
        "--full",
        action="store_true",
        help="recompute every feature row (after a definition change or a history correction)",
    )
    feat.add_argument("--json", action="store_true", help="print the per-symbol results as one JSON object")
    feat.set_defaults(func=cmd_features)


def print_summary(report: RunReport) -> None:
    print_run_table(report, SUMMARY_COLUMNS, lambda r: r.written)
    counts = report.counts()
    skipped = f", {counts.symbols_skipped} skipped" if counts.symbols_skipped else ""
    print(
        f"{report.flow}: {counts.symbols_ok} ok, {counts.symbols_failed} failed{skipped}; "
        f"{counts.fetched} bars read, {counts.written} feature rows written "
        f"(feature_version {report.extra.get('feature_version')}, {report.extra.get('seconds')} s)"
    )
    if not report.batches and not counts.symbols_failed:
        print("features: nothing to compute (no bar changed since the last run; no worker started)")


def cmd_features(args: argparse.Namespace) -> int:
    from mfs.orchestration.locks import run_lock  # its database module: only the verbs that run

    if args.action == "list":
        return _list(args)
    if args.action == "prune":
        return _prune(args)
    from mfs.features import compute

    symbols = args.symbols.split(",") if args.symbols else None
    # The features flow's run lock: two overlapping runs would compute and insert the same rows.
    with run_lock(FEATURES, get_config().orchestration.lock_wait_s):
        report = compute(symbols, args.interval, full=args.full, raise_on_failure=False)
    if args.json:
        print_json({"run_id": report.run_id, "counts": report.counts().as_dict(), "results": report.rows()})
    else:
        print_summary(report)
    report.raise_if_failed(get_config().runs.failed_symbol_tolerance)  # RunFailedError: exit 1
    return 0


def _list(args: argparse.Namespace) -> int:
    from mfs.features import registry

    rows = registry.rows()
    if args.json:
        print_json([r.__dict__ for r in rows])
        return 0
    if not rows:
        print("the feature registry is empty: `mfs db up` or the next `mfs features` run registers the definitions")
        return 0

    def when(value) -> str:
        return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""

    table = [
        (r.name, r.version, r.status, when(r.added_at), when(r.filled_at), when(r.ended_at), _definition(r.definition))
        for r in rows
    ]
    print_table("feature registry", ["name", "version", "status", "added", "filled", "ended", "definition"], table)
    return 0


def _definition(d: dict) -> str:
    if "expr" in d:
        return d["expr"]
    if "talib" in d:
        params = ", ".join(f"{k}={v}" for k, v in d["params"].items())
        return f"{d['talib']}({', '.join(d['inputs'])}; {params}) -> {d['output']}"
    return f"built in ({d.get('builtin')})"


def _prune(args: argparse.Namespace) -> int:
    from mfs.features import registry
    from mfs.orchestration.locks import run_lock  # its database module: only the verbs that run

    with run_lock(FEATURES, get_config().orchestration.lock_wait_s):  # no run writes the columns meanwhile
        pruned = registry.prune()
    print(f"pruned {', '.join(pruned)}" if pruned else "nothing to prune: no retired feature")
    return 0
