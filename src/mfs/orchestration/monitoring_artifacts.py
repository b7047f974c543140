"""What feature monitoring shows in the Prefect UI: a features run's statistics table and drift
verdicts (``features-statistics``, ``features-drift``), and the self-audit's summary and
per-symbol table (``feature-audit-…``). Read back from the store by run id: the run's report
carries only counts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from mfs.features.monitoring.stats import rows_of_run
from mfs.flow_names import FEATURE_AUDIT, artifact_key
from mfs.runs import RunReport
from mfs.storage.connection import connection

DRIFT_SHOWN = ("interval", "symbol_group", "feature", "status", "psi", "threshold", "recent_from", "recent_to")


def _rounded(value: Any) -> Any:
    """Six significant digits for a float, ISO text for a date: what a table cell shows."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value.isoformat() if isinstance(value, dt.date) else value


def drift_rows(run_id: str) -> list[dict[str, Any]]:
    """The drift verdicts a run recorded, drifting first."""
    with connection() as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT interval, symbol_group, feature, status, psi, threshold, recent_from, recent_to
               FROM feature_drift_checks WHERE run_id = %s
               ORDER BY status <> 'drift', interval, symbol_group, psi DESC NULLS LAST""",
            (run_id,),
        )
        return [{k: _rounded(v) for k, v in zip(DRIFT_SHOWN, row, strict=True)} for row in cur.fetchall()]


def drift_lines(reports: list[RunReport]) -> list[str]:
    """The summary's line on monitoring: statistics recorded, drift checked, drifting features (bold)."""
    lines = []
    for report in reports:
        m = report.extra.get("monitoring") or {}
        if not m:
            continue
        drifting = m.get("drifting") or []
        text = (
            f"feature statistics recorded: {m.get('stats_rows', 0)} rows; drift verdicts: {m.get('drift_checked', 0)}"
        )
        if drifting:
            names = ", ".join(f"{d['feature']} {d['interval']} ({d['symbol_group']})" for d in drifting[:10])
            text = f"**{len(drifting)} drifting feature(s): {names}** — {text}"
        lines.append(f"- {text} (monitoring {m.get('seconds', 0)} s)")
    return lines


def publish_monitoring(flow: str, reports: list[RunReport]) -> None:
    """The statistics table and the drift verdicts of each report that has them."""

    for report in reports:
        m = report.extra.get("monitoring") or {}
        if m.get("stats_rows"):
            rows = [{k: _rounded(v) for k, v in r.items()} for r in rows_of_run(report.run_id)]
            create_table_artifact(
                table=rows, key=artifact_key(flow, "statistics"), description=f"{flow}: feature statistics of the run"
            )
        if m.get("drift_checked"):
            create_table_artifact(
                table=drift_rows(report.run_id),
                key=artifact_key(flow, "drift"),
                description=f"{flow}: drift verdicts (PSI of the recent sessions against the reference sessions)",
            )


def publish_audit(report: RunReport | None, outcome: str, error: str | None = None) -> None:
    """The self-audit's page: a summary (sample, columns, worst difference, mismatches) and one
    row per symbol and interval."""
    # deferred: the audit module with TA-Lib, ~410 ms (-X importtime, 2026-12-08), which the collect and
    # features flows, importing this module for their own artifacts, do not need
    from mfs.features.monitoring.audit import describe_diff

    lines = [f"# {FEATURE_AUDIT}: {outcome}", ""]
    if report is not None:
        a = report.extra.get("audit") or {}
        worst = a.get("worst") or {}
        lines.append(
            f"- sample: {', '.join(a.get('symbols', []))} × {', '.join(a.get('intervals', []))}; "
            f"{len(a.get('columns', []))} feature columns; {a.get('rows', 0)} rows, {a.get('values', 0)} values "
            f"compared in {a.get('seconds', 0)} s (tolerance {a.get('tolerance')} relative)"
        )
        if worst:
            lines.append(
                f"- worst difference: {describe_diff(worst['rel_diff'])} relative — {worst['symbol']} "
                f"{worst['interval']} {worst['feature']} at {worst['ts']}"
            )
        for m in (a.get("mismatches") or [])[:20]:
            lines.append(
                f"- **{m['symbol']} {m['interval']} {m['feature']}** at {m['ts']}: stored {m['stored']}, "
                f"recomputed {m['recomputed']}"
            )
        rows = [
            {"symbol": r.symbol, "interval": r.stage.removeprefix("audit_"), "status": r.status, "bars": r.fetched}
            | {"rows compared": r.written, "reason": r.reason or "", "seconds": round(r.duration_s, 3)}
            for r in report.results
        ]
        if rows:
            create_table_artifact(
                table=rows, key=artifact_key(FEATURE_AUDIT, "symbols"), description="feature-audit: per symbol"
            )
    if error:
        lines += ["", f"**Error:** {error}"]
    create_markdown_artifact(
        markdown="\n".join(lines) + "\n",
        key=artifact_key(FEATURE_AUDIT, "summary"),
        description="feature-audit: run summary",
    )
