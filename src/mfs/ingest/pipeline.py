"""Collect and backfill: Yahoo bars → validation → quarantine + idempotent upsert into market_data.

Per run: symbols are fetched in batches of ``ingest.batch_size``, at most ``ingest.max_concurrency``
requests at a time; each request is retried on 429 / timeouts / damaged payloads with exponential
backoff and full jitter, at most ``ingest.max_attempts`` times. A symbol that still fails — or
that Yahoo does not know — is one failed ``SymbolResult`` with the reason; the others go on.
Each batch is written in one transaction (a reader never sees half a batch), with a savepoint per
symbol so one symbol's write error cannot take its neighbours down. Writes happen on the calling
thread only, so a run holds one database connection.
"""

from __future__ import annotations

import contextvars
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import psycopg2
from psycopg2.extras import Json, execute_values

from mfs.calendar import latest_expected_bar
from mfs.config import get_config
from mfs.flow_names import BACKFILL, COLLECT
from mfs.errors import MfsError, RateLimitedError, SourceError, ValidationError
from mfs.ingest.history import StoredSeries, history_start, readjustment, resume_start, stored_series
from mfs.ingest.validate import Validated, validate_bars
from mfs.logs import bind_context, get_logger
from mfs.market import BAR_COLUMNS, INTERVALS, MAX_HOURLY_DAYS, NY, YAHOO_HOURLY_DAYS
from mfs.runs import RunReport, SymbolResult, recorded_run
from mfs.sources import yahoo
from mfs.storage.bulk import Column, EncodedRows, encode_rows, upsert
from mfs.storage.connection import connection
from mfs.symbols import normalize_symbols

log = get_logger("mfs.ingest")
MARKET_DATA_COLUMNS = [
    Column("symbol", "text"), Column("interval", "text"), Column("ts", "timestamptz"),
    Column("open", "float8"), Column("high", "float8"), Column("low", "float8"), Column("close", "float8"),
    Column("adj_close", "float8"), Column("volume", "int8"), Column("source", "text"),
]
MARKET_DATA_KEY = ["symbol", "interval", "ts"]
RETRYABLE = (RateLimitedError, yahoo.TransientSourceError)


def _session_and_source(session, offline: bool):
    if session is None:
        if offline:
            from mfs.sources.fake_yahoo import synthetic_session

            session = synthetic_session()
        else:
            session = yahoo.default_session()
    adapter = getattr(session, "synthetic_yahoo", None)
    source = adapter.source_name if adapter is not None else "yahoo"
    asof = adapter.asof if adapter is not None else pd.Timestamp.now(tz="UTC")
    return session, source, asof


def window_start(asof: pd.Timestamp, days: int) -> pd.Timestamp:
    """New York midnight ``days`` calendar days before ``asof``: whole sessions, in UTC."""
    day = (asof.tz_convert(NY) - pd.Timedelta(days=days)).tz_localize(None).normalize()
    return day.tz_localize(NY).tz_convert("UTC")


def fetch_with_retry(symbol: str, interval: str, start: pd.Timestamp, session, *,
                     sleep: Callable[[float], None] = time.sleep) -> pd.DataFrame:
    """``yahoo.fetch_history`` with bounded attempts and exponential backoff with full jitter."""
    cfg = get_config().ingest
    last: SourceError | None = None
    for attempt in range(1, cfg.max_attempts + 1):
        try:
            return yahoo.fetch_history(symbol, interval, start, session=session, timeout=cfg.request_timeout_s)
        except RETRYABLE as exc:
            last = exc
            if attempt == cfg.max_attempts:
                break
            cap = min(cfg.backoff_max_s, cfg.backoff_initial_s * 2 ** (attempt - 1))
            delay = random.uniform(0, cap)
            log.warning("retrying after a transient source error", symbol=symbol, attempt=attempt,
                        delay_s=round(delay, 3), error=str(exc))
            sleep(delay)
    assert last is not None
    raise type(last)(f"{last} — still failing after {cfg.max_attempts} attempts "
                     f"(exponential backoff from {cfg.backoff_initial_s} s up to {cfg.backoff_max_s} s)") from last


def _bars_expected(interval: str, start: pd.Timestamp, asof: pd.Timestamp) -> bool:
    latest = latest_expected_bar(asof, interval)
    return latest is not None and latest >= start


def bars_frame() -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in BAR_COLUMNS}).astype({"ts": "datetime64[ns, UTC]", "volume": np.int64})


def _fetch_one(symbol: str, interval: str, start: pd.Timestamp, asof: pd.Timestamp, session, max_jump: float,
               stored: StoredSeries | None = None, floor: pd.Timestamp | None = None):
    """Fetch and validate one symbol; returns (Validated | None, fetched, error, seconds, note).

    ``stored`` (what the store holds of the series) moves the start back over missed runs and,
    when Yahoo has re-adjusted the history since, makes the fetch reach back to the series'
    first stored bar, so the whole stored history is rewritten in the new adjustment
    (``mfs.ingest.history``); ``note`` then says so."""
    began = time.monotonic()
    note = None
    with bind_context(symbol=symbol):
        start = resume_start(start, stored, floor)
        try:
            bars = fetch_with_retry(symbol, interval, start, session)
            change = readjustment(bars, stored)
            if change:
                log.warning("history re-adjusted by Yahoo, fetching it again", interval=interval, change=change)
                if (begin := history_start(stored, floor)) < start:
                    start, bars = begin, fetch_with_retry(symbol, interval, begin, session)
                note = f"{symbol} {interval}: {change}; bars since {start.date()} fetched and rewritten"
        except yahoo.NoBarsError as exc:
            if _bars_expected(interval, start, asof):
                log.error("fetch failed", interval=interval, reason=str(exc))
                return None, 0, str(exc), time.monotonic() - began, None
            # No session in the window (a short window over a weekend or holiday): nothing to do.
            log.info("no session in the window, no bars expected", interval=interval)
            return Validated(good=bars_frame()), 0, None, time.monotonic() - began, None
        except MfsError as exc:
            log.error("fetch failed", interval=interval, reason=str(exc))
            return None, 0, str(exc), time.monotonic() - began, None
        except Exception as exc:  # a yfinance bug for one symbol must not take the others down
            log.exception("fetch failed unexpectedly", interval=interval)
            return None, 0, f"{symbol}: unexpected error: {type(exc).__name__}: {exc}", time.monotonic() - began, None
        try:
            checked = validate_bars(bars, interval, max_jump=max_jump, asof=asof)
        except ValidationError as exc:
            log.error("bars cannot be validated", interval=interval, reason=str(exc))
            return None, len(bars), f"{symbol}: {exc}", time.monotonic() - began, None
        return checked, len(bars), None, time.monotonic() - began, note


def _quarantine_rows(cur, symbol: str, interval: str, source: str, run_id: str, checked: Validated) -> None:
    # Rejected bars are few (usually none): a plain multi-row INSERT, not the COPY path.
    if not checked.rejected:
        return
    execute_values(
        cur,
        "INSERT INTO quarantine (source, symbol, interval, ts, raw, reason, run_id) VALUES %s",
        [(source, symbol, interval, r["ts"].to_pydatetime(), Json(r["raw"]), r["reason"], run_id) for r in checked.rejected],
    )


def _bar_arrays(symbol: str, good: pd.DataFrame, interval: str, source: str) -> dict[str, object]:
    n = len(good)
    return {
        "symbol": np.full(n, symbol, dtype=object), "interval": np.full(n, interval, dtype=object),
        "ts": pd.DatetimeIndex(good["ts"]), "open": good["open"].to_numpy(float),
        "high": good["high"].to_numpy(float), "low": good["low"].to_numpy(float),
        "close": good["close"].to_numpy(float), "adj_close": good["adj_close"].to_numpy(float),
        "volume": good["volume"].to_numpy(np.int64), "source": np.full(n, source, dtype=object),
    }


def _concat(parts: list[dict[str, object]]) -> dict[str, object]:
    return {k: (pd.DatetimeIndex(np.concatenate([p[k].asi8 for p in parts])).tz_localize("UTC") if k == "ts"
                else np.concatenate([p[k] for p in parts])) for k in parts[0]}


def _batch_rows(results: list[tuple[SymbolResult, Validated]], interval: str, source: str) -> EncodedRows:
    """The good bars of a batch as one set of columns with its COPY payload."""
    parts = [_bar_arrays(r.symbol, c.good, interval, source) for r, c in results]
    return encode_rows(MARKET_DATA_COLUMNS, _concat(parts), key=MARKET_DATA_KEY)


def _upsert_bars(cur, data: dict[str, object] | EncodedRows):
    return upsert(cur, "market_data", MARKET_DATA_COLUMNS, data, key=MARKET_DATA_KEY,
                  touch={"ingested_at": "now()"}, append_by=("symbol", "interval"), count_by="symbol")


def _write_batch(results: list[tuple[SymbolResult, Validated]], interval: str, source: str, run_id: str,
                 rows: EncodedRows | None = None) -> None:
    """One transaction for the batch. The whole batch is written by one upsert (one COPY) of
    ``rows`` (``_batch_rows``, built here when not given); only if that fails is it retried
    symbol by symbol, each in a savepoint, so one symbol's write error cannot take its
    neighbours down."""
    if not results:
        return
    began = time.monotonic()
    with connection() as conn, conn.cursor() as cur:
        stored: list[str] = []
        cur.execute("SAVEPOINT batch_write")
        try:
            counts = _upsert_bars(cur, rows if rows is not None else _batch_rows(results, interval, source))
            for result, checked in results:
                _quarantine_rows(cur, result.symbol, interval, source, run_id, checked)
                result.inserted, result.updated = (counts.by or {}).get(result.symbol, (0, 0))
                result.written = result.inserted + result.updated
                stored.append(result.symbol)
            cur.execute("RELEASE SAVEPOINT batch_write")
        except (psycopg2.Error, MfsError):
            if conn.closed:  # the server went away: the whole batch is lost, not one symbol
                raise
            cur.execute("ROLLBACK TO SAVEPOINT batch_write")
            stored = _write_one_by_one(conn, cur, results, interval, source, run_id)
        share = (time.monotonic() - began) / len(results)
        for result, _checked in results:
            result.duration_s += share
        if stored:
            # A few names: one statement (the COPY staging path costs two temp-table truncates).
            cur.execute("INSERT INTO symbols (symbol, active) SELECT unnest(%s::text[]), true "
                        "ON CONFLICT (symbol) DO UPDATE SET active = true WHERE NOT symbols.active", (stored,))


def _write_one_by_one(conn, cur, results, interval: str, source: str, run_id: str) -> list[str]:
    stored = []
    for result, checked in results:
        cur.execute("SAVEPOINT symbol_write")
        try:
            counts = _upsert_bars(cur, _bar_arrays(result.symbol, checked.good, interval, source))
            _quarantine_rows(cur, result.symbol, interval, source, run_id, checked)
            cur.execute("RELEASE SAVEPOINT symbol_write")
        except (psycopg2.Error, MfsError) as exc:
            if conn.closed:
                raise
            cur.execute("ROLLBACK TO SAVEPOINT symbol_write")
            result.status, result.reason = "failed", f"{result.symbol}: write failed: {str(exc).strip()}"
            log.error("write failed", symbol=result.symbol, reason=result.reason)
            continue
        result.inserted, result.updated = counts.inserted, counts.updated
        result.written = counts.inserted + counts.updated
        stored.append(result.symbol)
    return stored


def _ingest(report: RunReport, symbols: list[str], interval: str, days: int, session, source: str,
            asof: pd.Timestamp) -> None:
    cfg = get_config().ingest
    start = window_start(asof, days)
    stage = f"collect_{interval}"
    log.info("ingest window", interval=interval, start=start.isoformat(), asof=asof.isoformat(),
             symbols=len(symbols), source=source)
    yahoo.clear_request_cache()
    floor = window_start(asof, MAX_HOURLY_DAYS) if interval == "1h" else None
    stored = stored_series(interval, symbols, start, floor)
    with ThreadPoolExecutor(max_workers=cfg.max_concurrency, thread_name_prefix="mfs-fetch") as pool:
        for first in range(0, len(symbols), cfg.batch_size):
            batch = symbols[first:first + cfg.batch_size]
            futures = [pool.submit(contextvars.copy_context().run, _fetch_one, s, interval, start, asof, session,
                                   cfg.max_jump, stored.get(s), floor) for s in batch]
            to_write = []
            for symbol, future in zip(batch, futures):
                checked, fetched, error, seconds, note = future.result()
                if note:
                    report.extra.setdefault("notes", []).append(note)
                result = SymbolResult(symbol=symbol, stage=stage, fetched=fetched, duration_s=seconds)
                report.results.append(result)
                if checked is None:
                    result.status, result.reason = "failed", error
                    continue
                result.quarantined = len(checked.rejected)
                result.quarantine_reasons = checked.reasons
                if checked.rejected:
                    log.warning("bars quarantined", symbol=symbol, interval=interval, reasons=checked.reasons)
                to_write.append((result, checked))
            _write_batch(to_write, interval, source, report.run_id)


def store_bars(report: RunReport, frames: dict[str, pd.DataFrame], interval: str, source: str,
               asof: pd.Timestamp | None = None) -> None:
    """Validate and store bars that are already parsed (one frame per symbol, the columns of
    ``bars_frame``): the same validation, quarantine and write path as ``collect``, without
    fetching. Bars after ``asof`` (default: now) are quarantined as ``future``; a frame that
    cannot be validated (a column missing, naive timestamps) fails its symbol with the reason.
    Used by the benchmark and by sources other than Yahoo.

    Pipelined: the next batch is validated and encoded on a helper thread while the current
    batch's COPY runs (the server does that work; the client thread only waits on the socket)."""
    cfg = get_config().ingest
    asof = pd.Timestamp.now(tz="UTC") if asof is None else pd.Timestamp(asof)
    stage = f"collect_{interval}"
    items = list(frames.items())
    batches = [items[i:i + cfg.batch_size] for i in range(0, len(items), cfg.batch_size)]

    def check(batch: list[tuple[str, pd.DataFrame]]):
        results, checked_batch = [], []
        for symbol, bars in batch:
            began = time.monotonic()
            try:
                checked = validate_bars(bars, interval, max_jump=cfg.max_jump, asof=asof)
            except ValidationError as exc:
                results.append(SymbolResult(symbol=symbol, stage=stage, status="failed", fetched=len(bars),
                                            reason=f"{symbol}: {exc}", duration_s=time.monotonic() - began))
                continue
            results.append(SymbolResult(symbol=symbol, stage=stage, fetched=len(bars),
                                        quarantined=len(checked.rejected), quarantine_reasons=checked.reasons,
                                        duration_s=time.monotonic() - began))
            checked_batch.append((results[-1], checked))
        rows = None
        if checked_batch:
            try:
                rows = _batch_rows(checked_batch, interval, source)
            except MfsError:  # _write_batch encodes again and fails only the symbol at fault
                rows = None
        return results, checked_batch, rows

    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mfs-validate") as pool:
        pending = pool.submit(contextvars.copy_context().run, check, batches[0])
        for index in range(len(batches)):
            results, to_write, rows = pending.result()
            if index + 1 < len(batches):
                pending = pool.submit(contextvars.copy_context().run, check, batches[index + 1])
            report.results.extend(results)
            _write_batch(to_write, interval, source, report.run_id, rows)


def _symbols(symbols) -> list[str]:
    chosen = normalize_symbols(symbols) if symbols else list(get_config().symbols)
    return list(dict.fromkeys(chosen))


def collect(symbols: list[str] | None = None, interval: str | None = None, *, days: int | None = None,
            offline: bool = False, session=None, run_id: str | None = None,
            raise_on_failure: bool = True) -> RunReport:
    """Fetch the last ``days`` (config ``ingest.incremental_days``) of bars for ``symbols``
    (config ``symbols``) and upsert them: ``interval`` ("1h" or "1d"), or by default every
    configured interval (``intervals``), one after the other in one run. A symbol's fetch reaches
    further back when its stored bars stop before the window or Yahoo re-adjusted its history
    (``mfs.ingest.history``). Flow name "collect"."""
    cfg = get_config()
    if interval is not None and interval not in INTERVALS:
        raise ValidationError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    intervals = [interval] if interval else list(cfg.intervals)
    days = cfg.ingest.incremental_days if days is None else int(days)
    if days <= 0:
        raise ValidationError(f"days must be > 0, got {days}")
    if "1h" in intervals and days > MAX_HOURLY_DAYS:
        raise ValidationError(f"Yahoo serves hourly bars for the last {YAHOO_HOURLY_DAYS} days only; {days} days asked "
                              f"(use at most {MAX_HOURLY_DAYS}, or interval 1d for longer history)")
    chosen = _symbols(symbols)
    session, source, asof = _session_and_source(session, offline)
    params = {"symbols": chosen, "intervals": intervals, "days": days, "source": source, "asof": asof.isoformat()}
    with recorded_run(COLLECT, params, run_id=run_id, tolerance=cfg.runs.failed_symbol_tolerance,
                      raise_on_failure=raise_on_failure) as report:
        for each in intervals:
            _ingest(report, chosen, each, days, session, source, asof)
    return report


def backfill(symbols=None, *, days: int | None = None, offline=False, session=None, run_id=None,
             raise_on_failure=True) -> RunReport:
    """Load ``days`` (config ``ingest.backfill_days``) of history for every configured interval.
    Hourly history is capped at Yahoo's 730-day limit (with a warning and a note in the report).
    Flow name "backfill"."""
    cfg = get_config()
    days = cfg.ingest.backfill_days if days is None else int(days)
    if days <= 0:
        raise ValidationError(f"days must be > 0, got {days}")
    chosen = _symbols(symbols)
    session, source, asof = _session_and_source(session, offline)
    params = {"symbols": chosen, "intervals": list(cfg.intervals), "days": days, "source": source,
              "asof": asof.isoformat()}
    with recorded_run(BACKFILL, params, run_id=run_id, tolerance=cfg.runs.failed_symbol_tolerance,
                      raise_on_failure=raise_on_failure) as report:
        for interval in cfg.intervals:
            span = days
            if interval == "1h" and days > MAX_HOURLY_DAYS:
                span = MAX_HOURLY_DAYS
                note = (f"hourly history limited to the last {MAX_HOURLY_DAYS} days by Yahoo "
                        f"({YAHOO_HOURLY_DAYS}-day limit); {days} days asked, daily bars cover all of them")
                log.warning(note)
                report.extra.setdefault("notes", []).append(note)
            _ingest(report, chosen, interval, span, session, source, asof)
    return report
