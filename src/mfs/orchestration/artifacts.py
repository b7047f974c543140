"""What a run shows in the Prefect UI: a per-symbol table artifact and a short markdown summary.

Published before a run raises on failed symbols (``recorded_run(raise_on_failure=False)``), so a
red run still tells which symbols failed and why without opening the logs.
"""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from mfs.flow_names import FEATURES, artifact_key
from mfs.logs import mask_secrets
from mfs.orchestration.monitoring_artifacts import drift_lines, publish_monitoring
from mfs.runs import BatchTiming, RunReport, SymbolResult, describe_anomalies, recorded_report
from mfs.sources import request_log


def _timing(result: SymbolResult, batches: dict[tuple[str, str], BatchTiming]) -> tuple[float | None, str]:
    """The seconds to show for a result and, in a word or two, what they measured. A features
    worker times its batch of symbols as a whole (one transaction), not each symbol: the batch's
    seconds are shown, labelled as such; a symbol rerun alone is timed alone."""
    if not result.stage.startswith("features"):
        return round(result.duration_s, 3), "symbol + share of write"
    batch = batches.get((result.stage, result.symbol))
    if batch is None:  # its worker died or ran out of time: nothing was measured
        return None, ""
    if len(batch.symbols) == 1:
        return round(batch.seconds, 3), "symbol"
    return round(batch.seconds, 3), f"batch of {len(batch.symbols)}"


def symbol_rows(reports: list[RunReport]) -> list[dict[str, Any]]:
    """One row per symbol and stage, with the columns that mean something for its stage: bars
    for an ingest, feature rows for a features run; the reason before the timings, so a long
    reason is what a narrow window shows."""
    rows = []
    for report in reports:
        batches = {(b.stage, s): b for b in report.batches for s in b.symbols}
        for r in report.results:
            seconds, measured = _timing(r, batches)
            row: dict[str, Any] = {"symbol": r.symbol, "stage": r.stage, "status": r.status}
            if r.stage.startswith("features"):
                row |= {"bars read": r.fetched, "feature rows": r.written}
            else:
                row |= {
                    "bars fetched": r.fetched,
                    "bars inserted": r.inserted,
                    "bars updated": r.updated,
                    "bars quarantined": r.quarantined,
                }
            row |= {"reason": r.reason or "", "seconds": seconds, "timed": measured}  # reason: masked when recorded
            rows.append(row)
    return rows


def anomaly_rows(reports: list[RunReport]) -> list[dict[str, Any]]:
    """The anomalies each run recorded (the first 50 of each), one row each."""
    return [
        {
            "symbol": a["symbol"],
            "interval": a["interval"],
            "bar": a["ts"],
            "kind": a["kind"],
            "severity": a["severity"],
            "held back": "yes" if a["held"] else "no",
            "detail": a["detail"],
        }
        for report in reports
        for a in (report.extra.get("anomalies") or {}).get("list", [])
    ]


def _anomaly_lines(reports: list[RunReport]) -> list[str]:
    lines = []
    for report in reports:
        summary = report.extra.get("anomalies")
        if summary:  # bold when a person must look
            flag = "**" if summary["high"] else ""
            lines.append(f"- {flag}{describe_anomalies(summary)}{flag}")
    return lines


def summary_markdown(
    flow: str, reports: list[RunReport], outcome: str, error: str | None = None, tolerance: int = 0
) -> str:
    failed = [r for report in reports for r in report.failed]
    n_symbols = len({s for report in reports for s in report.failed_symbols})
    lines = [f"# {flow}: {outcome}", ""]
    for report in reports:
        c = report.counts()
        work = (
            f"bars read {c.fetched}, feature rows written {c.written}"
            if report.flow == FEATURES
            else f"bars fetched {c.fetched}, inserted {c.inserted}, updated {c.updated}, quarantined {c.quarantined}"
        )
        lines.append(
            f"- **{report.flow}** (run `{report.run_id}`): symbol × interval results "
            f"{c.symbols_ok} ok, {c.symbols_failed} failed, {c.symbols_skipped} skipped; {work}"
        )
        if "yahoo_requests" in report.extra:  # the request rate reached, the budget's waits, 429s
            lines.append(f"- {request_log.describe(report.extra['yahoo_requests'])}")
    lines += _anomaly_lines(reports)
    lines += drift_lines(reports)  # feature statistics and drift (a features run)
    notes = [note for report in reports for note in report.notes]
    if notes:  # the hourly 730-day cap, histories Yahoo re-adjusted
        lines += ["", "**Notes:**", ""] + [f"- {note}" for note in notes[:50]]
    if failed:
        lines += ["", f"**{n_symbols} failed symbol(s)** (tolerance {tolerance}):", ""]
        lines += [f"- `{r.symbol}` ({r.stage}): {r.reason}" for r in failed[:50]]
    if error:
        lines += ["", f"**Error:** {mask_secrets(error)}"]
    return "\n".join(lines) + "\n"


def publish(flow: str, reports: list[RunReport], outcome: str, error: str | None = None, tolerance: int = 0) -> None:
    """Create the run's table artifact (when there are symbol results) and markdown summary."""
    rows = symbol_rows(reports)
    if rows:
        create_table_artifact(table=rows, key=artifact_key(flow, "symbols"), description=f"{flow}: per-symbol results")
    anomalies = anomaly_rows(reports)
    if anomalies:
        create_table_artifact(
            table=anomalies, key=artifact_key(flow, "anomalies"), description=f"{flow}: data anomalies recorded"
        )
    publish_monitoring(flow, reports)
    create_markdown_artifact(
        markdown=summary_markdown(flow, reports, outcome, error, tolerance),
        key=artifact_key(flow, "summary"),
        description=f"{flow}: run summary",
    )


def publish_shards(flow: str, shards: list[dict[str, Any]], outcome: str) -> None:
    """The parent of a sharded run lists its shard runs (each shard publishes its own table)."""
    create_table_artifact(table=shards, key=artifact_key(flow, "shards"), description=f"{flow}: shard runs")
    lines = [f"# {flow}: {outcome}", ""] + [
        f"- shard {s['shard']}: `{s['flow run']}` {s['state']} ({s['symbols']})" for s in shards
    ]
    create_markdown_artifact(
        markdown="\n".join(lines) + "\n", key=artifact_key(flow, "summary"), description=f"{flow}: run summary"
    )


def combined_rows(reports: list[RunReport]) -> list[dict[str, Any]]:
    """One row per symbol and interval over the stages of a flow made of subflows (full-backfill:
    the bars, then the features): each stage's status and its figures side by side, and every
    stage's reason in one column, so the parent run's page answers "what happened to AAPL"."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for report in reports:
        for r in report.results:
            kind, _, interval = r.stage.rpartition("_")
            row = rows.setdefault(
                (r.symbol, interval),
                {"symbol": r.symbol, "interval": interval, "bars": "", "bars fetched": 0, "bars inserted": 0,
                 "bars updated": 0, "bars quarantined": 0, "features": "", "feature rows": 0, "reason": ""},
            )  # fmt: skip
            if kind == "features":
                row |= {"features": r.status, "feature rows": r.written}
            else:
                row |= {"bars": r.status, "bars fetched": r.fetched, "bars inserted": r.inserted}
                row |= {"bars updated": r.updated, "bars quarantined": r.quarantined}
            if r.reason:
                row["reason"] = "; ".join(filter(None, [row["reason"], f"{kind}: {r.reason}"]))
    return list(rows.values())


def publish_stages(flow: str, run_ids: list[str], outcome: str, error: str | None = None, tolerance: int = 0) -> None:
    """The parent of subflows shows their work on its own page: one per-symbol table over every
    stage (``combined_rows``) and the summary of each, read back from the runs' records."""
    reports = [report for run_id in run_ids if (report := recorded_report(run_id)) is not None]
    rows = combined_rows(reports)
    if rows:
        create_table_artifact(
            table=rows, key=artifact_key(flow, "symbols"), description=f"{flow}: per-symbol results of every stage"
        )
    create_markdown_artifact(
        markdown=summary_markdown(flow, reports, outcome, error, tolerance),
        key=artifact_key(flow, "summary"),
        description=f"{flow}: run summary",
    )
