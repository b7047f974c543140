"""The features run's worker pool: every batch of symbols to a pebble worker (worker.py), every
way a worker can fail turned into that symbol's recorded reason, every outcome into the report.
Imported only by a run that has something to compute: pebble, the worker module and the feature
maths they load (numpy, pandas, TA-Lib) are none of a run with nothing to do.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import NamedTuple

from pebble import CONSTS, ProcessExpired, ProcessFuture, ProcessPool

from mfs.config import get_config
from mfs.errors import first_line
from mfs.features import worker
from mfs.features.batch import SymbolCounts
from mfs.features.definitions import definitions_path
from mfs.features.model import FeatureSet
from mfs.logs import bind_context, get_logger
from mfs.runs import BatchTiming, RunReport, SymbolResult
from mfs.storage.clock import pinned_clock
from mfs.storage.connection import connection, database_url

log = get_logger("mfs.features")

# pebble's pool threads poll at CONSTS.sleep_unit (0.1 s): a run waited ~0.1 s for its own pool to
# see the last result and shut down. At 10 ms, 20 symbols take 0.24 s instead of 0.33 s (measured,
# alternated); three threads waking 100 times a second during a run cost nothing measurable.
CONSTS.sleep_unit = 0.01


def failure_reason(exc: BaseException, timeout_s: float) -> str:
    """One line saying how a symbol's worker failed."""
    if isinstance(exc, FutureTimeoutError):
        return f"timed out after {timeout_s:g} s"
    if isinstance(exc, ProcessExpired):
        code = exc.exitcode
        if code is not None and code < 0:
            try:
                return f"worker killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"worker killed by signal {-code}"
        return f"worker exited with code {code}"
    text = first_line(exc, "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Job(NamedTuple):
    """One interval's symbols through the workers: the incremental update (``fill`` empty) or the
    fill of the columns ``fill`` over the whole history."""

    stage: str
    interval: str
    symbols: list[str]
    fill: tuple[str, ...] = ()


def compute_stored(
    report: RunReport, jobs: list[Job], features: FeatureSet, full: bool, fault_map: dict[str, str], lookback: int
) -> set[int]:
    """Every job through one pool (its warm workers and their connections serve every interval),
    each bar read with ``lookback`` bars before it; returns the worker pids."""
    fc = get_config().features
    pids: set[int] = set()
    pool = ProcessPool(
        max_workers=min(fc.workers, max(len(j.symbols) for j in jobs)),
        max_tasks=fc.max_tasks_per_worker,
        initializer=worker.initialize,
        initargs=(fc.worker_memory_mb,),
        context=worker.context(),
    )
    finished = False
    try:
        for job in jobs:
            pids |= _compute_job(pool, report, job, (features, full, fault_map, lookback))
        finished = True
    finally:  # interrupted (Ctrl-C, flow timeout): do not wait for the scheduled batches
        pool.close() if finished else pool.stop()
        pool.join()
    return pids


# Bars one batch that reads whole histories (a backfill, a column fill) holds at most: a worker
# holds ~2 KB per bar read (bars, every feature, TA-Lib's outputs, the COPY buffer), and batches of
# 100 symbols × 3,485 bars (730 days) peaked at 1.85 GB for the product with two workers, measured.
BATCH_BARS = 100_000


def batches_by_rows(symbols: list[str], size: int, bars: dict[str, int], limit: int = BATCH_BARS) -> list[list[str]]:
    """``symbols`` in order, in batches of at most ``size`` symbols and ``limit`` bars (``bars``:
    per symbol; a symbol with more bars than that is a batch of its own)."""
    batches: list[list[str]] = []
    current: list[str] = []
    rows = 0
    for symbol in symbols:
        n = bars.get(symbol, 0)
        if current and (len(current) >= size or rows + n > limit):
            batches.append(current)
            current, rows = [], 0
        current.append(symbol)
        rows += n
    return [*batches, current] if current else batches


def _bar_counts(symbols: list[str], interval: str) -> dict[str, int]:
    with connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT symbol, count(*) FROM market_data WHERE symbol = ANY(%s) AND interval = %s GROUP BY symbol",
            (symbols, interval),
        )
        return {symbol: int(n) for symbol, n in cur.fetchall()}


def batch_size(n_symbols: int) -> int:
    fc = get_config().features
    return max(1, min(fc.batch_size, -(-n_symbols // min(fc.workers, n_symbols))))  # every worker gets work


def _compute_job(
    pool: ProcessPool, report: RunReport, job: Job, run: tuple[FeatureSet, bool, dict[str, str], int]
) -> set[int]:
    """One job of a run (``run``: its features, full, faults and look-back): every symbol through
    ``pool``, its outcome appended to ``report``; returns the worker pids."""
    features, full, fault_map, lookback = run
    fc = get_config().features
    url = database_url()
    symbols = job.symbols
    size = batch_size(len(symbols))

    def schedule(batch: list[str]) -> tuple[list[str], ProcessFuture]:
        task = worker.BatchTask(
            tuple(batch),
            job.interval,
            full,
            lookback,
            url,
            definitions=features.source,
            definitions_source=str(definitions_path()),
            fill=job.fill,
            faults=tuple((s, fault_map[s]) for s in batch if s in fault_map),
            run_id=report.run_id,
            clock=pinned_clock(),
            keep_revisions=get_config().database.keep_revisions,
        )
        return batch, pool.schedule(worker.run_batch, args=(task,), timeout=fc.timeout_s)

    if full or job.fill:  # whole histories: batches sized by bars, so memory does not follow the depth
        batches = batches_by_rows(symbols, size, _bar_counts(symbols, job.interval))
    else:  # an incremental batch reads a look-back per symbol: a few hundred bars each
        batches = [symbols[i : i + size] for i in range(0, len(symbols), size)]
    finished, failures = _run_batches(schedule, batches)
    _record_outcomes(report, symbols, job, finished, failures)
    return {result.pid for result in finished}


def _run_batches(
    schedule: Callable[[list[str]], tuple[list[str], ProcessFuture]], batches: list[list[str]]
) -> tuple[list[worker.BatchResult], dict[str, str]]:
    """Every batch through its worker; a batch whose worker died or ran out of time is rerun one
    symbol per task, one the server aborted as a deadlock or serialization failure is rerun as it
    was (PostgreSQL's advice for those: nothing was written, try again). Returns the finished
    batches and, per symbol that could not finish, why."""
    timeout_s = get_config().features.timeout_s
    finished: list[worker.BatchResult] = []
    failures: dict[str, str] = {}
    singles = []
    for batch, future in [schedule(b) for b in batches]:
        try:
            finished.append(_result_retrying_transient(schedule, batch, future))
        except Exception as exc:  # the worker died or the batch ran out of time
            if len(batch) == 1:
                failures[batch[0]] = failure_reason(exc, timeout_s)
                continue
            log.warning(
                "batch failed; retrying its symbols one by one", symbols=batch, reason=failure_reason(exc, timeout_s)
            )
            singles += [schedule([s]) for s in batch]
    for (symbol,), future in singles:
        try:
            finished.append(_result_retrying_transient(schedule, [symbol], future))
        except Exception as exc:
            failures[symbol] = failure_reason(exc, timeout_s)
    return finished, failures


# SQLSTATEs of a transaction the server aborted only because of another one running at the same
# time (a first run's 1h and 1d batches create the same chunks of `features` concurrently).
TRANSIENT_SQLSTATES = {"40P01": "DeadlockDetected", "40001": "SerializationFailure"}


def _result_retrying_transient(
    schedule: Callable[[list[str]], tuple[list[str], ProcessFuture]], batch: list[str], future: ProcessFuture
) -> worker.BatchResult:
    for attempt in range(3):
        try:
            return future.result()
        except Exception as exc:
            code = getattr(exc, "pgcode", None)
            if attempt == 2 or not (code in TRANSIENT_SQLSTATES or type(exc).__name__ in TRANSIENT_SQLSTATES.values()):
                raise
            log.warning("batch aborted by the server; running it again", symbols=batch, reason=type(exc).__name__)
            _, future = schedule(batch)
    raise AssertionError("unreachable")


def _record_outcomes(
    report: RunReport, symbols: list[str], job: Job, finished: list[worker.BatchResult], failures: dict[str, str]
) -> None:
    """One SymbolResult per symbol, in the run's order. A batch is timed as a whole (its
    BatchTiming); each of its symbols' ``duration_s`` is an equal share of it."""
    stage, interval = job.stage, job.interval
    outcomes: dict[str, SymbolCounts | str] = dict(failures)
    share: dict[str, float] = {}
    for result in finished:
        outcomes.update(result.outcomes)
        share.update(dict.fromkeys(result.outcomes, result.seconds / max(len(result.outcomes), 1)))
        report.batches.append(BatchTiming(stage, tuple(result.outcomes), result.seconds))
    for symbol in symbols:
        counts = outcomes[symbol]
        if isinstance(counts, str):
            with bind_context(symbol=symbol, interval=interval):
                log.error("features failed", reason=counts)
            report.results.append(
                SymbolResult(symbol, stage, "failed", reason=counts, duration_s=round(share.get(symbol, 0.0), 4))
            )
        else:
            report.results.append(
                SymbolResult(
                    symbol,
                    stage,
                    "ok",
                    fetched=counts.bars_read,
                    inserted=counts.inserted,
                    updated=counts.updated,
                    written=counts.inserted + counts.updated,
                    duration_s=round(share[symbol], 4),
                )
            )
    # The earliest bar the job wrote from (None: a symbol wrote without saying where it began): the
    # run's statistics read only rows from there on instead of every row of its symbols.
    wrote = [c for c in outcomes.values() if not isinstance(c, str) and c.inserted + c.updated]
    if wrote:
        starts = [c.start for c in wrote]
        report.extra.setdefault("written_from", {})[stage] = None if None in starts else min(filter(None, starts))
