"""The collecting process and the feature process killed with SIGKILL while they write (caught in
the act through pg_stat_activity; the server holds every write statement a moment, so a write
cannot start and finish between two polls), a few times at different moments, then a re-run: identical
checksums to an uninterrupted run. A concurrent reader polling per-series row counts never sees a
partial symbol: every (symbol, interval) count it observes is 0 or the complete count."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest

from mfs.storage.connection import connect
from tests.reliability.reliability_helpers import duplicates, lost_rows, mfs_command, mfs_env, run_mfs, state

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SYMBOLS = ("AAPL", "MSFT", "IBM", "KO", "PEP", "JPM", "XOM", "WMT")
DAYS = 120
# A write of our own, caught while the server executes it (COPY of rows, or the staged upsert).
WRITING = """SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND state = 'active' AND application_name LIKE 'mfs%%'
               AND (query ILIKE 'copy %%' OR query ILIKE 'insert %%') AND query ILIKE %s"""


# Long enough for the probe (a query every 2 ms, on a busy 2-core machine) to see each write.
WRITE_HOLD_S = 0.25


@contextmanager
def slow_writes(url: str, tables: tuple[str, ...] = ("market_data", "features")) -> Iterator[None]:
    """Every INSERT/UPDATE/COPY statement on ``tables`` sleeps WRITE_HOLD_S on the server before it
    writes (a statement trigger; the data written is untouched). Dropped again on exit: the
    session database is shared."""
    conn = connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"""CREATE FUNCTION test_hold_write() RETURNS trigger LANGUAGE plpgsql AS
                            $$ BEGIN PERFORM pg_sleep({WRITE_HOLD_S}); RETURN NULL; END $$""")
            for t in tables:
                cur.execute(
                    f"CREATE TRIGGER test_hold_write BEFORE INSERT OR UPDATE ON {t} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION test_hold_write()"
                )
        yield
    finally:
        with conn.cursor() as cur:
            for t in tables:
                cur.execute(f"DROP TRIGGER IF EXISTS test_hold_write ON {t}")
            cur.execute("DROP FUNCTION IF EXISTS test_hold_write()")
        conn.close()


class PartialWatcher(threading.Thread):
    """Polls per-(symbol, interval) row counts; remembers any count that is neither 0 nor complete."""

    def __init__(self, url: str, complete: dict[str, dict[tuple[str, str], int]]):
        super().__init__(daemon=True)
        self.url, self.complete = url, complete
        self.stop = threading.Event()
        self.partial: list[tuple[str, tuple[str, str], int]] = []
        self.polls = 0

    def run(self) -> None:
        conn = connect(self.url, autocommit=True)
        try:
            with conn.cursor() as cur:
                while not self.stop.is_set():
                    for table in ("market_data", "features"):
                        cur.execute(f"SELECT symbol, interval, count(*) FROM {table} GROUP BY 1, 2")  # fixed names
                        for symbol, interval, n in cur.fetchall():
                            if n != self.complete[table].get((symbol, interval)):
                                self.partial.append((table, (symbol, interval), n))
                    self.polls += 1
                    time.sleep(0.01)
        finally:
            conn.close()


def kill_during_write(env: dict, args: list[str], table: str, nth: int, url: str) -> int:
    """Run ``mfs args`` in its own process group; SIGKILL the whole group (workers included) when
    the ``nth`` write to ``table`` is seen executing. Returns how many writes were seen."""
    proc = subprocess.Popen(
        mfs_command(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    seen, busy = 0, False
    probe = connect(url, autocommit=True)
    try:
        with probe.cursor() as cur:
            while proc.poll() is None:
                cur.execute(WRITING, (f"%{table}%",))
                now = cur.fetchone()[0] > 0
                if now and not busy:
                    seen += 1
                    if seen >= nth:
                        os.killpg(proc.pid, signal.SIGKILL)
                        break
                busy = now
                time.sleep(0.002)
    finally:
        probe.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (
        f"the run ended before its write #{nth} was caught:\n{err.decode()[-1500:]}"
    )
    # Nothing of the killed run may live on (pebble workers, the forkserver).
    left = [p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == proc.pid]
    for p in left:
        p.wait(timeout=10)
    return seen


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _backends_gone(url: str, timeout_s: float = 10) -> None:
    """The server ends a killed client's backend (and rolls its transaction back) on its own."""
    deadline = time.monotonic() + timeout_s
    with connect(url, autocommit=True) as conn, conn.cursor() as cur:
        while True:
            cur.execute("""SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                           AND application_name LIKE 'mfs%%' AND pid <> pg_backend_pid()""")
            if cur.fetchone()[0] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    conn.close()


def test_sigkill_during_writes_then_a_rerun_gives_the_uninterrupted_state(db, reference):
    clean = reference(SYMBOLS, DAYS, features=True)
    env = mfs_env(db, MFS_INGEST__BATCH_SIZE="1", MFS_FEATURES__BATCH_SIZE="1", MFS_FEATURES__WORKERS="1")
    symbols = ",".join(SYMBOLS)
    watcher = PartialWatcher(db, clean.counts)
    watcher.start()
    try:
        with slow_writes(db):
            for nth in (1, 3, 6):  # early, middle, later: each re-run resumes where the store stands
                kill_during_write(
                    env, ["backfill", "--offline", "--symbols", symbols, "--days", str(DAYS)], "market_data", nth, db
                )
            _backends_gone(db)
            done = run_mfs(env, "backfill", "--offline", "--symbols", symbols, "--days", str(DAYS))
            assert done.returncode == 0, done.stderr[-2000:]
            for nth in (1, 4):
                kill_during_write(env, ["features", "--symbols", symbols], "features", nth, db)
            _backends_gone(db)
            done = run_mfs(env, "features", "--symbols", symbols)
            assert done.returncode == 0, done.stderr[-2000:]
            time.sleep(0.05)
    finally:
        watcher.stop.set()
        watcher.join(timeout=10)
    assert watcher.polls > 20
    assert watcher.partial == [], f"partial symbols seen: {watcher.partial[:10]}"
    final = state(db)
    assert final.checksums == clean.checksums
    for table in ("market_data", "features"):
        assert lost_rows(clean, final, table) == 0 and duplicates(db, table) == 0
