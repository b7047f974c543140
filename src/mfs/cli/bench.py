"""``mfs bench``: throughput figures side by side with the replaced design."""

from __future__ import annotations

import argparse

from mfs.cli.output import print_json, print_table, progress

SUMMARY_KEYS = ["ingest_rows_per_s", "copy_rows_per_s", "ingest_vs_copy", "features_backfill_s",
                "features_incremental_s", "aggregate_refresh_s", "query_daily_1y_ms", "query_latest_ms",
                "peak_rss_mb", "baseline_speedup", "symbols", "bars"]
TARGETS = {"ingest_rows_per_s": ">= 150000", "ingest_vs_copy": ">= 0.7", "features_backfill_s": "<= 15 (500 symbols)",
           "features_incremental_s": "<= 3", "aggregate_refresh_s": "<= 1", "query_daily_1y_ms": "<= 10",
           "peak_rss_mb": "<= 1024", "baseline_speedup": ">= 50"}


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure ingest, features, aggregates, queries and memory against the replaced design")
    p.add_argument("--symbols", type=_positive, default=500, help="symbols in the synthetic universe (default 500)")
    p.add_argument("--days", type=_positive, default=365, help="days of hourly history (default 365)")
    p.add_argument("--baseline-symbols", type=_positive, default=20, help="symbols for the side-by-side baseline (default 20)")
    p.add_argument("--rounds", type=_positive, default=3, help="alternating rounds of compared contenders (default 3)")
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from mfs.bench.runner import run

    with progress("mfs bench") as report:
        result = run(args.symbols, args.days, min(args.baseline_symbols, args.symbols), args.rounds, report)
    rows = [(k, result[k], TARGETS.get(k, "")) for k in SUMMARY_KEYS]
    details = [(k, v, "") for k, v in result.items() if k not in SUMMARY_KEYS]
    print_table("benchmark", ["figure", "value", "target"], rows + details)
    if args.json:
        print_json({k: result[k] for k in SUMMARY_KEYS} | {"details": {k: v for k, v, _ in details}})
    return 0
