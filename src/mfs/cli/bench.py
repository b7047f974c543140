"""``mfs bench``: throughput figures side by side with a baseline — the design this store replaced:
a fresh interpreter per symbol, the ``ta`` package and row-by-row executemany — on the store's
server or on local clusters of either TimescaleDB edition (``--edition``), both in one run if asked.
Point in time: the hourly run with revisions kept vs not, the storage of a year of revisions, and
training-set reads through the versions vs a COPY floor and a hand-written merge_asof.
The baseline needs the ``bench`` extra (``ta``)."""

from __future__ import annotations

import argparse
import functools
import importlib.util
from collections.abc import Callable
from typing import Any

from mfs.cli.output import print_json, print_table, progress
from mfs.errors import MfsError

SUMMARY_KEYS = [
    "ingest_rows_per_s",
    "ingest_unchecked_rows_per_s",
    "copy_rows_per_s",
    "ingest_vs_copy",
    "quality_ingest_ratio",
    "features_backfill_s",
    "features_incremental_s",
    "features_backfill_stats_ratio",
    "features_backfill_drift_s",
    "features_incremental_monitoring_s",
    "features_incremental_monitoring_ratio",
    "audit_s_per_symbol",
    "drift_first_check_s",
    "drift_daily_check_s",
    "aggregate_refresh_s",
    "query_daily_1y_ms",
    "query_latest_ms",
    "peak_rss_mb",
    "baseline_speedup",
    "revisions_ingest_ratio",
    "revisions_features_ratio",
    "year_revisions_vs_current",
    "dataset_asof_rows_per_s",
    "dataset_asof_vs_floor",
    "add_feature_s",
    "full_recompute_s",
    "add_feature_vs_full",
    "symbols",
    "bars",
]
TARGETS = {
    "ingest_rows_per_s": ">= 150000",
    "ingest_vs_copy": ">= 0.7",
    # The market-aware quality checks (on / off, the same bars, alternating): within 10 %.
    "quality_ingest_ratio": "<= 1.1",
    "features_backfill_s": "<= 15 (500 symbols)",
    "features_incremental_s": "<= 3",
    "aggregate_refresh_s": "<= 1",
    "query_daily_1y_ms": "<= 10",
    "peak_rss_mb": "<= 1024",
    "baseline_speedup": ">= 50",
    # Keeping revisions (on / off, the same hourly work): within 10 %.
    "revisions_ingest_ratio": "<= 1.1",
    "revisions_features_ratio": "<= 1.1",
}
SCALE_TARGETS = {
    # The hour of the whole market (8,000 symbols in under 10 s). A smaller universe's hour spreads
    # the run's fixed cost over fewer symbols: in one run, 500 symbols took 0.49 s and 8,000 took
    # 4.44 s, i.e. ~0.22 s fixed and 0.53 ms per symbol, so 500 came to 0.98 ms per symbol.
    "incremental_ms_per_symbol": "<= 1 at the largest scale",
    "noop_command_s": "< 1",
    "latest_one_p99_ms": "<= 1",
    # Every symbol's row is served by mfs.dataset.latest_features. The view's own rows are shown
    # for reference and have no target: through psycopg2's fetchall they cost ~150 ms at 8,000
    # symbols (a Python float per value), and even their bytes alone, by binary COPY, 22 ms p50 and
    # 25-38 ms p99 (the server's send function for each of 360,000 values).
    "latest_all_dataframe_p99_ms": "<= 25",
    "product_peak_rss_mb": "flat",
}
BOTH = ("timescale", "apache")  # the community edition first: the ratio column is apache / timescale


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure ingest, features, aggregates, queries, memory and point-in-time costs against a "
        "baseline (the design this store replaced)",
    )
    p.add_argument("--symbols", type=_positive, default=500, help="symbols in the synthetic universe (default 500)")
    p.add_argument(
        "--days",
        type=_depths,
        default=[365],
        help="days of hourly history (default 365); with --scales several, e.g. 60,730: the scaling at each "
        "depth, and each phase's growth with the depth at the same number of symbols",
    )
    p.add_argument(
        "--baseline-symbols", type=_positive, default=20, help="symbols for the side-by-side baseline (default 20)"
    )
    p.add_argument("--rounds", type=_positive, default=3, help="alternating rounds of compared contenders (default 3)")
    p.add_argument(
        "--edition",
        choices=["timescale", "apache", "both"],
        help="run on a local cluster of this TimescaleDB edition (started when needed; 'both': one after "
        "the other, side by side); default the store's own server. Not with MFS_DATABASE_URL",
    )
    p.add_argument(
        "--scales",
        type=_scales,
        help="comma-separated numbers of symbols, e.g. 500,2000,8000: instead of the full benchmark, the "
        "hourly pipeline and the serving queries at each scale, with each phase's growth against linear",
    )
    p.add_argument(
        "--quality",
        action="store_true",
        help="instead of the full benchmark, how often the data-quality checks fire on clean series (a year of "
        "the synthetic market, real recorded daily bars) and at thresholds around the defaults",
    )
    p.add_argument(
        "--backup",
        action="store_true",
        help="instead of the full benchmark, pgBackRest and the replica on a throwaway cluster: backup time and "
        "size, WAL per trading day, replica lag during hourly runs, restore time (--symbols × --days)",
    )
    p.add_argument(
        "--dashboard",
        action="store_true",
        help="instead of the full benchmark, the answer times of the dashboard's pages at 500 symbols and at "
        "--symbols (e.g. 8000), side by side; --days of bars (default here 20)",
    )
    p.add_argument(
        "--drift",
        action="store_true",
        help="instead of the full benchmark, the feature drift check replayed over a year of the synthetic "
        "market: false-positive rate on unchanged symbols, sessions to flag a volatility ×5 regime change",
    )
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.set_defaults(func=cmd_bench)


def _scales(text: str) -> list[int]:
    try:
        scales = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers of symbols, got {text!r}") from None
    if len(scales) < 2 or any(n <= 0 for n in scales) or scales != sorted(set(scales)):
        raise argparse.ArgumentTypeError(f"expected at least two increasing positive numbers, got {text!r}")
    return scales


def _depths(text: str) -> list[int]:
    try:
        depths = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of days, or several comma-separated, got {text!r}"
        ) from None
    if any(d <= 0 for d in depths) or depths != sorted(set(depths)):
        raise argparse.ArgumentTypeError(f"expected increasing positive numbers of days, got {text!r}")
    return depths


def is_timed(key: str) -> bool:
    """A duration (seconds or milliseconds), not a rate like rows_per_s."""
    return key.endswith(("_s", "_ms", "_s_per_symbol")) and not key.endswith("_per_s")


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON shape of one run: the summary figures, the edition, and every other figure."""
    top = {k: result[k] for k in SUMMARY_KEYS} | {"edition": result["edition"]}
    return top | {"details": {k: v for k, v in result.items() if k not in top}}


def cmd_bench(args: argparse.Namespace) -> int:
    if len(args.days) > 1 and not args.scales:
        raise MfsError(f"several --days ({','.join(map(str, args.days))}) are compared only with --scales")
    if not args.scales:
        (args.days,) = args.days
    if args.quality:
        return _cmd_quality(args)
    if args.backup:
        return _cmd_backup(args)
    if args.dashboard:
        return _cmd_dashboard(args)
    if args.drift:
        return _cmd_drift(args)
    if importlib.util.find_spec("ta") is None:
        raise MfsError("the benchmark's baseline needs the ta package: pip install 'mfs[bench]'")
    # deferred: the benchmarks load ~890 ms of modules (python -X importtime, over what `mfs --help` loads)
    from mfs.bench.runner import run
    from mfs.bench.scratch import edition_server

    editions = BOTH if args.edition == "both" else (args.edition,)
    # Every server first: a refusal or a cluster that cannot start ends the command before a long run.
    servers = {edition: edition_server(edition) if edition else None for edition in editions}
    if args.scales:
        return _cmd_scales(args, servers)
    results = {}
    with progress("mfs bench") as report:
        for edition, server in servers.items():
            label = f"[{edition}] " if len(servers) > 1 else ""
            results[edition] = run(
                args.symbols,
                args.days,
                min(args.baseline_symbols, args.symbols),
                args.rounds,
                functools.partial(_labelled, report, label),
                server=server,
            )
    if len(results) == 1:
        (result,) = results.values()
        rows = [(k, result[k], TARGETS.get(k, "")) for k in SUMMARY_KEYS]
        details = [(k, v, "") for k, v in result.items() if k not in SUMMARY_KEYS]
        print_table("benchmark", ["figure", "value", "target"], rows + details)
        if args.json:
            print_json(summary(result))
        return 0
    print_table("benchmark", ["figure", *results, " / ".join(reversed(results)), "target"], _side_by_side(results))
    if args.json:
        print_json({"editions": {edition: summary(result) for edition, result in results.items()}})
    return 0


def _cmd_drift(args: argparse.Namespace) -> int:
    # deferred: ~410 ms of modules (python -X importtime, over what `mfs --help` loads)
    from mfs.bench.monitoring import drift_rates

    with progress("mfs bench --drift") as report:
        result = drift_rates(functools.partial(_labelled, report, ""))
    print_table("feature drift check: false positives and time to flag", ["figure", "value"], list(result.items()))
    if args.json:
        print_json(result)
    return 0


def _cmd_quality(args: argparse.Namespace) -> int:
    # deferred: ~780 ms of modules (python -X importtime, over what `mfs --help` loads)
    from mfs.bench.quality import false_positive_rates

    results = false_positive_rates()
    for name, result in results.items():
        rows = [(k, result[k]) for k in ("series", "bars", "findings", "findings_per_10k_bars", "held_back")]
        rows += [(f"flagged at {k}", n) for k, n in result["sweep"].items()]
        rows += [(f"injected {k}: named", n) for k, n in result["injected"].items()]
        print_table(f"quality checks on clean series: {name}", ["figure", "value"], rows)
        for line in result["listed"]:
            print(f"  {line}")
    if args.json:
        print_json(results)
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    # deferred: ~650 ms of modules (python -X importtime, over what `mfs --help` loads)
    from mfs.bench.dashboard import run

    days = 20 if args.days == 365 else args.days  # the grid shows 10 sessions; a year adds nothing to it
    with progress("mfs bench --dashboard") as report:
        results = run(args.symbols, days, report)
    scales = sorted(results)
    keys = [k for k in results[scales[-1]] if k != "symbols"]
    header = ["figure", *(f"{n} symbols" for n in scales)]
    rows = [[k, *(results[n][k] for n in scales)] for k in keys]
    if len(scales) > 1:
        header.append(f"{scales[-1]} / {scales[0]}")
        for row, key in zip(rows, keys, strict=True):
            row.append(round(results[scales[-1]][key] / max(results[scales[0]][key], 1e-9), 2))
    print_table(f"dashboard page answer times (ms; {days} days of bars)", header, rows)
    if args.json:
        print_json({str(n): r for n, r in results.items()})
    return 0


def _cmd_backup(args: argparse.Namespace) -> int:
    # deferred: ~700 ms of modules (python -X importtime, over what `mfs --help` loads)
    from mfs.bench import backup

    with progress("mfs bench --backup") as report:
        result = backup.run(args.symbols, args.days, report)
    print_table("backups, restore and the replica", ["figure", "value"], list(result.items()))
    if args.json:
        print_json(result)
    return 0


def _cmd_scales(args: argparse.Namespace, servers: dict[str | None, str | None]) -> int:
    # deferred: ~780 ms of modules (python -X importtime, over what `mfs --help` loads)
    from mfs.bench import scaling

    results = {}
    with progress("mfs bench --scales") as report:
        for edition, server in servers.items():
            label = f"[{edition}] " if len(servers) > 1 else ""
            days = args.days[0] if len(args.days) == 1 else args.days
            results[edition or "store"] = scaling.run(
                args.scales, days, functools.partial(_labelled, report, label), server=server
            )
    for name, result in results.items():
        edition = f" ({name})" if len(results) > 1 else ""
        for depth in result.get("depths", [result]):
            _print_scales(depth, edition)
        if "vs_depth" in result:
            _print_depths(result, edition)
    if args.json:
        print_json(results if len(results) > 1 else next(iter(results.values())))
    return 0


def _print_scales(result: dict[str, Any], edition: str) -> None:
    """One depth's table: every figure at each number of symbols, then each linear phase's ratio."""
    from mfs.bench import scaling  # deferred like _cmd_scales' import of it (the only caller)

    scales = result["scales"]
    keys = list(dict.fromkeys(k for s in scales for k in s if k != "vs_linear"))
    rows = [(k, *(s.get(k, "") for s in scales), SCALE_TARGETS.get(k, "")) for k in keys]
    rows += [(f"{k} vs linear", *(s["vs_linear"].get(k, "") for s in scales), "<= 1.1") for k in scaling.LINEAR_PHASES]
    title = f"scaling, {result['days']} days of hourly bars{edition}"
    print_table(title, ["figure", *(f"{s['symbols']} symbols" for s in scales), "target"], rows)


def _print_depths(result: dict[str, Any], edition: str) -> None:
    """Per number of symbols: each depth phase's figure at every depth and its ratio to the
    shallowest depth's (per hour and peaks: 1.0 = flat; the history per bar: 1.0 = linear)."""
    from mfs.bench import depths as depth  # deferred like _cmd_scales' import of it (the only caller)

    depths = result["depths"]
    deeper = [str(d["days"]) for d in depths[1:]]
    for i, first in enumerate(depths[0]["scales"]):
        n = first["symbols"]
        rows = []
        for phase, kind in depth.DEPTH_PHASES.items():
            figures = [depth.depth_figure(d["scales"][i], phase) for d in depths]
            if kind == "per bar":
                figures = [round(f * 1e6, 2) for f in figures]  # seconds per bar -> µs per bar
            name = f"{phase} per bar (µs)" if kind == "per bar" else phase
            ratios = [result["vs_depth"][str(n)][d].get(phase, "") for d in deeper]
            target = "linear (1.0)" if kind == "per bar" else "<= 1.1"
            rows.append((name, *figures, *ratios, target))
        header = [
            "figure",
            *(f"{d['days']} days" for d in depths),
            *(f"{d} / {depths[0]['days']} days" for d in deeper),
        ]
        print_table(f"depth, {n} symbols{edition}", [*header, "target"], rows)


def _side_by_side(results: dict[str, dict[str, Any]]) -> list[tuple]:
    """One row per figure (summary figures first), a column per edition, and for durations the
    ratio of the second edition to the first; a figure one edition lacks is blank there."""
    keys = list(dict.fromkeys(["edition", *SUMMARY_KEYS, *(k for result in results.values() for k in result)]))
    first, second = results.values()
    rows = []
    for key in keys:
        a, b = first.get(key), second.get(key)
        ratio = round(b / a, 2) if is_timed(key) and a and b is not None else ""
        rows.append((key, a, b, ratio, TARGETS.get(key, "")))
    return rows


def _labelled(report: Callable[[str], None], label: str, message: str) -> None:
    report(label + message)
