"""``mfs aggregates refresh|retention|sessions``: maintain the daily/weekly aggregates by hand.

The pipeline refreshes after every run; these verbs are for backfills, repairs and inspection.
"""

from __future__ import annotations

import argparse

from mfs.cli.output import print_json, print_table
from mfs.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    agg = sub.add_parser("aggregates", help="refresh ohlcv_1d/ohlcv_1w/features_1d, apply retention, sync sessions")
    verbs = agg.add_subparsers(dest="verb", required=True, metavar="VERB")
    ref = verbs.add_parser(
        "refresh",
        help="recompute pending changes (default) or every bucket of a window",
        description="Without --from/--to: recompute the buckets touched since the last refresh "
        "(late and corrected bars included). With both: recompute every bucket in "
        "[FROM, TO) for every symbol. Dates are New York days; ISO timestamps with an "
        "offset are instants.",
    )
    ref.add_argument("--from", dest="start", metavar="FROM", help="start, e.g. 2024-03-01")
    ref.add_argument("--to", dest="end", metavar="TO", help="end (exclusive), e.g. 2024-04-01")
    ref.add_argument("--json", action="store_true", help="print one JSON object")
    ref.set_defaults(func=cmd_refresh)
    ret = verbs.add_parser(
        "retention", help="drop raw chunks older than aggregates.retention_days (aggregates keep history)"
    )
    ret.add_argument("--days", type=int, help="override aggregates.retention_days for this run")
    ret.add_argument("--json", action="store_true", help="print one JSON object")
    ret.set_defaults(func=cmd_retention)
    ses = verbs.add_parser("sessions", help="sync the market_sessions table from the NYSE calendar")
    ses.set_defaults(func=cmd_sessions)


def cmd_refresh(args: argparse.Namespace) -> int:
    # deferred: ~450 ms of pandas, pyarrow and the calendar (python -X importtime, over what `mfs --help` loads)
    from mfs.aggregates import refresh

    result = refresh(args.start, args.end)
    if args.json:
        print_json(result)
        return 0
    rows = [(name, result["buckets"][name], result["removed"][name]) for name in result["buckets"]]
    print_table(f"refresh ({result['edition']} edition)", ["aggregate", "buckets written", "rows removed"], rows)
    print(f"refreshed in {result['seconds']} s")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    # deferred: ~360 ms of pandas and pyarrow (python -X importtime, over what `mfs --help` loads)
    from mfs.aggregates import retention

    if args.days is not None and args.days <= 0:
        raise ConfigError(f"--days must be a positive number of days, got {args.days}")
    result = retention(retention_days=args.days)
    if args.json:
        print_json(result)
    elif result["retention_days"] is None:
        print("aggregates.retention_days is not set: nothing dropped")
    else:
        for table, chunks in result["dropped"].items():
            print(f"{table}: dropped {len(chunks)} chunk(s) older than {result['retention_days']} days")
        for table, reason in result["skipped"].items():
            print(f"{table}: skipped — {reason}")
    return 1 if result["skipped"] else 0  # asked by hand and not done: say so in the exit status


def cmd_sessions(args: argparse.Namespace) -> int:
    # deferred: ~450 ms of pandas and the calendar (python -X importtime, over what `mfs --help` loads)
    from mfs.storage.sessions import sync_sessions

    counts = sync_sessions()
    print(f"market_sessions: {counts.staged} sessions, {counts.inserted} added, {counts.updated} updated")
    return 0
