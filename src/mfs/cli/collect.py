"""``mfs collect`` and ``mfs backfill``: Yahoo (or the offline synthetic Yahoo) into market_data."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mfs.cli.output import print_run_table
from mfs.config import get_config
from mfs.flow_names import COLLECT
from mfs.market import INTERVALS
from mfs.sources import request_log

if TYPE_CHECKING:
    from mfs.runs import RunReport

PERIOD_UNITS = {"d": 1, "wk": 7, "mo": 30, "y": 365}


def period_days(text: str) -> int:
    """Yahoo-style periods (``7d``, ``2wk``, ``6mo``, ``1y``) or a plain number of days."""
    raw = text.strip().lower()
    number, unit = raw.rstrip("dwkmoy"), raw[len(raw.rstrip("dwkmoy")) :] or "d"
    if not number.isdigit() or unit not in PERIOD_UNITS or int(number) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a period: use e.g. 7d, 2wk, 6mo, 1y or a number of days")
    return int(number) * PERIOD_UNITS[unit]


SUMMARY_COLUMNS = ["symbol", "stage", "status", "fetched", "inserted", "updated", "quarantined", "seconds", "reason"]


def register(sub: argparse._SubParsersAction) -> None:
    offline_help = (
        "use the synthetic Yahoo (deterministic market, clock MFS_SYNTHETIC_ASOF or now) instead of the network"
    )
    col = sub.add_parser("collect", help="fetch recent bars of the configured (or given) symbols and upsert them")
    col.add_argument("--symbols", help="comma-separated tickers (default: config symbols)")
    col.add_argument(
        "--interval",
        choices=INTERVALS,
        default=None,
        help="one interval (default: every configured interval, config intervals)",
    )
    col.add_argument(
        "--days",
        "--period",
        dest="days",
        type=period_days,
        help="how far back: days or a period like 7d, 6mo, 1y (default: config ingest.incremental_days); "
        "further when the store stops earlier (missed runs) or Yahoo re-adjusted the history",
    )
    col.add_argument("--offline", action="store_true", help=offline_help)
    col.set_defaults(func=cmd_collect)

    back = sub.add_parser("backfill", help="load history for every configured interval (1h capped at Yahoo's 730 days)")
    back.add_argument("--symbols", help="comma-separated tickers (default: config symbols)")
    back.add_argument(
        "--days",
        "--period",
        dest="days",
        type=period_days,
        help="how far back: days or a period like 7d, 6mo, 1y (default: config ingest.backfill_days)",
    )
    back.add_argument("--offline", action="store_true", help=offline_help)
    back.set_defaults(func=cmd_backfill)


def print_summary(report: RunReport) -> None:
    # deferred: mfs.runs brings psycopg2 and the connection pool: imported here, after a run has loaded them,
    # not when the verbs are registered (`mfs features --help` 0.30 -> 0.36 s median when it was).
    from mfs.runs import describe_anomalies, describe_anomaly

    print_run_table(
        report,
        SUMMARY_COLUMNS,
        lambda r: r.quarantined if not r.quarantine_reasons else f"{r.quarantined} {r.quarantine_reasons}",
    )
    counts = report.counts()
    skipped = f", {counts.symbols_skipped} skipped" if counts.symbols_skipped else ""  # delisted symbols
    print(
        f"{report.flow}: {counts.symbols_ok} ok, {counts.symbols_failed} failed{skipped}; "
        f"{counts.fetched} bars fetched, {counts.inserted} inserted, "
        f"{counts.updated} updated, {counts.quarantined} quarantined"
    )
    if "yahoo_requests" in report.extra:
        print(request_log.describe(report.extra["yahoo_requests"]))
    if summary := report.extra.get("anomalies"):
        print(describe_anomalies(summary))
        for anomaly in summary["list"][:20]:
            print(f"  {describe_anomaly(anomaly)}")
    for note in report.notes:
        print(f"note: {note}")


def _finish(report: RunReport) -> int:
    print_summary(report)
    report.raise_if_failed(get_config().runs.failed_symbol_tolerance)  # RunFailedError: exit 1
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    # deferred: pandas, yfinance: ~860 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.ingest import collect
    from mfs.orchestration.locks import run_lock  # deferred: psycopg2 + pool, ~20 ms (importtime)

    # The same run lock as the collect/backfill flows: a second run waits (up to
    # orchestration.lock_wait_s) for the first instead of fetching and writing the same bars.
    with run_lock(COLLECT, get_config().orchestration.lock_wait_s):
        report = collect(args.symbols, args.interval, days=args.days, offline=args.offline, raise_on_failure=False)
    return _finish(report)


def cmd_backfill(args: argparse.Namespace) -> int:
    # deferred: pandas, yfinance: ~860 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.ingest import backfill
    from mfs.orchestration.locks import run_lock  # deferred: psycopg2 + pool, ~20 ms (importtime)

    with run_lock(COLLECT, get_config().orchestration.lock_wait_s):
        report = backfill(args.symbols, days=args.days, offline=args.offline, raise_on_failure=False)
    return _finish(report)
