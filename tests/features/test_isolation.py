"""Real faults in real worker processes: each fails only its own symbol, with the reason recorded
in symbol_runs; every other symbol completes with correct rows. Also: workers are recycled, the
orchestrator never computes, and database connections stay within workers + 2."""

from __future__ import annotations

import os
import threading

import pytest

from mfs.errors import RunFailedError
from mfs.features import compute
from mfs.storage.connection import connect, dispose_pools
from tests.features.feature_helpers import insert_bars, make_bars, read_features

pytestmark = pytest.mark.faults

FAULTS = {"SEGV": "segfault", "KILL": "sigkill", "HANG": "hang", "OOM": "memory", "BOOM": "raise"}
REASONS = {
    "SEGV": "worker killed by SIGSEGV",
    "KILL": "worker killed by SIGKILL",
    "HANG": "timed out after 3 s",
    "OOM": "MemoryError",
    "BOOM": "RuntimeError: injected failure",
}
GOOD = ["GOOD1", "GOOD2", "GOOD3"]


@pytest.mark.slow
def test_each_fault_fails_only_its_symbol_and_the_run_reports_it(conn, config_env):
    config_env(MFS_FEATURES__TIMEOUT_S=3, MFS_FEATURES__WORKERS=2, MFS_FEATURES__WORKER_MEMORY_MB=1024)
    symbols = ["GOOD1", "SEGV", "KILL", "GOOD2", "HANG", "OOM", "BOOM", "GOOD3"]
    bars = {s: make_bars(260, seed=i) for i, s in enumerate(symbols)}
    for s in symbols:
        insert_bars(conn, s, "1h", bars[s])
    report = compute(symbols, "1h", raise_on_failure=False, faults=FAULTS)
    by_symbol = {r.symbol: r for r in report.results}
    assert [r.symbol for r in report.results] == symbols
    for s, reason in REASONS.items():
        assert by_symbol[s].status == "failed"
        assert by_symbol[s].reason.startswith(reason), by_symbol[s].reason
    for s in GOOD:
        assert (by_symbol[s].status, by_symbol[s].written) == ("ok", 260)
        stored = read_features(conn, s)
        assert len(stored) == 260 and stored["obv"].notna().all()
    assert os.getpid() not in report.extra["worker_pids"]
    with conn.cursor() as cur:
        cur.execute("SELECT status, error_summary FROM pipeline_runs WHERE run_id = %s", (report.run_id,))
        status, summary = cur.fetchone()
        assert status == "failed" and "SIGSEGV" in summary
        cur.execute(
            "SELECT symbol, status, reason FROM symbol_runs WHERE run_id = %s AND stage = 'features_1h'",
            (report.run_id,),
        )
        recorded = {s: (st, r) for s, st, r in cur.fetchall()}
        # Nothing half-written for the failed symbols: their transaction never committed.
        cur.execute("SELECT count(*) FROM features WHERE symbol = ANY(%s)", (list(FAULTS),))
        assert cur.fetchone()[0] == 0
    assert recorded["GOOD2"] == ("ok", None)
    assert recorded["HANG"] == ("failed", "timed out after 3 s")
    assert recorded["KILL"] == ("failed", "worker killed by SIGKILL")


def test_faults_from_the_environment_fail_the_run(conn, monkeypatch):
    insert_bars(conn, "ENVOK", "1h", make_bars(50, seed=1))
    insert_bars(conn, "ENVBAD", "1h", make_bars(50, seed=2))
    monkeypatch.setenv("MFS_FEATURE_FAULTS", '{"ENVBAD": "raise"}')
    with pytest.raises(RunFailedError, match=r"ENVBAD.*injected failure"):
        compute(["ENVOK", "ENVBAD"], "1h")
    assert len(read_features(conn, "ENVOK")) == 50


def test_unknown_fault_kind_is_a_clear_error(db):
    from mfs.errors import ConfigError

    with pytest.raises(ConfigError, match="expected one of segfault"):
        compute(["AAA"], "1h", faults={"AAA": "explode"})


def test_workers_are_recycled_and_connections_stay_bounded(conn, db_url, config_env):
    config_env(MFS_FEATURES__WORKERS=2, MFS_FEATURES__MAX_TASKS_PER_WORKER=2, MFS_FEATURES__BATCH_SIZE=1)
    dispose_pools()  # idle pooled connections left by earlier tests are not this run's
    symbols = [f"R{i:02d}" for i in range(12)]
    for i, s in enumerate(symbols):
        insert_bars(conn, s, "1h", make_bars(120, seed=i))
    peak = {"workers": 0, "total": 0}
    stop = threading.Event()
    watcher = connect(db_url, autocommit=True)
    dbname = watcher.get_dsn_parameters()["dbname"]

    def sample():
        with watcher.cursor() as cur:
            while not stop.is_set():
                cur.execute(
                    "SELECT count(*) FILTER (WHERE application_name = 'mfs-features-worker'), count(*) "
                    "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'",
                    (dbname,),
                )
                w, total = cur.fetchone()
                peak["workers"], peak["total"] = max(peak["workers"], w), max(peak["total"], total)
                stop.wait(0.005)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        report = compute(symbols, "1h")
    finally:
        stop.set()
        thread.join()
        watcher.close()
    assert all(r.status == "ok" for r in report.results)
    assert len(report.extra["worker_pids"]) >= 6  # 12 symbols / 2 per worker: fresh processes
    assert peak["workers"] <= 2
    # Everything else on this database: this test's own `conn` and the orchestrator's run bookkeeping.
    assert peak["total"] <= 2 + 2 + 1
