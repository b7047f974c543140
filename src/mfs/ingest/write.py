"""The ingest write path: validated bars → quarantine + idempotent upsert into ``market_data``.

Each batch is written in one transaction (a reader never sees half a batch): the whole batch in
one upsert (one COPY); only if that fails is it written again symbol by symbol, each in a
savepoint, so one symbol's write error cannot take its neighbours down. Writes happen on the
calling thread only, so a run holds one database connection.

``store_bars`` is the entry for bars that are already parsed (the benchmark, sources other than
Yahoo): the validation, quarantine and write of ``collect``, without fetching.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import psycopg2
from psycopg2.extras import Json, execute_values

from mfs.calendar import bar_closes
from mfs.config import QualityConfig, get_config
from mfs.errors import MfsError, ValidationError
from mfs.ingest import anomalies
from mfs.ingest.delistings import record_listings
from mfs.ingest.quality import check_bars
from mfs.ingest.validate import Validated
from mfs.logs import get_logger
from mfs.runs import RunReport, SymbolResult
from mfs.storage.bulk import UpsertCounts, append_series
from mfs.storage.clock import set_write_context
from mfs.storage.connection import connection
from mfs.storage.copy_binary import Column, EncodedRows, encode_rows
from mfs.storage.progress import count_series_changes, set_accounted_write
from mfs.storage.types import Connection, Cursor

log = get_logger("mfs.ingest")
MARKET_DATA_COLUMNS = [
    Column("symbol", "text"),
    Column("interval", "text"),
    Column("ts", "timestamptz"),
    Column("open", "float8"),
    Column("high", "float8"),
    Column("low", "float8"),
    Column("close", "float8"),
    Column("adj_close", "float8"),
    Column("volume", "int8"),
    Column("source", "text"),
    Column("closes_at", "timestamptz"),
]
MARKET_DATA_KEY = ["symbol", "interval", "ts"]


def _quarantine_rows(cur: Cursor, symbol: str, interval: str, source: str, run_id: str, checked: Validated) -> None:
    # Rejected bars are few (usually none): a plain multi-row INSERT, not the COPY path.
    if not checked.rejected:
        return
    execute_values(
        cur,
        "INSERT INTO quarantine (source, symbol, interval, ts, raw, reason, run_id) VALUES %s",
        [
            (source, symbol, interval, r["ts"].to_pydatetime(), Json(r["raw"]), r["reason"], run_id)
            for r in checked.rejected
        ],
    )


def bar_arrays(
    symbol: str | np.ndarray, good: pd.DataFrame, interval: str, source: str, *, closes: bool = True
) -> dict[str, Any]:
    """``good`` bars as the column arrays of MARKET_DATA_COLUMNS (``symbol``: one, or one per bar);
    without ``closes_at`` when not ``closes`` (the caller computes it for many symbols at once)."""
    n = len(good)
    ts = pd.DatetimeIndex(good["ts"])
    arrays = {
        "symbol": np.array(np.broadcast_to(np.asarray(symbol, dtype=object), (n,))),
        "interval": np.full(n, interval, dtype=object),
        "ts": ts,
        "open": good["open"].to_numpy(float),
        "high": good["high"].to_numpy(float),
        "low": good["low"].to_numpy(float),
        "close": good["close"].to_numpy(float),
        "adj_close": good["adj_close"].to_numpy(float),
        "volume": good["volume"].to_numpy(np.int64),
        "source": np.full(n, source, dtype=object),
    }
    if closes:
        arrays["closes_at"] = bar_closes(interval, ts)
    return arrays


def _concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        k: (
            pd.DatetimeIndex(np.concatenate([p[k].asi8 for p in parts])).tz_localize("UTC")
            if k == "ts"
            else np.concatenate([p[k] for p in parts])
        )
        for k in parts[0]
    }


def _batch_rows(results: list[tuple[SymbolResult, Validated]], interval: str, source: str) -> EncodedRows:
    """The good bars of a batch as one set of columns with its COPY payload."""
    # closes_at once for the batch: the calendar lookup costs ~1 ms a call whatever its length
    # (one new bar for each of 200 symbols: 1.7 -> 1.1 ms per symbol validated and encoded).
    data = _concat([bar_arrays(r.symbol, c.good, interval, source, closes=False) for r, c in results])
    data["closes_at"] = bar_closes(interval, data["ts"])
    return encode_rows(MARKET_DATA_COLUMNS, data, key=MARKET_DATA_KEY)


def _upsert_bars(cur: Cursor, data: dict[str, object] | EncodedRows) -> UpsertCounts:
    return append_series(
        cur,
        "market_data",
        MARKET_DATA_COLUMNS,
        data,
        key=MARKET_DATA_KEY,
        series=("symbol", "interval"),
        touch={"ingested_at": "mfs_now()"},
        count_by="symbol",
    )


def write_batch(
    results: list[tuple[SymbolResult, Validated]],
    interval: str,
    source: str,
    run_id: str,
    rows: EncodedRows | None = None,
    readjusted: Mapping[str, str] | Sequence[str] = (),
    reexamine: Collection[str] | None = None,
    quality: QualityOutcome | None = None,
) -> list[str]:
    """One transaction for the batch. The whole batch is written by one upsert (one COPY) of
    ``rows`` (``_batch_rows``, built here when not given); only if that fails is it retried
    symbol by symbol, each in a savepoint, so one symbol's write error cannot take its
    neighbours down. Each symbol's ``duration_s`` gets an equal share of the write's seconds.
    The versions the upsert replaces are kept by the revision trigger, noted with ``run_id`` (and
    as a re-adjustment for the ``readjusted`` symbols, naming its cause where it is mapped to one).
    In the same transaction: the quality findings, held bars withdrawn or re-examined (``reexamine``:
    the symbols with held bars, None for all) and corporate actions (``mfs.ingest.anomalies``),
    added up in ``quality``. The stored symbols are upserted into ``symbols``
    (``mfs.ingest.delistings.record_listings``); returns its notes for the run (a delisted symbol
    listed again)."""
    if not results:
        return []
    began = time.monotonic()
    with connection() as conn, conn.cursor() as cur:
        stored: list[str] = []
        set_write_context(cur, run_id=run_id, readjusted=readjusted)
        set_accounted_write(cur)  # its changes are counted below, per series
        cur.execute("SAVEPOINT batch_write")
        try:
            counts = _upsert_bars(cur, rows if rows is not None else _batch_rows(results, interval, source))
            for result, checked in results:
                _quarantine_rows(cur, result.symbol, interval, source, run_id, checked)
                result.inserted, result.updated = (counts.by or {}).get(result.symbol, (0, 0))
                result.written = result.inserted + result.updated
                stored.append(result.symbol)
            withdrawn = _record_quality(cur, results, interval, source, run_id, reexamine, quality)
            cur.execute("RELEASE SAVEPOINT batch_write")
        except (psycopg2.Error, MfsError):
            if conn.closed:  # the server went away: the whole batch is lost, not one symbol
                raise
            cur.execute("ROLLBACK TO SAVEPOINT batch_write")
            stored = _write_one_by_one(conn, cur, results, interval, source, run_id)
            written = [(r, c) for r, c in results if r.symbol in set(stored)]
            withdrawn = _record_quality(cur, written, interval, source, run_id, reexamine, quality)
        share = (time.monotonic() - began) / len(results)
        for result, _checked in results:
            result.duration_s += share
        # Where each change may begin: its earliest bar sent (the upsert wrote only those that
        # differ). Validated bars are in time order.
        changed_from = {
            r.symbol: c.good["ts"].iloc[0].to_pydatetime() for r, c in results if r.written and r.symbol in stored
        }
        for symbol, ts in withdrawn.items():
            changed_from[symbol] = min(ts, changed_from.get(symbol, ts))
        count_series_changes(cur, interval, changed_from)
        if stored:
            # A few names: one statement (the COPY staging path costs two temp-table truncates).
            kept = set(stored)
            bars = {r.symbol: pd.DatetimeIndex(c.good["ts"]) for r, c in results if r.symbol in kept}
            return record_listings(cur, bars)
    return []


@dataclass
class QualityOutcome:
    """What a run's writes added to the quality record: anomalies new to the store, held bars
    resolved, corporate-action versions new to the store."""

    new: list[tuple] = field(default_factory=list)
    resolved: int = 0
    actions: int = 0


def _record_quality(
    cur: Cursor,
    results: list[tuple[SymbolResult, Validated]],
    interval: str,
    source: str,
    run_id: str,
    reexamine: Collection[str] | None,
    quality: QualityOutcome | None,
) -> dict[str, datetime]:
    """Findings, held bars and actions of the stored symbols; returns per symbol the earliest
    stored bar withdrawn (held back now)."""
    items = [(r.symbol, c) for r, c in results]
    withdrawn = anomalies.withdraw_held(cur, interval, items)
    new = anomalies.record_findings(cur, interval, run_id, items)
    resolved = anomalies.reexamine_held(cur, interval, items, reexamine)
    actions = anomalies.record_actions(cur, items, source, run_id)
    if quality is not None:
        quality.new += new
        quality.resolved += resolved
        quality.actions += len(actions)
    return withdrawn


def _write_one_by_one(
    conn: Connection,
    cur: Cursor,
    results: list[tuple[SymbolResult, Validated]],
    interval: str,
    source: str,
    run_id: str,
) -> list[str]:
    stored = []
    for result, checked in results:
        cur.execute("SAVEPOINT symbol_write")
        try:
            counts = _upsert_bars(cur, bar_arrays(result.symbol, checked.good, interval, source))
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


# Every symbol's result, the (result, bars) to write, and their encoded rows (None when encoding failed).
_ValidatedBatch: TypeAlias = tuple[list[SymbolResult], list[tuple[SymbolResult, Validated]], EncodedRows | None]


def _validate_batch(
    batch: list[tuple[str, pd.DataFrame]], interval: str, source: str, asof: pd.Timestamp, rules: QualityConfig
) -> _ValidatedBatch:
    """Validate and examine a batch of parsed frames: (every symbol's result, the (result, bars)
    to write, their encoded rows or None when encoding failed)."""
    stage = f"collect_{interval}"
    results, checked_batch = [], []
    for symbol, bars in batch:
        began = time.monotonic()
        try:
            checked = check_bars(bars, interval, rules, asof=asof)
        except ValidationError as exc:
            results.append(
                SymbolResult(
                    symbol=symbol,
                    stage=stage,
                    status="failed",
                    fetched=len(bars),
                    reason=f"{symbol}: {exc}",
                    duration_s=time.monotonic() - began,
                )
            )
            continue
        results.append(
            SymbolResult(
                symbol=symbol,
                stage=stage,
                fetched=len(bars),
                quarantined=len(checked.rejected),
                quarantine_reasons=checked.reasons,
                duration_s=time.monotonic() - began,
            )
        )
        checked_batch.append((results[-1], checked))
    rows = None
    if checked_batch:
        try:
            rows = _batch_rows(checked_batch, interval, source)
        except MfsError:  # write_batch encodes again and fails only the symbol at fault
            rows = None
    return results, checked_batch, rows


# A batch's transaction costs ~9 statements whatever it holds, and each of them waits for the
# helper thread to let go of the GIL. Measured on one new bar for each of 2,000 symbols, batches of
# 25 symbols spent ~19 ms per batch in the first statement alone.
BATCH_MIN_BARS = 5_000
BATCH_MAX_SYMBOLS = 500


def _batches(items: list[tuple[str, pd.DataFrame]], batch_size: int) -> list[list[tuple[str, pd.DataFrame]]]:
    """``items`` in batches of ``batch_size`` symbols or more: a batch grows until it holds
    BATCH_MIN_BARS bars or BATCH_MAX_SYMBOLS symbols. History (hundreds of bars per symbol) keeps
    ``batch_size``; one new hour (a bar per symbol) goes in batches of BATCH_MAX_SYMBOLS."""
    batches: list[list[tuple[str, pd.DataFrame]]] = []
    batch: list[tuple[str, pd.DataFrame]] = []
    bars = 0
    for item in items:
        batch.append(item)
        bars += len(item[1])
        if len(batch) >= BATCH_MAX_SYMBOLS or (len(batch) >= batch_size and bars >= BATCH_MIN_BARS):
            batches.append(batch)
            batch, bars = [], 0
    if batch:
        batches.append(batch)
    return batches


def store_bars(
    report: RunReport,
    frames: dict[str, pd.DataFrame],
    interval: str,
    source: str,
    asof: pd.Timestamp | None = None,
    rules: QualityConfig | None = None,
) -> None:
    """Validate and store bars that are already parsed (one frame per symbol, the columns of
    ``mfs.ingest.run.bars_frame``): the same validation, quarantine and write path as
    ``collect``, without fetching. Bars after ``asof`` (default: now) are quarantined as
    ``future``; a frame that cannot be validated (a column missing, naive timestamps) fails its
    symbol with the reason. The quality checks are ``rules`` (default: config ``quality``).
    Used by the benchmark and by sources other than Yahoo.

    Pipelined: the next batch is validated and encoded on a helper thread while the current
    batch's COPY runs (the server does that work; the client thread only waits on the socket)."""
    asof = pd.Timestamp.now(tz="UTC") if asof is None else pd.Timestamp(asof)
    rules = get_config().quality if rules is None else rules
    batches = _batches(list(frames.items()), get_config().ingest.batch_size)
    if not batches:
        return
    quality = QualityOutcome()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mfs-validate") as pool:

        def validate_next(index: int) -> Future[_ValidatedBatch]:
            return pool.submit(
                contextvars.copy_context().run, _validate_batch, batches[index], interval, source, asof, rules
            )

        pending = validate_next(0)
        for index in range(len(batches)):
            results, to_write, rows = pending.result()
            if index + 1 < len(batches):
                pending = validate_next(index + 1)
            report.results.extend(results)
            report.notes.extend(write_batch(to_write, interval, source, report.run_id, rows, quality=quality))
    anomalies.summarize(report, quality.new, quality.resolved, quality.actions)
