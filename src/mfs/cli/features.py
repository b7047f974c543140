"""``mfs features``: compute technical indicators for new (or, with --full, all) bars."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mfs.cli.output import print_json, print_run_table, print_table
from mfs.config import get_config
from mfs.flow_names import FEATURES
from mfs.market import INTERVALS

if TYPE_CHECKING:
    from datetime import datetime

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
        choices=("compute", "list", "prune", "audit"),
        default="compute",
        help="compute (default): update the features; list: the feature registry; "
        "prune: drop the columns of retired features; audit: recompute symbols from their stored bars and "
        "compare every stored value (fails naming symbol and feature)",
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
    feat.add_argument(
        "--sample",
        type=int,
        default=None,
        help="audit: how many symbols, drawn at random (default monitoring.audit_sample; --symbols names them)",
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
    from mfs.orchestration.locks import run_lock  # deferred: psycopg2 + pool, ~20 ms (importtime)

    if args.action == "list":
        return _list(args)
    if args.action == "prune":
        return _prune(args)
    if args.action == "audit":
        return _audit(args)
    # deferred: mfs.features.run (psycopg2, mfs.runs) is ~22 ms (python -X importtime, over what `mfs --help` loads)
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
    # deferred: psycopg2 and the registry, ~20 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.features import registry

    rows = registry.rows()
    if args.json:
        print_json([r.__dict__ for r in rows])
        return 0
    if not rows:
        print("the feature registry is empty: `mfs db up` or the next `mfs features` run registers the definitions")
        return 0

    def when(value: datetime | None) -> str:
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
    # deferred: psycopg2 and the registry, ~20 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.features import registry
    from mfs.orchestration.locks import run_lock  # deferred: psycopg2 + pool, ~20 ms (importtime)

    with run_lock(FEATURES, get_config().orchestration.lock_wait_s):  # no run writes the columns meanwhile
        pruned = registry.prune()
    print(f"pruned {', '.join(pruned)}" if pruned else "nothing to prune: no retired feature")
    return 0


def _audit(args: argparse.Namespace) -> int:
    """The self-audit from the shell: the same as the feature-audit deployment."""
    # deferred: numpy and the audit, ~165 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.features.monitoring.audit import audit
    from mfs.orchestration.locks import run_lock  # deferred: psycopg2 + pool, ~20 ms (importtime)

    symbols = args.symbols.split(",") if args.symbols else None
    with run_lock(FEATURES, get_config().orchestration.lock_wait_s):  # no feature row changes meanwhile
        report = audit(symbols, args.sample, raise_on_failure=False)
    a = report.extra["audit"]
    if args.json:
        print_json({"run_id": report.run_id, "audit": a, "results": report.rows()})
    else:
        print_table(
            "feature audit",
            ["symbol", "interval", "status", "rows compared", "reason"],
            [(r.symbol, r.stage.removeprefix("audit_"), r.status, r.written, r.reason or "") for r in report.results],
        )
        worst = a["worst"]
        where = f" ({worst['symbol']} {worst['interval']} {worst['feature']} at {worst['ts']})" if worst else ""
        verdict = "passed" if a["passed"] else f"FAILED: {a['mismatching_rows']} row(s) differ"
        print(
            f"feature audit {verdict}: {len(a['symbols'])} symbol(s), {len(a['columns'])} columns, "
            f"{a['values']} values compared in {a['seconds']} s; worst difference "
            f"{worst['rel_diff'] if worst else 0:.3g} relative{where} (tolerance {a['tolerance']:g})"
        )
    report.raise_if_failed(0)  # RunFailedError: exit 1, naming symbols and features
    return 0
