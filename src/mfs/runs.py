"""Run bookkeeping shared by every pipeline: per-symbol results, run reports, and their rows in
``pipeline_runs`` / ``symbol_runs``.

Honest runs: a pipeline returns a RunReport; ``RunReport.raise_if_failed`` turns failed symbols
beyond the configured tolerance into RunFailedError, so the CLI exits non-zero and a Prefect run
ends Failed. Nothing here swallows exceptions: ``recorded_run`` records the failure and re-raises.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from psycopg2.extras import execute_values

from mfs.errors import RunFailedError, StorageError
from mfs.logs import bind_context, get_logger, mask_secrets
from mfs.storage.connection import connection

log = get_logger("mfs.runs")
Status = Literal["ok", "failed", "skipped"]


@dataclass
class SymbolResult:
    symbol: str
    stage: str  # collect_1h, collect_1d, features_1h, ...
    status: Status = "ok"
    reason: str | None = None
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    quarantined: int = 0
    written: int = 0
    # Seconds of this symbol's work. Work done for a whole batch at once is shared out equally
    # (the ingest write, a features worker's batch), so a run's durations add up to its busy time.
    duration_s: float = 0.0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchTiming:
    """The measured wall time of a batch of symbols done together (a features worker task:
    reads, maths and write in one transaction); per-symbol times inside it are not measured."""

    stage: str
    symbols: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class RunCounts:
    """A run's totals over its symbol results, with its notes and run-level facts; ``as_dict``
    is the JSON of ``pipeline_runs.counts``, of a flow's result and of ``--json``."""

    result_count: int = 0  # symbol × stage results
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    quarantined: int = 0
    written: int = 0
    symbols_ok: int = 0
    symbols_failed: int = 0
    symbols_skipped: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # RunReport.extra: status, the features run's settings

    @classmethod
    def of(cls, report: RunReport) -> RunCounts:
        results = report.results
        reasons: Counter = Counter()
        for r in results:
            reasons.update(r.quarantine_reasons)
        statuses = Counter(r.status for r in results)
        return cls(
            result_count=len(results),
            fetched=sum(r.fetched for r in results),
            inserted=sum(r.inserted for r in results),
            updated=sum(r.updated for r in results),
            quarantined=sum(r.quarantined for r in results),
            written=sum(r.written for r in results),
            symbols_ok=statuses["ok"],
            symbols_failed=statuses["failed"],
            symbols_skipped=statuses["skipped"],
            quarantine_reasons=dict(reasons),
            notes=list(report.notes),
            extra=dict(report.extra),
        )

    def as_dict(self) -> dict[str, Any]:
        """The keys readers of pipeline_runs.counts know: row totals once there is a result, a
        ``symbols_<status>`` per status that occurred, ``quarantine_reasons`` and ``notes`` when
        there are any, then the run-level facts."""
        out: dict[str, Any] = {}
        if self.result_count:
            out.update(
                fetched=self.fetched,
                inserted=self.inserted,
                updated=self.updated,
                quarantined=self.quarantined,
                written=self.written,
            )
        for status in ("ok", "failed", "skipped"):
            if n := getattr(self, f"symbols_{status}"):
                out[f"symbols_{status}"] = n
        if self.quarantine_reasons:
            out["quarantine_reasons"] = dict(self.quarantine_reasons)
        if self.notes:
            out["notes"] = list(self.notes)
        out.update(self.extra)
        return out


@dataclass
class RunReport:
    run_id: str
    flow: str
    results: list[SymbolResult] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    # What a reader of the run should know besides the counts: the hourly 730-day cap, a history
    # Yahoo re-adjusted and that was rewritten.
    notes: list[str] = field(default_factory=list)
    batches: list[BatchTiming] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[SymbolResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def failed_symbols(self) -> list[str]:
        """Symbols with a failed stage, each once (a run of two intervals may fail one twice):
        what runs.failed_symbol_tolerance counts."""
        return list(dict.fromkeys(r.symbol for r in self.failed))

    def counts(self) -> RunCounts:
        return RunCounts.of(self)

    def rows(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.results]

    def raise_if_failed(self, tolerance: int = 0) -> None:
        failed, symbols = self.failed, self.failed_symbols
        if len(symbols) > tolerance:
            detail = "; ".join(f"{r.symbol} ({r.stage}): {r.reason}" for r in failed[:20])
            more = f" and {len(failed) - 20} more" if len(failed) > 20 else ""
            raise RunFailedError(f"{self.flow}: {len(symbols)} symbol(s) failed: {detail}{more}")


def describe_scope(results: list[SymbolResult]) -> str:
    """What a run covered, in words: "10 symbols × 2 intervals" (a result is one symbol in one
    stage, so 20 results are 10 symbols, not 20)."""
    symbols = len({r.symbol for r in results})
    stages = len({r.stage for r in results})
    if stages <= 1:
        return f"{symbols} symbol{'s' * (symbols != 1)}"
    return f"{symbols} symbol{'s' * (symbols != 1)} × {stages} intervals"


def describe_results(results: list[SymbolResult]) -> str:
    """A run's outcome in a line: its scope, then how its symbol × interval results ended."""
    statuses = Counter(r.status for r in results)
    ends = ", ".join(f"{statuses[s]} {s}" for s in ("ok", "failed", "skipped") if statuses[s]) or "nothing to do"
    return f"{describe_scope(results)} ({ends})" if results else "no symbol to work on"


def describe_anomalies(summary: dict[str, Any]) -> str:
    """A run's anomaly summary (``report.extra['anomalies']``) in one sentence."""
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(summary["by_kind"].items())) or "none"
    return (
        f"data quality: {summary['new']} new anomalies ({kinds}), {summary['high']} of high severity, "
        f"{summary['held_back']} bars held back, {summary['resolved']} held bars released or resolved, "
        f"{summary['actions']} new corporate actions"
    )


def describe_anomaly(anomaly: dict[str, Any]) -> str:
    """One listed anomaly in a line: what, where, and whether the bar is stored."""
    state = "held back" if anomaly["held"] else "stored"
    return (
        f"{anomaly['symbol']} {anomaly['interval']} {anomaly['ts']} {anomaly['kind']} "
        f"({anomaly['severity']}, {state}): {anomaly['detail']}"
    )


def new_run_id() -> str:
    return str(uuid.uuid4())


def start_run(run_id: str, flow: str, parameters: dict[str, Any]) -> None:
    with connection() as conn, conn.cursor() as cur:
        cur.execute(
            """INSERT INTO pipeline_runs (run_id, flow, parameters) VALUES (%s, %s, %s)
               ON CONFLICT (run_id) DO UPDATE SET status = 'running', finished_at = NULL""",
            (run_id, flow, json.dumps(parameters, default=str)),
        )


_RESULT_COLUMNS = (
    "run_id, symbol, stage, status, reason, rows_fetched, rows_inserted, rows_updated, rows_quarantined, "
    "rows_written, duration_s"
)
_COPY_RESULTS = "COPY symbol_runs (" + _RESULT_COLUMNS + ") FROM STDIN"
_UPSERT_RESULTS = (
    "INSERT INTO symbol_runs (" + _RESULT_COLUMNS + ") VALUES %s "
    """ON CONFLICT (run_id, symbol, stage) DO UPDATE SET status = EXCLUDED.status,
         reason = EXCLUDED.reason, rows_fetched = EXCLUDED.rows_fetched,
         rows_inserted = EXCLUDED.rows_inserted, rows_updated = EXCLUDED.rows_updated,
         rows_quarantined = EXCLUDED.rows_quarantined, rows_written = EXCLUDED.rows_written,
         duration_s = EXCLUDED.duration_s, recorded_at = now()"""
)
_COPY_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def record_results(run_id: str, results: list[SymbolResult]) -> None:
    """One row per symbol and stage (a later result of the same pair replaces an earlier one).

    By COPY when the run has no result recorded yet: 8,000 results took 74 ms, against 234 ms as
    INSERT … ON CONFLICT (measured), at the end of every run while no worker is busy. A run
    recorded before (a retry after its final status could not be written) is upserted."""
    if not results:
        return
    rows = [_result_row(run_id, r) for r in {(r.symbol, r.stage): r for r in results}.values()]
    with connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM symbol_runs WHERE run_id = %s LIMIT 1", (run_id,))
        if cur.fetchone() is None:
            text = "".join("\t".join(map(_copy_text, row)) + "\n" for row in rows)
            cur.copy_expert(_COPY_RESULTS, io.StringIO(text))
        else:
            execute_values(cur, _UPSERT_RESULTS, rows, page_size=1000)


def recorded_report(run_id: str) -> RunReport | None:
    """A recorded run read back (pipeline_runs + symbol_runs): its flow, symbol results, notes and
    run-level facts — what a parent flow shows of its subflows. None when no such run."""
    with connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT flow, counts FROM pipeline_runs WHERE run_id = %s", (run_id,))
        row = cur.fetchone()
        if row is None:
            return None
        cur.execute(
            """SELECT symbol, stage, status, reason, rows_fetched, rows_inserted, rows_updated,
                      rows_quarantined, rows_written, duration_s
               FROM symbol_runs WHERE run_id = %s ORDER BY symbol, stage DESC""",
            (run_id,),
        )
        results = [SymbolResult(*r) for r in cur.fetchall()]
    flow, counts = row[0], row[1] or {}
    extra = {k: counts[k] for k in ("anomalies", "yahoo_requests") if k in counts}
    return RunReport(run_id=run_id, flow=flow, results=results, notes=list(counts.get("notes", [])), extra=extra)


def _result_row(run_id: str, r: SymbolResult) -> tuple:
    """``r`` as a row of symbol_runs, its columns in the order of _RESULT_COLUMNS."""
    return (
        *(run_id, r.symbol, r.stage, r.status, r.reason),
        *(r.fetched, r.inserted, r.updated, r.quarantined, r.written, r.duration_s),
    )


def _copy_text(value: object) -> str:
    """``value`` as a field of COPY's text format. Not the binary COPY of ``mfs.storage.bulk``:
    that needs numpy and pandas, which a run with nothing to do never imports."""
    return "\\N" if value is None else str(value).translate(_COPY_TEXT_ESCAPES)


def finish_run(run_id: str, status: str, counts: dict[str, Any], error: str | None = None) -> None:
    with connection() as conn, conn.cursor() as cur:
        cur.execute(
            """UPDATE pipeline_runs SET status = %s, finished_at = now(), counts = %s, error_summary = %s
               WHERE run_id = %s""",
            (status, json.dumps(counts, default=str), error and mask_secrets(error), run_id),
        )


def _record_outcome(report: RunReport, status: str, error: str | None, *, attempts: int = 6) -> None:
    """Write the symbol results and the run's final status, retrying briefly when the database
    itself is what failed (a restart takes a few seconds) so the row does not stay 'running'.

    Failure reasons are masked here, in the report itself, once: a library may quote a DSN or a
    password in its error text, and every later reader of the report — the run tables, the
    artifacts, the CLI's table, the RunFailedError a flow run ends with — then sees it masked."""
    for result in report.results:
        if result.reason:
            result.reason = mask_secrets(result.reason)
    for attempt in range(attempts):
        try:
            record_results(report.run_id, report.results)
            finish_run(report.run_id, status, report.counts().as_dict(), error)
            return
        except StorageError as exc:
            if attempt == attempts - 1:
                raise
            log.warning("recording the run failed; retrying", run_id=report.run_id, reason=str(exc))
            time.sleep(0.5 * 2**attempt)  # 0.5 … 8 s


@contextmanager
def recorded_run(
    flow: str, parameters: dict[str, Any], run_id: str | None = None, tolerance: int = 0, raise_on_failure: bool = True
) -> Iterator[RunReport]:
    """Record a run from start to finish. Symbol results appended to the report are written at
    the end; failed symbols beyond ``tolerance`` make the run 'failed' and raise RunFailedError.
    With ``raise_on_failure=False`` the caller (a Prefect flow publishing its artifact first)
    must call ``report.raise_if_failed(tolerance)`` itself."""
    report = RunReport(run_id=run_id or new_run_id(), flow=flow)
    start_run(report.run_id, flow, parameters)
    with bind_context(run_id=report.run_id, flow=flow):
        try:
            yield report
        except BaseException as exc:
            try:
                _record_outcome(report, "failed", f"{type(exc).__name__}: {exc}")
            except Exception as recording:  # the run's own error is what the caller must see
                log.error("could not record the failed run", reason=str(recording))
            raise
        failed = report.failed
        status = "failed" if len(report.failed_symbols) > tolerance else "completed"
        error = "; ".join(f"{r.symbol}: {r.reason}" for r in failed[:20]) or None
        _record_outcome(report, status, error)
        report.extra["status"] = status
        log.info(f"run finished, {status}: {describe_results(report.results)}")
        if raise_on_failure:
            report.raise_if_failed(tolerance)
