"""Collect and backfill, a whole run: Yahoo bars → validation → quarantine + idempotent upsert
into market_data (the write path is ``mfs.ingest.write``).

Per run: symbols are fetched in batches of ``ingest.batch_size``, at most ``ingest.max_concurrency``
requests at a time. A symbol that still fails — or that Yahoo does not know — is one failed
``SymbolResult`` with the reason; the others go on. Every error of a symbol's fetch is caught
here, so nothing above (a Prefect task) sees one: this is the only retry layer. A stored symbol
Yahoo keeps answering "may be delisted" is marked delisted after ``ingest.delisted_after`` runs and
skipped from then on (``mfs.ingest.delistings``).

Retries are per request, never per run: a 429, a timeout or a damaged payload is retried with
exponential backoff and full jitter, at most ``ingest.max_attempts`` times (``fetch_with_retry``);
retrying the whole run instead would fetch every symbol again. The loop is our own dozen lines:
``tenacity`` would express it, but it is not among the project's locked dependencies
(requirements.lock), and adding one for a single bounded loop would cost more than it saves.
"""

from __future__ import annotations

import contextvars
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mfs.calendar import latest_expected_bar
from mfs.config import get_config
from mfs.errors import MfsError, RateLimitedError, SourceError, ValidationError
from mfs.flow_names import BACKFILL, COLLECT
from mfs.ingest import anomalies, delistings
from mfs.ingest.history import (
    StoredSeries,
    first_stored_bar,
    history_start,
    readjustment,
    resume_start,
    stored_series,
)
from mfs.ingest.quality import check_bars
from mfs.ingest.validate import Finding, Validated
from mfs.ingest.write import QualityOutcome, write_batch
from mfs.logs import bind_context, get_logger
from mfs.market import BAR_COLUMNS, MAX_HOURLY_DAYS, NY, YAHOO_HOURLY_DAYS, check_interval, normalize_symbols
from mfs.runs import RunReport, SymbolResult, recorded_run
from mfs.sources import request_log, yahoo
from mfs.sources.fake_yahoo import synthetic_session
from mfs.storage.clock import set_write_context
from mfs.storage.connection import connection

log = get_logger("mfs.ingest")
RETRYABLE = (RateLimitedError, yahoo.TransientSourceError)


def _session_and_source(
    session: yahoo.HttpSession | None, offline: bool
) -> tuple[yahoo.HttpSession, str, pd.Timestamp]:
    if session is None:
        session = synthetic_session() if offline else yahoo.default_session()
    adapter = getattr(session, "synthetic_yahoo", None)
    source = adapter.source_name if adapter is not None else "yahoo"
    asof = adapter.asof if adapter is not None else pd.Timestamp.now(tz="UTC")
    return session, source, asof


def window_start(asof: pd.Timestamp, days: int) -> pd.Timestamp:
    """New York midnight ``days`` calendar days before ``asof``: whole sessions, in UTC."""
    day = (asof.tz_convert(NY) - pd.Timedelta(days=days)).tz_localize(None).normalize()
    return day.tz_localize(NY).tz_convert("UTC")


def fetch_with_retry(
    symbol: str,
    interval: str,
    start: pd.Timestamp,
    session: yahoo.HttpSession,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> yahoo.Chart:
    """``yahoo.fetch_chart`` with bounded attempts and exponential backoff with full jitter."""
    cfg = get_config().ingest
    last: SourceError | None = None
    requests_made = request_log.current()
    for attempt in range(1, cfg.max_attempts + 1):
        requests_made.before_request()  # waits for the request budget, when the run has one
        try:
            return yahoo.fetch_chart(symbol, interval, start, session=session, timeout=cfg.request_timeout_s)
        except RETRYABLE as exc:
            if isinstance(exc, RateLimitedError):
                requests_made.answered_429()
            last = exc
            if attempt == cfg.max_attempts:
                break
            cap = min(cfg.backoff_max_s, cfg.backoff_initial_s * 2 ** (attempt - 1))
            delay = random.uniform(0, cap)
            log.warning(
                "retrying after a transient source error",
                symbol=symbol,
                attempt=attempt,
                delay_s=round(delay, 3),
                error=str(exc),
            )
            sleep(delay)
    assert last is not None
    raise type(last)(
        f"{last} — still failing after {cfg.max_attempts} attempts "
        f"(exponential backoff from {cfg.backoff_initial_s} s up to {cfg.backoff_max_s} s)"
    ) from last


def _bars_expected(interval: str, start: pd.Timestamp, asof: pd.Timestamp) -> bool:
    latest = latest_expected_bar(asof, interval)
    return latest is not None and latest >= start


def bars_frame() -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in BAR_COLUMNS}).astype({"ts": "datetime64[ns, UTC]", "volume": np.int64})


@dataclass(frozen=True)
class FetchOutcome:
    """One symbol's fetch and validation."""

    checked: Validated | None  # None when the fetch or the validation failed: ``error`` says why
    fetched: int  # bars Yahoo returned
    error: str | None
    seconds: float  # measured for this symbol: its requests (retries included) and validation
    note: str | None = None  # the history was re-adjusted by Yahoo and fetched again
    not_found: bool = False  # Yahoo said "may be delisted" (``mfs.ingest.delistings``)
    readjusted_for: str | None = None  # what re-adjusted the history (a split, a dividend), when known


def _fetch_one(
    symbol: str,
    interval: str,
    start: pd.Timestamp,
    asof: pd.Timestamp,
    session: yahoo.HttpSession,
    stored: StoredSeries | None = None,
    floor: pd.Timestamp | None = None,
) -> FetchOutcome:
    """Fetch, validate and examine one symbol; every error becomes the outcome's ``error``.

    ``stored`` (what the store holds of the series) moves the start back over missed runs and
    held-back bars and, when Yahoo has re-adjusted the history since, makes the fetch reach back
    to the series' first stored bar, so the whole stored history is rewritten in the new
    adjustment (``mfs.ingest.history``); ``note`` then says so, naming the split or dividend that
    explains it (an unexplained one is also an anomaly)."""
    began = time.monotonic()

    def outcome(checked: Validated | None, fetched: int, error: str | None, **more: Any) -> FetchOutcome:
        return FetchOutcome(checked, fetched, error, time.monotonic() - began, **more)

    change = None
    with bind_context(symbol=symbol):
        start = resume_start(start, stored, floor)
        try:
            chart = fetch_with_retry(symbol, interval, start, session)
            change = readjustment(chart.bars, stored, chart.actions)
            if change:
                log.warning("history re-adjusted by Yahoo, fetching it again", interval=interval, change=str(change))
                if stored is not None and (begin := history_start(first_stored_bar(symbol, interval), floor)) < start:
                    start, chart = begin, fetch_with_retry(symbol, interval, begin, session)
        except yahoo.NoBarsError as exc:
            if _bars_expected(interval, start, asof):
                log.error("fetch failed", interval=interval, reason=str(exc))
                return outcome(None, 0, str(exc))
            # No session in the window (a short window over a weekend or holiday): nothing to do.
            log.info("no session in the window, no bars expected", interval=interval)
            return outcome(Validated(good=bars_frame()), 0, None)
        except MfsError as exc:
            log.error("fetch failed", interval=interval, reason=str(exc))
            return outcome(None, 0, str(exc), not_found=delistings.is_not_found(exc))
        except Exception as exc:  # a yfinance bug for one symbol must not take the others down
            log.exception("fetch failed unexpectedly", interval=interval)
            return outcome(None, 0, f"{symbol}: unexpected error: {type(exc).__name__}: {exc}")
        try:
            checked = check_bars(chart.bars, interval, get_config().quality, asof=asof, actions=chart.actions)
        except ValidationError as exc:
            log.error("bars cannot be validated", interval=interval, reason=str(exc))
            return outcome(None, len(chart.bars), f"{symbol}: {exc}")
        if change is None:
            return outcome(checked, len(chart.bars), None)
        if change.cause is None:
            checked.findings.append(Finding(change.ref_ts, "unexplained_readjustment", "high", str(change)))
        note = f"{symbol} {interval}: {change}; bars since {start.date()} fetched and rewritten"
        return outcome(checked, len(chart.bars), None, note=note, readjusted_for=change.cause or "unexplained")


def _symbol_result(symbol: str, stage: str, interval: str, fetched: FetchOutcome) -> SymbolResult:
    result = SymbolResult(symbol=symbol, stage=stage, fetched=fetched.fetched, duration_s=fetched.seconds)
    if fetched.checked is None:
        result.status, result.reason = "failed", fetched.error
        return result
    result.quarantined = len(fetched.checked.rejected)
    result.quarantine_reasons = fetched.checked.reasons
    if fetched.checked.rejected:
        log.warning("bars quarantined", symbol=symbol, interval=interval, reasons=fetched.checked.reasons)
    return result


def _ingest(
    report: RunReport,
    symbols: list[str],
    interval: str,
    days: int,
    session: yahoo.HttpSession,
    source: str,
    asof: pd.Timestamp,
    quality: QualityOutcome,
) -> list[SymbolResult]:
    """One interval of a run; returns the results that failed with Yahoo's "may be delisted"
    (``delistings.settle`` weighs them once every interval is done). What it adds to the quality
    record is added up in ``quality``."""
    cfg = get_config().ingest
    start = window_start(asof, days)
    stage = f"collect_{interval}"
    log.info(
        "ingest window",
        interval=interval,
        start=start.isoformat(),
        asof=asof.isoformat(),
        symbols=len(symbols),
        source=source,
    )
    yahoo.clear_request_cache()
    floor = window_start(asof, MAX_HOURLY_DAYS) if interval == "1h" else None
    stored = stored_series(interval, symbols, start, floor)
    held = {symbol for symbol, series in stored.items() if series.held_from is not None}
    not_found: list[SymbolResult] = []
    with ThreadPoolExecutor(max_workers=cfg.max_concurrency, thread_name_prefix="mfs-fetch") as pool:
        for first in range(0, len(symbols), cfg.batch_size):
            batch = symbols[first : first + cfg.batch_size]
            futures = [
                pool.submit(
                    contextvars.copy_context().run,
                    _fetch_one,
                    s,
                    interval,
                    start,
                    asof,
                    session,
                    stored.get(s),
                    floor,
                )
                for s in batch
            ]
            to_write, readjusted = [], {}
            for symbol, future in zip(batch, futures, strict=False):
                fetched = future.result()
                if fetched.note:
                    report.notes.append(fetched.note)
                    readjusted[symbol] = fetched.readjusted_for or ""
                result = _symbol_result(symbol, stage, interval, fetched)
                report.results.append(result)
                if fetched.not_found:
                    not_found.append(result)
                if fetched.checked is not None:
                    to_write.append((result, fetched.checked))
            report.notes.extend(
                write_batch(
                    to_write, interval, source, report.run_id, readjusted=readjusted, reexamine=held, quality=quality
                )
            )
    return not_found


def _cross_check(
    report: RunReport,
    symbols: list[str],
    intervals: Sequence[str],
    days: int,
    asof: pd.Timestamp,
    quality: QualityOutcome,
) -> None:
    """The run-level quality checks over what the run stored, then the run's anomaly summary."""
    since = window_start(asof, days).to_pydatetime()
    with connection() as conn, conn.cursor() as cur:
        set_write_context(cur, run_id=report.run_id)
        rules = get_config().quality
        quality.new += anomalies.cross_check(cur, report.run_id, symbols, intervals, since, asof.to_pydatetime(), rules)
    anomalies.summarize(report, quality.new, quality.resolved, quality.actions)
    if quality.new:
        log.warning("data anomalies recorded", **anomalies.log_fields(report))


def _symbols(symbols: Sequence[str] | str | None) -> list[str]:
    chosen = normalize_symbols(symbols) if symbols else list(get_config().symbols)
    return list(dict.fromkeys(chosen))


def collect(
    symbols: list[str] | None = None,
    interval: str | None = None,
    *,
    days: int | None = None,
    offline: bool = False,
    session: yahoo.HttpSession | None = None,
    run_id: str | None = None,
    raise_on_failure: bool = True,
    request_slot: Callable[[], object] | None = None,
) -> RunReport:
    """Fetch the last ``days`` (config ``ingest.incremental_days``) of bars for ``symbols``
    (config ``symbols``) and upsert them: ``interval`` ("1h" or "1d"), or by default every
    configured interval (``intervals``), one after the other in one run. A symbol's fetch reaches
    further back when its stored bars stop before the window or Yahoo re-adjusted its history
    (``mfs.ingest.history``). ``request_slot`` blocks until a shared request budget allows one
    more Yahoo request (``mfs.orchestration.limits``); the report's ``extra["yahoo_requests"]``
    says how many were made, at what rate, how long they waited and how many Yahoo refused (429).
    Flow name "collect"."""
    cfg = get_config()
    intervals: list[str] = [check_interval(interval)] if interval is not None else list(cfg.intervals)
    days = cfg.ingest.incremental_days if days is None else int(days)
    if days <= 0:
        raise ValidationError(f"days must be > 0, got {days}")
    if "1h" in intervals and days > MAX_HOURLY_DAYS:
        raise ValidationError(
            f"Yahoo serves hourly bars for the last {YAHOO_HOURLY_DAYS} days only; {days} days asked "
            f"(use at most {MAX_HOURLY_DAYS}, or interval 1d for longer history)"
        )
    chosen = _symbols(symbols)
    session, source, asof = _session_and_source(session, offline)
    params = {"symbols": chosen, "intervals": intervals, "days": days, "source": source, "asof": asof.isoformat()}
    with (
        recorded_run(
            COLLECT,
            params,
            run_id=run_id,
            tolerance=cfg.runs.failed_symbol_tolerance,
            raise_on_failure=raise_on_failure,
        ) as report,
        request_log.tracked(request_slot) as requests_made,
    ):
        quality = QualityOutcome()
        not_found = [
            r for each in intervals for r in _ingest(report, chosen, each, days, session, source, asof, quality)
        ]
        _cross_check(report, chosen, intervals, days, asof, quality)
        delistings.settle(report, not_found)
        report.extra["yahoo_requests"] = requests_made.summary(cfg.ingest.requests_per_s)
    return report


def backfill(
    symbols: list[str] | None = None,
    *,
    days: int | None = None,
    offline: bool = False,
    session: yahoo.HttpSession | None = None,
    run_id: str | None = None,
    raise_on_failure: bool = True,
    request_slot: Callable[[], object] | None = None,
) -> RunReport:
    """Load ``days`` (config ``ingest.backfill_days``) of history for every configured interval.
    Hourly history is capped at Yahoo's 730-day limit (with a warning and a note in the report).
    ``request_slot`` and ``extra["yahoo_requests"]``: as for ``collect``. Flow name "backfill"."""
    cfg = get_config()
    days = cfg.ingest.backfill_days if days is None else int(days)
    if days <= 0:
        raise ValidationError(f"days must be > 0, got {days}")
    chosen = _symbols(symbols)
    session, source, asof = _session_and_source(session, offline)
    params = {
        "symbols": chosen,
        "intervals": list(cfg.intervals),
        "days": days,
        "source": source,
        "asof": asof.isoformat(),
    }
    with (
        recorded_run(
            BACKFILL,
            params,
            run_id=run_id,
            tolerance=cfg.runs.failed_symbol_tolerance,
            raise_on_failure=raise_on_failure,
        ) as report,
        request_log.tracked(request_slot) as requests_made,
    ):
        not_found: list[SymbolResult] = []
        quality = QualityOutcome()
        for interval in cfg.intervals:
            span = days
            if interval == "1h" and days > MAX_HOURLY_DAYS:
                span = MAX_HOURLY_DAYS
                note = (
                    f"hourly history limited to the last {MAX_HOURLY_DAYS} days by Yahoo "
                    f"({YAHOO_HOURLY_DAYS}-day limit); {days} days asked, daily bars cover all of them"
                )
                log.warning(note)
                report.notes.append(note)
            not_found += _ingest(report, chosen, interval, span, session, source, asof, quality)
        _cross_check(report, chosen, list(cfg.intervals), min(days, MAX_HOURLY_DAYS), asof, quality)
        delistings.settle(report, not_found)
        report.extra["yahoo_requests"] = requests_made.summary(cfg.ingest.requests_per_s)
    return report
