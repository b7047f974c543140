"""``mfs dataset``: a point-in-time training set — per entity row (symbol, at), the feature row
the SQL function features_asof returns — written to Parquet."""

from __future__ import annotations

import argparse
import sys

from mfs.cli.output import print_json
from mfs.market import INTERVALS

MODES = ("known", "served")


def register(sub: argparse._SubParsersAction) -> None:
    ds = sub.add_parser(
        "dataset",
        help="point-in-time features (or bars) for entity rows (symbol, at), written to Parquet",
        description="For every row of the entities file (columns symbol and at, a timestamp with a time "
        "zone), the feature row a model could have used at `at`, as the store knew it at --known-at: "
        "exactly what the SQL function features_asof returns. One output row per entity row, in order; "
        "rows without an answer have empty values.",
    )
    ds.add_argument("--entities", required=True, metavar="FILE", help="entity rows: a .csv or .parquet file")
    ds.add_argument("--out", required=True, metavar="FILE.parquet", help="the Parquet file to write")
    ds.add_argument(
        "--known-at",
        metavar="T",
        help="what the store knew then: an ISO timestamp with a zone, or 'now' (default: each row's own at)",
    )
    ds.add_argument(
        "--tolerance", metavar="DURATION", help="no answer when the bar closed longer before at (2h, 90min, 1d)"
    )
    ds.add_argument("--columns", metavar="A,B,...", help="value columns (default: every feature, or every bar column)")
    ds.add_argument("--interval", default="1h", metavar="|".join(INTERVALS), help="bar interval (default 1h)")
    ds.add_argument(
        "--mode",
        default="known",
        metavar="|".join(MODES),
        help="known: the newest complete row known at --known-at (default); served: what latest_features served at at",
    )
    ds.add_argument("--bars", action="store_true", help="OHLCV bars (bars_asof) instead of features")
    ds.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    ds.set_defaults(func=cmd_dataset)


def cmd_dataset(args: argparse.Namespace) -> int:
    # deferred: pandas and pyarrow, ~400 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.dataset import NoMatchError, write_dataset

    kind = "bars" if args.bars else "features"
    try:
        summary = write_dataset(
            args.entities,
            args.out,
            known_at=args.known_at,
            tolerance=args.tolerance,
            columns=args.columns,
            interval=args.interval,
            mode=args.mode,
            kind=kind,
            require_match=True,  # not one answer: a wrong file or a wrong store, not a dataset
        )
    except NoMatchError as exc:
        _report_missing(exc.summary.missing_symbols, kind, args.interval)
        raise
    _report_missing(summary.missing_symbols, kind, args.interval)
    if args.json:
        print_json(summary.as_dict())
        return 0
    missing = len(summary.missing_symbols)
    known = f", known at {summary.known_at}" if summary.known_at else ""
    print(
        f"dataset: {summary.rows} entity rows, {summary.matched} matched, "
        f"{missing} symbol{'' if missing == 1 else 's'} without {kind} rows{known} "
        f"({summary.seconds} s) -> {summary.out}"
    )
    return 0


def _report_missing(symbols: list[str], kind: str, interval: str) -> None:
    for symbol in symbols:
        print(f"{symbol}: no {kind[:-1]} rows in the store (interval {interval})", file=sys.stderr)
