"""Worker processes: every symbol is computed in a pebble worker, never in the orchestrator.

Why pebble on a forkserver context (measured, see docs/features.md): a pebble ProcessPool
survives a worker that segfaults or is SIGKILLed (the task fails with ProcessExpired, a new worker
replaces it), enforces a per-task timeout counted from the task's start (the hung worker is
terminated), and recycles workers after ``max_tasks`` symbols without CPython 3.11's
ProcessPoolExecutor ``max_tasks_per_child`` deadlock (gh-115634). The forkserver preloads this
module (numpy, pandas, TA-Lib, psycopg2 imported once), so a fresh worker costs a fork (~15 ms)
instead of a 0.6 s interpreter start, and nothing of the orchestrator (threads, sockets, Prefect
state) is inherited the way ``fork`` would.

Each worker opens ONE database connection lazily and keeps it until it exits, so a run holds at
most ``workers`` + the orchestrator's connection. Only the task description (a few strings) is
pickled to a worker and a small ``BatchResult`` of counts comes back; bars and features never
cross a pipe.

Fault injection (reliability tests; ``faults`` of ``mfs.features.compute`` or the environment
variable MFS_FEATURE_FAULTS='{"SYMBOL": "kind"}'): the worker itself misbehaves for that symbol —
a real fault in the real process, not a mock.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import resource
import signal
import time
from dataclasses import dataclass

FAULT_KINDS = ("segfault", "sigkill", "hang", "memory", "raise")

# Bound BLAS/OpenMP threads before numpy loads in the forkserver: workers are the parallelism.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pandas as pd  # noqa: E402  (after the thread limits above)

from mfs.features import definitions, engine  # noqa: E402
from mfs.features.batch import SymbolCounts, update_batch  # noqa: E402
from mfs.features.fill import fill_batch  # noqa: E402
from mfs.storage.clock import WriteContext  # noqa: E402
from mfs.storage.connection import connect  # noqa: E402
from mfs.storage.types import Connection  # noqa: E402

# pandas resolves the New York zone name through pytz, whose first lookup stats its ~600 zone
# files (12 ms measured): paid once here, in the forkserver, not in every new worker.
pd.Timestamp(0, tz=engine.NY)

_conn: Connection | None = None
_url: str | None = None


@dataclass(frozen=True)
class BatchTask:
    symbols: tuple[str, ...]
    interval: str
    full: bool
    lookback: int
    database_url: str
    # The run's feature definitions (the file's YAML text; the forkserver's own copy of the file
    # may be older) and, for a column fill, the columns to fill over the whole history.
    definitions: str = ""
    definitions_source: str = "config/features.yaml"
    fill: tuple[str, ...] = ()
    faults: tuple[tuple[str, str], ...] = ()  # (symbol, kind) pairs
    # What the write records (the worker's environment is the forkserver's, fixed at its start).
    run_id: str | None = None
    clock: str | None = None
    keep_revisions: bool = True


@dataclass(frozen=True)
class BatchResult:
    """What a worker sends back for a batch it finished."""

    pid: int
    seconds: float  # the batch's wall time in the worker: reads, maths, write and commit
    outcomes: dict[str, SymbolCounts | str]  # per symbol: its counts, or why it failed


def initialize(memory_limit_mb: int) -> None:
    """Pebble initializer, run once in each new worker process."""
    # Let the pool's SIGTERM (timeout) end the worker at once, whatever Python code is running.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the orchestrator's to handle
    if memory_limit_mb > 0:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    multiprocessing.util.Finalize(None, _close_connection, exitpriority=10)


def _close_connection() -> None:
    global _conn
    if _conn is not None and not _conn.closed:
        _conn.close()
    _conn = None


def _connection(url: str) -> Connection:
    global _conn, _url
    if _conn is None or _conn.closed or _url != url:
        _close_connection()
        _conn = connect(url, application_name="mfs-features-worker")
        _conn.set_session(isolation_level="REPEATABLE READ")
        _url = url
    return _conn


def inject_fault(kind: str) -> None:
    """Make this worker process fail the way ``kind`` says."""
    if kind == "segfault":
        ctypes.string_at(0)  # dereference NULL: a genuine SIGSEGV in C code
    elif kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "hang":
        while True:  # busy, not sleeping: a runaway computation
            time.sleep(0.01)
    elif kind == "memory":
        hoard = []
        while True:  # allocate until the worker's address-space limit (or the allocator) refuses
            hoard.append(bytearray(256 * 1024 * 1024))
            if len(hoard) > 4096:  # no limit and lazy allocation: ask for the impossible
                bytearray(1 << 62)
    elif kind == "raise":
        raise RuntimeError("injected failure")
    else:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")


def run_batch(task: BatchTask) -> BatchResult:
    """Worker entry point: update a batch of symbols on this worker's connection.

    A fault that kills the process (segfault, SIGKILL, timeout) loses the whole batch: nothing
    of it was committed, and the orchestrator reruns its symbols one per task so that only the
    faulty one fails."""
    faults = dict(task.faults)

    def before(symbol: str) -> None:
        if symbol in faults:
            inject_fault(faults[symbol])

    try:
        conn = _connection(task.database_url)
        began = time.perf_counter()  # after connecting: a new worker's first task would pay for it
        features = (
            definitions.from_text(task.definitions, task.definitions_source) if task.definitions else definitions.load()
        )
        # The run's clock, never this process's environment: it is the forkserver's, fixed when it
        # started (possibly under another run's MFS_CLOCK).
        context: WriteContext = {"run_id": task.run_id, "clock": task.clock or "", "keep": task.keep_revisions}
        symbols = list(task.symbols)
        if task.fill:
            outcomes = fill_batch(
                conn, symbols, task.interval, task.fill, features=features, before_symbol=before, context=context
            )
        else:
            outcomes = update_batch(
                conn,
                symbols,
                task.interval,
                full=task.full,
                lookback=task.lookback,
                features=features,
                before_symbol=before,
                context=context,
            )
    except BaseException:
        _close_connection()  # a broken transaction or socket must not leak into the next task
        raise
    return BatchResult(os.getpid(), time.perf_counter() - began, outcomes)


def context() -> multiprocessing.context.BaseContext:
    """The forkserver context, preloading this module so new workers start warm."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx
