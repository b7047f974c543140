"""Two runs of the same flow at once (two ``mfs backfill --offline``, two ``mfs features``): the
second waits for the first on the flow's run lock (``mfs.orchestration.locks.run_lock``, shared
with the Prefect flows), then finds nothing left to do. No deadlock, no double work, the final
state of one uninterrupted run. With ``orchestration.lock_wait_s`` = 0 the second fails fast."""

from __future__ import annotations

import subprocess
import time

import pytest

from mfs.orchestration.locks import run_lock
from mfs.storage.connection import connect
from tests.reliability.reliability_helpers import (
    duplicates,
    error_lines,
    lost_rows,
    mfs_command,
    mfs_env,
    run_mfs,
    state,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SYMBOLS = ("AAPL", "MSFT", "IBM", "KO", "PEP", "JPM")
DAYS = 90
WAITING = "another run holds the lock; waiting"


def _runs(url: str, flow: str) -> list[tuple]:
    with connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT status, started_at, finished_at, counts FROM pipeline_runs
                       WHERE flow = %s ORDER BY started_at""",
            (flow,),
        )
        rows = cur.fetchall()
    conn.close()
    return rows


def _lock_sessions(url: str, lock: str) -> int:
    with connect(url, autocommit=True) as conn, conn.cursor() as cur:
        # A session counts once it has tried the lock (its last statement), not when it connected:
        # a run that connected but had not tried yet would take the lock at once, without waiting.
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            " AND query LIKE 'SELECT pg_try_advisory_lock(%%'",
            (f"mfs-lock-{lock}",),
        )
        count = cur.fetchone()[0]
    conn.close()
    return count


def _twice_at_once(url: str, env: dict, args: list[str], lock: str) -> list[subprocess.CompletedProcess]:
    """Start the same run twice and let both go at the same moment: the test holds the flow's
    lock until both wait on it (however slowly each interpreter starts), then releases it. One
    takes the lock, the other waits for that one; which went first is read from pipeline_runs."""
    with run_lock(lock, 0):
        procs = [
            subprocess.Popen(mfs_command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        deadline = time.monotonic() + 120
        while _lock_sessions(url, lock) < 3:  # ours and the two runs' lock sessions, each having tried
            assert all(p.poll() is None for p in procs), "a run ended before it waited for the lock"
            assert time.monotonic() < deadline, "the two runs never both waited for the lock"
            time.sleep(0.1)
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=180)  # a deadlock would end here
        out.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    assert all(WAITING in r.stderr for r in out)
    return out


def test_two_backfills_and_two_feature_runs_at_once_do_the_work_once(db, reference):
    clean = reference(SYMBOLS, DAYS, features=True)
    env = mfs_env(db, MFS_INGEST__BATCH_SIZE="1")
    symbols = ",".join(SYMBOLS)

    first, second = _twice_at_once(
        db, env, ["backfill", "--offline", "--symbols", symbols, "--days", str(DAYS)], "collect"
    )
    assert (first.returncode, second.returncode) == (0, 0), (first.stderr[-1500:], second.stderr[-1500:])
    (_, _, end1, counts1), (_, start2, _, counts2) = _runs(db, "backfill")
    assert start2 >= end1, "the runs overlapped"
    assert counts1["inserted"] == sum(clean.counts["market_data"].values())
    assert (counts2["inserted"], counts2["updated"]) == (0, 0), "the second run redid the first one's work"

    first, second = _twice_at_once(db, env, ["features", "--symbols", symbols], "features")
    assert (first.returncode, second.returncode) == (0, 0), (first.stderr[-1500:], second.stderr[-1500:])
    (_, _, end1, counts1), (_, start2, _, counts2) = _runs(db, "features")
    assert start2 >= end1
    assert counts1["written"] == sum(clean.counts["features"].values()) and counts2["written"] == 0

    final = state(db)
    assert final.checksums == clean.checksums
    for table in ("market_data", "features"):
        assert lost_rows(clean, final, table) == 0 and duplicates(db, table) == 0


def test_with_no_wait_the_second_run_fails_fast_with_a_clear_message(db):
    env = mfs_env(db, MFS_ORCHESTRATION__LOCK_WAIT_S="0")
    with run_lock("collect", 0):  # a run in progress (the lock the collect flows and CLI share)
        result = run_mfs(env, "collect", "--offline", "--symbols", "AAPL", "--days", "3")
    assert result.returncode == 1
    assert error_lines(result.stderr) == ["mfs: error: another 'collect' run is still running after 0 s of waiting"]
    assert _runs(db, "collect") == [], "a refused run starts nothing"
