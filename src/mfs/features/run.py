"""The features run: decide what is to be computed, hand it to the worker pool (pool.py) and
record the outcome.

The orchestrating process does no maths and no feature I/O: it validates the parameters, keeps
the feature registry in line with the definitions file, decides which series have something to
compute (``mfs.storage.progress``), and writes ``pipeline_runs`` / ``symbol_runs`` through
``mfs.runs``. A run with nothing to do — the definitions file as the registry last synced it, no
column unfilled, no series changed — decides so from three small tables and imports neither the
definitions (TA-Lib, pandas) nor the pool.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mfs import paths
from mfs.config import get_config
from mfs.errors import ConfigError
from mfs.features.monitoring.observe import Probe, after_run
from mfs.features.monitoring.observe import probe as monitoring_probe
from mfs.features.version import FEATURE_VERSION
from mfs.flow_names import FEATURES
from mfs.logs import get_logger
from mfs.market import check_interval, normalize_symbol, normalize_symbols
from mfs.runs import RunReport, SymbolResult, recorded_run
from mfs.storage import progress
from mfs.storage.connection import connection

if TYPE_CHECKING:
    from mfs.features.model import FeatureSet
    from mfs.features.pool import Job

FAULTS_ENV = "MFS_FEATURE_FAULTS"
log = get_logger("mfs.features")


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
    if not merged:
        return {}
    # deferred: the worker module loads pandas and the engine, ~340 ms (python -X importtime); only fault drills get
    # here
    from mfs.features.worker import FAULT_KINDS

    out = {}
    for symbol, kind in merged.items():
        if kind not in FAULT_KINDS:
            raise ConfigError(f"fault for {symbol!r} = {kind!r}: expected one of {', '.join(FAULT_KINDS)}")
        out[normalize_symbol(symbol, key="faults")] = kind
    return out


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
    intervals: list[str] = [check_interval(interval)] if interval is not None else list(cfg.intervals)
    symbols = normalize_symbols(symbols if symbols else cfg.symbols)
    fault_map = resolve_faults(faults)
    # The definitions as the file says now (a mistake in it stops here, before anything changes) —
    # unless the file is what the registry last synced and no column awaits its fill.
    memory = None if full or fault_map else _synced_memory()
    features = _load_definitions() if memory is None else None
    params = {
        "symbols": symbols,
        "intervals": intervals,
        "full": full,
        "feature_version": FEATURE_VERSION,
        "lookback_bars": lookback_bars(features.memory if features else memory or 0),
    }
    if fault_map:
        params["faults"] = fault_map
    changes = _sync(features)
    with recorded_run(
        FEATURES, params, run_id=run_id, tolerance=cfg.runs.failed_symbol_tolerance, raise_on_failure=raise_on_failure
    ) as report:
        started = time.perf_counter()
        # probe.since: the store's clock now — the rows this run writes are those computed from then on
        with_bars, probe = _symbols_with_bars(symbols, intervals)
        # Decided before any worker starts: a symbol without bars, or whose bars and feature rows
        # did not change since its features were brought up to date, has nothing to compute.
        todo = with_bars if full else _series_to_update(with_bars)
        if features is None and any(todo.values()):
            features = _load_definitions()
            changes = _sync(features)  # a no-op, unless the file changed since it was checked
        pending = _unfilled(features)
        pids = _compute(report, features, _jobs(todo, pending, with_bars, full), full, fault_map, params)
        _report_missing(report, symbols, intervals, with_bars)
        _report_current(report, with_bars, todo)
        filled = _filled(report, pending, full)
        report.extra.update(
            intervals=intervals,
            full=full,
            feature_version=FEATURE_VERSION,
            worker_pids=sorted(pids),
            seconds=round(time.perf_counter() - started, 3),
            registry={**changes, "filled": [name for name, _ in filled]},
        )
        _monitor(report, features, probe, symbols, intervals)
    return report


def _monitor(
    report: RunReport, features: FeatureSet | None, probe: Probe, symbols: list[str], intervals: list[str]
) -> None:
    """Statistics of the rows written and, once per closed session, the drift check
    (``mfs.features.monitoring``), timed apart from the run's own seconds."""
    started = time.perf_counter()
    after_run(report, features, probe, symbols, intervals)
    report.extra["monitoring"]["seconds"] = round(time.perf_counter() - started, 3)


def _synced_memory() -> int | None:
    """The definitions' measured memory (bars) when the file is the one the registry last synced,
    its columns are as then and none awaits its fill; else None (the file must be read)."""
    try:
        source = paths.features_path().read_text()
    except OSError:
        return None  # reading it again says what is wrong, in one line
    with connection() as conn, conn.cursor() as cur:
        return progress.synced_memory(cur, source)


def _load_definitions() -> FeatureSet:
    # deferred: TA-Lib, pandas and the definitions are ~530 ms (python -X importtime) of a no-op `mfs features`, which
    # never reads them
    from mfs.features import definitions

    return definitions.load()


def _sync(features: FeatureSet | None) -> dict[str, list[str]]:
    """The registry brought in line with ``features`` (nothing to do when they were not read)."""
    if features is None:
        return {"added": [], "changed": [], "retired": [], "restored": []}
    # deferred: the registry and its model, ~7 ms (-X importtime, 2026-12-08) that a no-op run, which
    # reads no definitions, does not pay
    from mfs.features import registry

    changes = registry.sync(features)
    return {
        "added": changes.added,
        "changed": changes.changed,
        "retired": changes.retired,
        "restored": changes.restored,
    }


def _unfilled(features: FeatureSet | None) -> list[tuple[str, str]]:
    """The versions awaiting their fill (none when the definitions were not read: the check that
    let the run skip them found none)."""
    if features is None:
        return []
    from mfs.features import registry  # deferred, as in _sync

    return registry.unfilled(features)


def _jobs(
    todo: dict[str, list[str]], pending: list[tuple[str, str]], with_bars: dict[str, list[str]], full: bool
) -> list[Job]:
    """The incremental (or full) update of ``todo``, then the fill of every ``pending`` column."""
    if not any(todo.values()) and not pending:
        return []
    # deferred: the pool loads the worker (pandas, engine), ~340 ms (python -X importtime): a no-op run starts none
    from mfs.features.pool import Job

    jobs = [Job(f"features_{i}", i, symbols) for i, symbols in todo.items() if symbols]
    if pending:  # every stored symbol, not only the run's: the column is the whole store's
        jobs += _fill_jobs(tuple(name for name, _ in pending), with_bars if full else {})
    return jobs


def _compute(
    report: RunReport,
    features: FeatureSet | None,
    jobs: list[Job],
    full: bool,
    fault_map: dict[str, str],
    params: dict,
) -> set[int]:
    """``jobs`` through the worker pool; the worker pids (none when there is nothing to do)."""
    if not jobs:
        return set()
    assert features is not None  # read as soon as there was work
    # deferred: pandas and the engine, ~340 ms (python -X importtime): a no-op run starts no worker
    from mfs.features import pool

    report.extra["batch_size"] = pool.batch_size(len(params["symbols"]))
    return pool.compute_stored(report, jobs, features, full, fault_map, params["lookback_bars"])


def lookback_bars(memory: int) -> int:
    """Bars read before the first new one: features.lookback_bars, or more when a definition's
    measured memory (``FeatureSet.memory``) needs it (KAMA(30): 640)."""
    return max(get_config().features.lookback_bars, memory)


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
    # deferred: the pool loads the worker (pandas, engine), ~340 ms (python -X importtime): a no-op run starts none
    from mfs.features.pool import Job

    return [Job(f"fill_{i}", i, symbols, fill) for i, symbols in sorted(stored.items())]


def _filled(report: RunReport, pending: list[tuple[str, str]], full: bool) -> list[tuple[str, str]]:
    """Mark the pending versions filled when no symbol's fill (or full recompute) failed."""
    failed = [r for r in report.results if r.status == "failed" and (full or r.stage.startswith("fill_"))]
    if not pending or failed:
        return []
    from mfs.features import registry  # deferred, as in _sync

    registry.mark_filled(pending)
    return pending


def _symbols_with_bars(symbols: list[str], intervals: Sequence[str]) -> tuple[dict[str, list[str]], Probe]:
    """Per interval, the symbols (in their order) that have at least one stored bar of it: one
    index probe per pair (compressed chunks are segmented by symbol and interval). A LATERAL
    LIMIT 1, not EXISTS: the planner turned EXISTS into a hash semi-join over every bar (225 ms
    for one symbol of a 4,000-symbol store, measured; 930 ms for all of them). In the same
    transaction, what the monitoring needs to know as the run starts (its clock, drift due)."""
    with connection() as conn, conn.cursor() as cur:
        started = monitoring_probe(cur, intervals)
        cur.execute(
            """SELECT i, s FROM unnest(%s::text[]) AS i CROSS JOIN unnest(%s::text[]) AS s
               CROSS JOIN LATERAL (SELECT 1 FROM market_data m WHERE m.symbol = s AND m.interval = i LIMIT 1) m""",
            (intervals, symbols),
        )
        present = {(i, s) for i, s in cur.fetchall()}
    return {i: [s for s in symbols if (i, s) in present] for i in intervals}, started


def _series_to_update(with_bars: dict[str, list[str]]) -> dict[str, list[str]]:
    """Per interval, those of its symbols that may have something to recompute (sql/071)."""
    with connection() as conn, conn.cursor() as cur:
        return {i: progress.series_to_update(cur, s, i, FEATURE_VERSION) if s else [] for i, s in with_bars.items()}


def _report_current(report: RunReport, with_bars: dict[str, list[str]], todo: dict[str, list[str]]) -> None:
    """The symbols with bars that had nothing to recompute: ok, nothing written."""
    for interval, symbols in with_bars.items():
        sent = set(todo[interval])
        report.results += [SymbolResult(s, f"features_{interval}", "ok") for s in symbols if s not in sent]


def _report_missing(
    report: RunReport, symbols: list[str], intervals: Sequence[str], with_bars: dict[str, list[str]]
) -> None:
    """A symbol with no stored bar at all is not in the store (a typo, or never collected): failed,
    never ok. One with bars of another interval only is skipped for this one, with the reason."""
    anywhere = {s for present in with_bars.values() for s in present}
    for each in intervals:
        present = set(with_bars[each])
        for symbol in symbols:
            if symbol in present:
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
