"""Two runs of the same flow at once (two ``mfs backfill --offline``, two ``mfs features``): the
second waits for the first on the flow's run lock (``mfs.orchestration.locks.run_lock``, shared
with the Prefect flows), then finds nothing left to do. No deadlock, no double work, the final
state of one uninterrupted run. With ``orchestration.lock_wait_s`` = 0 the second fails fast."""

from __future__ import annotations

import subprocess

import pytest
from reliability_helpers import duplicates, error_lines, lost_rows, mfs_command, mfs_env, run_mfs, state

from mfs.orchestration.locks import run_lock
from mfs.storage.connection import connect

pytestmark = pytest.mark.faults

SYMBOLS = ("AAPL", "MSFT", "IBM", "KO", "PEP", "JPM")
DAYS = 90
WAITING = "another run holds the lock; waiting"


def _runs(url: str, flow: str) -> list[tuple]:
    with connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("""SELECT status, started_at, finished_at, counts FROM pipeline_runs
                       WHERE flow = %s ORDER BY started_at""", (flow,))
        rows = cur.fetchall()
    conn.close()
    return rows


def _twice_at_once(env: dict, args: list[str]) -> tuple[subprocess.CompletedProcess, ...]:
    """Start the same run twice at the same moment; returns (the run that went first, the one
    that waited), told apart by the waiting run's log line."""
    procs = [subprocess.Popen(mfs_command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=180)  # a deadlock would end here
        out.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    waited = [WAITING in r.stderr for r in out]
    assert sorted(waited) == [False, True], "exactly one run must have waited for the other"
    return (out[1], out[0]) if waited[0] else (out[0], out[1])


def test_two_backfills_and_two_feature_runs_at_once_do_the_work_once(db, reference):
    clean = reference(SYMBOLS, DAYS, features=True)
    env = mfs_env(db, MFS_INGEST__BATCH_SIZE="1")
    symbols = ",".join(SYMBOLS)

    first, second = _twice_at_once(env, ["backfill", "--offline", "--symbols", symbols, "--days", str(DAYS)])
    assert (first.returncode, second.returncode) == (0, 0), (first.stderr[-1500:], second.stderr[-1500:])
    (_, _, end1, counts1), (_, start2, _, counts2) = _runs(db, "backfill")
    assert start2 >= end1, "the runs overlapped"
    assert counts1["inserted"] == sum(clean.counts["market_data"].values())
    assert (counts2["inserted"], counts2["updated"]) == (0, 0), "the second run redid the first one's work"

    first, second = _twice_at_once(env, ["features", "--symbols", symbols])
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
