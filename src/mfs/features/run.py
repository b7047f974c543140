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

from pebble import CONSTS, ProcessExpired, ProcessFuture, ProcessPool

from mfs.config import get_config
from mfs.errors import ConfigError
from mfs.features import worker
from mfs.features.batch import SymbolCounts
from mfs.features.spec import FEATURE_NAMES, FEATURE_VERSION
from mfs.flow_names import FEATURES
from mfs.logs import bind_context, get_logger
from mfs.market import INTERVALS
from mfs.runs import BatchTiming, RunReport, SymbolResult, recorded_run
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
    fc = cfg.features
    params = {
        "symbols": symbols,
        "intervals": intervals,
        "full": full,
        "feature_version": FEATURE_VERSION,
        "lookback_bars": fc.lookback_bars,
    }
    if fault_map:
        params["faults"] = fault_map
    _check_columns()
    with recorded_run(
        FEATURES, params, run_id=run_id, tolerance=cfg.runs.failed_symbol_tolerance, raise_on_failure=raise_on_failure
    ) as report:
        started = time.perf_counter()
        with_bars = _symbols_with_bars(symbols, intervals)
        # Decided before any worker starts: a symbol without bars has nothing to compute.
        pids = _compute_stored(report, with_bars, intervals, full, fault_map) if any(with_bars.values()) else set()
        _report_missing(report, symbols, intervals, with_bars)
        report.extra.update(
            intervals=intervals,
            full=full,
            feature_version=FEATURE_VERSION,
            batch_size=_batch_size(len(symbols)),
            worker_pids=sorted(pids),
            seconds=round(time.perf_counter() - started, 3),
        )
    return report


def _check_columns() -> None:
    """Every defined feature has its column. Adding one to config/features.yaml does not yet add
    the column (that needs the feature registry): refuse with the names, before anything runs."""
    with connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT f FROM unnest(%s::text[]) AS f WHERE NOT EXISTS (SELECT 1 FROM information_schema.columns c"
            " WHERE c.table_schema = current_schema() AND c.table_name = 'features' AND c.column_name = f)",
            (FEATURE_NAMES,),
        )
        missing = [r[0] for r in cur.fetchall()]
    if missing:
        raise ConfigError(
            f"feature(s) {', '.join(missing)} in config/features.yaml have no column in the store: adding "
            "features to an existing store is not supported yet; remove them from the file"
        )


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


def _compute_stored(
    report: RunReport, with_bars: dict[str, list[str]], intervals: Sequence[str], full: bool, fault_map: dict[str, str]
) -> set[int]:
    """Every interval's symbols with bars through one pool (its warm workers and their
    connections serve every interval); returns the worker pids."""
    fc = get_config().features
    pids: set[int] = set()
    pool = ProcessPool(
        max_workers=min(fc.workers, max(len(s) for s in with_bars.values())),
        max_tasks=fc.max_tasks_per_worker,
        initializer=worker.initialize,
        initargs=(fc.worker_memory_mb,),
        context=worker.context(),
    )
    finished = False
    try:
        for each in intervals:
            if with_bars[each]:
                pids |= _compute_interval(pool, report, with_bars[each], each, full, fault_map)
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


def _compute_interval(
    pool: ProcessPool, report: RunReport, symbols: list[str], interval: str, full: bool, fault_map: dict[str, str]
) -> set[int]:
    """One interval of a run: every symbol through ``pool``, its outcome appended to ``report``;
    returns the worker pids."""
    fc = get_config().features
    url = database_url()
    size = _batch_size(len(symbols))

    def schedule(batch: list[str]) -> tuple[list[str], ProcessFuture]:
        task = worker.BatchTask(
            tuple(batch),
            interval,
            full,
            fc.lookback_bars,
            url,
            tuple((s, fault_map[s]) for s in batch if s in fault_map),
            run_id=report.run_id,
            clock=pinned_clock(),
            keep_revisions=get_config().database.keep_revisions,
        )
        return batch, pool.schedule(worker.run_batch, args=(task,), timeout=fc.timeout_s)

    finished, failures = _run_batches(schedule, [symbols[i : i + size] for i in range(0, len(symbols), size)])
    _record_outcomes(report, symbols, interval, finished, failures)
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
    report: RunReport, symbols: list[str], interval: str, finished: list[worker.BatchResult], failures: dict[str, str]
) -> None:
    """One SymbolResult per symbol, in the run's order. A batch is timed as a whole (its
    BatchTiming); each of its symbols' ``duration_s`` is an equal share of it."""
    stage = f"features_{interval}"
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
