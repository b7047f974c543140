"""The features run: schedule one task per symbol on isolated workers and record the outcome.

The orchestrating process does no maths and no feature I/O: it validates the parameters, hands
each symbol to a pebble worker (worker.py), turns every way a worker can fail into a recorded
per-symbol reason, and writes ``pipeline_runs`` / ``symbol_runs`` through ``mfs.runs``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import NamedTuple

from pebble import CONSTS, ProcessExpired, ProcessFuture, ProcessPool

from mfs.config import get_config
from mfs.errors import ConfigError
from mfs.features import registry, spec, worker
from mfs.features.batch import SymbolCounts
from mfs.features.definitions import definitions_path
from mfs.features.spec import FEATURE_VERSION, FeatureSet
from mfs.flow_names import FEATURES
from mfs.logs import bind_context, get_logger
from mfs.market import INTERVALS
from mfs.runs import BatchTiming, RunReport, SymbolResult, recorded_run
from mfs.storage import progress
from mfs.storage.clock import pinned_clock
from mfs.storage.connection import connection, database_url
from mfs.symbols import normalize_symbol, normalize_symbols

FAULTS_ENV = "MFS_FEATURE_FAULTS"
log = get_logger("mfs.features")

# pebble's pool threads poll at CONSTS.sleep_unit (0.1 s): a run waited ~0.1 s for its own pool to
# see the last result and shut down. At 10 ms, 20 symbols take 0.24 s instead of 0.33 s (measured,
# alternated); three threads waking 100 times a second during a run cost nothing measurable.
CONSTS.sleep_unit = 0.01


def resolve_faults(faults: dict[str, str] | None) -> dict[str, str]:
    """Faults from MFS_FEATURE_FAULTS (JSON object) overlaid by ``faults``; validated."""
    merged: dict[str, str] = {}
    raw = os.environ.get(FAULTS_ENV, "").strip()
    if raw:
        try:
            env_faults = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{FAULTS_ENV}={raw!r}: not valid JSON ({exc})") from None
        if not isinstance(env_faults, dict):
            raise ConfigError(f"{FAULTS_ENV}={raw!r}: expected a JSON object symbol -> fault kind")
        merged.update(env_faults)
    merged.update(faults or {})
    out = {}
    for symbol, kind in merged.items():
        if kind not in worker.FAULT_KINDS:
            raise ConfigError(f"fault for {symbol!r} = {kind!r}: expected one of {', '.join(worker.FAULT_KINDS)}")
        out[normalize_symbol(symbol, key="faults")] = kind
    return out


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
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def compute(
    symbols: list[str] | None = None,
    interval: str | None = None,
    *,
    full: bool = False,
    run_id: str | None = None,
    raise_on_failure: bool = True,
    faults: dict[str, str] | None = None,
) -> RunReport:
    """Update the features of ``symbols`` (default: the configured list) for ``interval``, or by
    default for every configured interval (``intervals``), one after the other in one run.

    Incremental by default (only stale bars, see batch.py); ``full=True`` recomputes every row.
    Symbols are computed in worker processes, in batches of ``features.batch_size`` (one
    transaction each); a batch whose worker dies or runs past ``features.timeout_s`` is rerun one
    symbol per task, so a crash, kill, hang or MemoryError fails that symbol alone. Returns the
    RunReport (flow "features", stage ``features_<interval>``, ``written`` = feature rows inserted
    or changed); failed symbols beyond ``runs.failed_symbol_tolerance`` raise RunFailedError
    unless ``raise_on_failure=False``. ``faults`` (tests only) maps symbol -> one of
    worker.FAULT_KINDS.
    """
    cfg = get_config()
    if interval is not None and interval not in INTERVALS:
        raise ConfigError(f"interval = {interval!r}: expected one of {', '.join(INTERVALS)}")
    intervals = [interval] if interval else list(cfg.intervals)
    symbols = normalize_symbols(symbols if symbols else cfg.symbols)
    fault_map = resolve_faults(faults)
    # The definitions as the file says now: a mistake in it stops here, before anything changes.
    features = spec.load()
    params = {
        "symbols": symbols,
        "intervals": intervals,
        "full": full,
        "feature_version": FEATURE_VERSION,
        "lookback_bars": lookback_bars(features),
    }
    if fault_map:
        params["faults"] = fault_map
    changes = registry.sync(features)
    with recorded_run(
        FEATURES, params, run_id=run_id, tolerance=cfg.runs.failed_symbol_tolerance, raise_on_failure=raise_on_failure
    ) as report:
        started = time.perf_counter()
        with_bars = _symbols_with_bars(symbols, intervals)
        pending = registry.unfilled(features)
        # Decided before any worker starts: a symbol without bars, or whose bars and feature rows
        # did not change since its features were brought up to date, has nothing to compute.
        todo = with_bars if full else _series_to_update(with_bars)
        jobs = [Job(f"features_{i}", i, todo[i]) for i in intervals if todo[i]]
        if pending:  # every stored symbol, not only the run's: the column is the whole store's
            jobs += _fill_jobs(tuple(name for name, _ in pending), with_bars if full else {})
        pids = _compute_stored(report, jobs, features, full, fault_map) if jobs else set()
        _report_missing(report, symbols, intervals, with_bars)
        _report_current(report, with_bars, todo)
        filled = _filled(report, pending, full)
        report.extra.update(
            intervals=intervals,
            full=full,
            feature_version=FEATURE_VERSION,
            batch_size=_batch_size(len(symbols)),
            worker_pids=sorted(pids),
            seconds=round(time.perf_counter() - started, 3),
            registry={
                "added": changes.added,
                "changed": changes.changed,
                "retired": changes.retired,
                "restored": changes.restored,
                "filled": [name for name, _ in filled],
            },
        )
    return report


def lookback_bars(features: FeatureSet) -> int:
    """Bars read before the first new one: features.lookback_bars, or more when a definition's
    measured memory needs it (KAMA(30): 640)."""
    return max(get_config().features.lookback_bars, features.memory)


class Job(NamedTuple):
    """One interval's symbols through the workers: the incremental update (``fill`` empty) or the
    fill of the columns ``fill`` over the whole history."""

    stage: str
    interval: str
    symbols: list[str]
    fill: tuple[str, ...] = ()


def _fill_jobs(fill: tuple[str, ...], recomputed: dict[str, list[str]]) -> list[Job]:
    """Per interval, every symbol with feature rows (a column is filled for the whole store) but
    those this run recomputes in full anyway (``recomputed``)."""
    with connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT s.interval, s.symbol FROM stored_series s WHERE EXISTS "
            "(SELECT 1 FROM features f WHERE f.symbol = s.symbol AND f.interval = s.interval) ORDER BY 1, 2"
        )
        stored: dict[str, list[str]] = {}
        for interval, symbol in cur.fetchall():
            if symbol not in recomputed.get(interval, ()):
                stored.setdefault(interval, []).append(symbol)
    return [Job(f"fill_{i}", i, symbols, fill) for i, symbols in sorted(stored.items())]


def _filled(report: RunReport, pending: list[tuple[str, str]], full: bool) -> list[tuple[str, str]]:
    """Mark the pending versions filled when no symbol's fill (or full recompute) failed."""
    failed = [r for r in report.results if r.status == "failed" and (full or r.stage.startswith("fill_"))]
    if not pending or failed:
        return []
    registry.mark_filled(pending)
    return pending


def _symbols_with_bars(symbols: list[str], intervals: Sequence[str]) -> dict[str, list[str]]:
    """Per interval, the symbols (in their order) that have at least one stored bar of it: one
    index probe per pair (compressed chunks are segmented by symbol and interval)."""
    with connection() as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT i, s FROM unnest(%s::text[]) AS i CROSS JOIN unnest(%s::text[]) AS s
               WHERE EXISTS (SELECT 1 FROM market_data m WHERE m.symbol = s AND m.interval = i)""",
            (intervals, symbols),
        )
        present = {(i, s) for i, s in cur.fetchall()}
    return {i: [s for s in symbols if (i, s) in present] for i in intervals}


def _series_to_update(with_bars: dict[str, list[str]]) -> dict[str, list[str]]:
    """Per interval, those of its symbols that may have something to recompute (sql/071)."""
    with connection() as conn, conn.cursor() as cur:
        return {i: progress.series_to_update(cur, s, i, FEATURE_VERSION) if s else [] for i, s in with_bars.items()}


def _report_current(report: RunReport, with_bars: dict[str, list[str]], todo: dict[str, list[str]]) -> None:
    """The symbols with bars that had nothing to recompute: ok, nothing written."""
    for interval, symbols in with_bars.items():
        sent = set(todo[interval])
        report.results += [SymbolResult(s, f"features_{interval}", "ok") for s in symbols if s not in sent]


def _compute_stored(
    report: RunReport, jobs: list[Job], features: FeatureSet, full: bool, fault_map: dict[str, str]
) -> set[int]:
    """Every job through one pool (its warm workers and their connections serve every interval);
    returns the worker pids."""
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
            pids |= _compute_job(pool, report, job, features, full, fault_map)
        finished = True
    finally:  # interrupted (Ctrl-C, flow timeout): do not wait for the scheduled batches
        pool.close() if finished else pool.stop()
        pool.join()
    return pids


def _report_missing(
    report: RunReport, symbols: list[str], intervals: Sequence[str], with_bars: dict[str, list[str]]
) -> None:
    """A symbol with no stored bar at all is not in the store (a typo, or never collected): failed,
    never ok. One with bars of another interval only is skipped for this one, with the reason."""
    anywhere = {s for present in with_bars.values() for s in present}
    for each in intervals:
        for symbol in symbols:
            if symbol in with_bars[each]:
                continue
            if symbol not in anywhere:
                reason = (
                    "no bars stored for this symbol: it is not in the store (collect it first, or check the ticker)"
                )
                report.results.append(SymbolResult(symbol, f"features_{each}", "failed", reason=reason))
            else:
                report.results.append(
                    SymbolResult(symbol, f"features_{each}", "skipped", reason=f"no {each} bars stored")
                )


def _batch_size(n_symbols: int) -> int:
    fc = get_config().features
    return max(1, min(fc.batch_size, -(-n_symbols // min(fc.workers, n_symbols))))  # every worker gets work


def _compute_job(
    pool: ProcessPool, report: RunReport, job: Job, features: FeatureSet, full: bool, fault_map: dict[str, str]
) -> set[int]:
    """One job of a run: every symbol through ``pool``, its outcome appended to ``report``;
    returns the worker pids."""
    fc = get_config().features
    url = database_url()
    symbols = job.symbols
    size = _batch_size(len(symbols))

    def schedule(batch: list[str]) -> tuple[list[str], ProcessFuture]:
        task = worker.BatchTask(
            tuple(batch),
            job.interval,
            full,
            lookback_bars(features),
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

    finished, failures = _run_batches(schedule, [symbols[i : i + size] for i in range(0, len(symbols), size)])
    _record_outcomes(report, symbols, job, finished, failures)
    return {result.pid for result in finished}


def _run_batches(
    schedule: Callable[[list[str]], tuple[list[str], ProcessFuture]], batches: list[list[str]]
) -> tuple[list[worker.BatchResult], dict[str, str]]:
    """Every batch through its worker; a batch whose worker died or ran out of time is rerun one
    symbol per task. Returns the finished batches and, per symbol that could not finish, why."""
    timeout_s = get_config().features.timeout_s
    finished: list[worker.BatchResult] = []
    failures: dict[str, str] = {}
    singles = []
    for batch, future in [schedule(b) for b in batches]:
        try:
            finished.append(future.result())
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
            finished.append(future.result())
        except Exception as exc:
            failures[symbol] = failure_reason(exc, timeout_s)
    return finished, failures


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
