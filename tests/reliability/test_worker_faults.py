"""Worker faults in one symbol — segfault, SIGKILL, an infinite loop past a short timeout,
MemoryError — fail that symbol alone. The other symbols' features are exactly a clean run's;
memory (RSS of this process tree) and database connections return to their baseline; a re-run
without the fault converges to the clean run's checksum."""

from __future__ import annotations

import contextlib
import time

import psutil
import pytest

from mfs.features import compute
from mfs.ingest import backfill
from mfs.storage.connection import connect
from tests.reliability.reliability_helpers import ASOF, duplicates, lost_rows, state

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SYMBOLS = ("AAPL", "MSFT", "IBM", "KO")
DAYS = 30
VICTIM = "IBM"
TIMEOUT_S = 3
REASONS = {
    "segfault": "worker killed by SIGSEGV",
    "sigkill": "worker killed by SIGKILL",
    "hang": f"timed out after {TIMEOUT_S} s",
    "memory": "MemoryError",
}
MEMORY_SLACK = 64 * 2**20  # allocator noise of the orchestrating process, not a leak per run


def tree() -> tuple[int, set[int]]:
    """RSS in bytes of this process and all its descendants, and the descendants' pids."""
    me = psutil.Process()
    children = me.children(recursive=True)
    rss = me.memory_info().rss
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            rss += child.memory_info().rss
    return rss, {c.pid for c in children}


def connections(cur) -> int:
    cur.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend'"
    )
    return cur.fetchone()[0]


@pytest.fixture
def short_timeout(config_env):
    config_env(MFS_FEATURES__TIMEOUT_S=TIMEOUT_S, MFS_FEATURES__WORKER_MEMORY_MB="1024")


@pytest.mark.parametrize("fault", list(REASONS))
def test_a_worker_fault_fails_only_its_symbol_and_resources_return_to_baseline(
    fault, db, fake_yahoo, reference, short_timeout
):
    clean = reference(SYMBOLS, DAYS, features=True)
    backfill(list(SYMBOLS), days=DAYS, session=fake_yahoo(asof=ASOF))
    observer = connect(db, autocommit=True)
    try:
        with observer.cursor() as cur:
            compute([SYMBOLS[0]], "1h", full=True)  # warm: forkserver and this process's pool exist
            rss_before, pids_before = tree()
            conns_before = connections(cur)

            report = compute(list(SYMBOLS), "1h", raise_on_failure=False, faults={VICTIM: fault})

            by_symbol = {r.symbol: r for r in report.results}
            assert by_symbol[VICTIM].status == "failed"
            assert by_symbol[VICTIM].reason.startswith(REASONS[fault]), by_symbol[VICTIM].reason
            assert [s for s, r in by_symbol.items() if r.status == "failed"] == [VICTIM]
            cur.execute("SELECT status FROM pipeline_runs WHERE run_id = %s", (report.run_id,))
            assert cur.fetchone()[0] == "failed"
            cur.execute(
                "SELECT status, reason FROM symbol_runs WHERE run_id = %s AND symbol = %s", (report.run_id, VICTIM)
            )
            assert cur.fetchone() == ("failed", by_symbol[VICTIM].reason)
            after = state(db)
            assert (VICTIM, "1h") not in after.counts["features"], "nothing half-written for the victim"
            for s in SYMBOLS:
                if s != VICTIM:
                    assert after.counts["features"][(s, "1h")] == clean.counts["features"][(s, "1h")]

            # Workers are gone, memory and connections are back where they were.
            deadline = time.monotonic() + 10
            while True:
                rss_after, pids_after = tree()
                conns_after = connections(cur)
                if (pids_after <= pids_before and conns_after <= conns_before) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert pids_after <= pids_before, f"worker processes left behind: {pids_after - pids_before}"
            assert conns_after <= conns_before, f"connections: {conns_before} before, {conns_after} after"
            assert rss_after <= rss_before + MEMORY_SLACK, f"RSS {rss_before >> 20} MiB -> {rss_after >> 20} MiB"
    finally:
        observer.close()

    rerun = compute(list(SYMBOLS), "1h", faults={})
    assert [r.symbol for r in rerun.results if r.written] == [VICTIM]
    compute(list(SYMBOLS), "1d")  # the reference holds every configured interval
    final = state(db)
    assert final.checksums == clean.checksums
    assert lost_rows(clean, final, "features") == 0 and duplicates(db, "features") == 0
