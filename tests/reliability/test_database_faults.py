"""PostgreSQL restarted mid-run (``pg_ctl restart -m fast``), on a throwaway cluster of our own
so no other test loses its connections: the run fails clearly (one ``mfs: error:`` line, a
failed pipeline_runs row, no traceback) or completes, and a re-run converges to the state of an
uninterrupted run (checksums of market_data and features)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

from mfs.storage import migrations
from mfs.storage.localdb import LocalCluster
from tests.fixtures.database import free_port
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
DAYS = 60


@pytest.fixture(scope="module")
def throwaway_cluster(server_url):
    # The server runs as 'postgres': it needs a folder it can reach (pytest's tmp_path is private).
    home = Path(tempfile.mkdtemp(prefix="mfs-restart-"))
    home.chmod(0o755)
    cluster = LocalCluster(root=home / "pg", port=free_port(), user="mfs", dbname="store")
    cluster.init()
    cluster.start()
    try:
        url = cluster.url()
        migrations.ensure_database(url)
        migrations.migrate(url)
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)


def _scalar(url: str, query: str):
    """One value, on a fresh connection (the server may have just restarted); None if it is down."""
    try:
        conn = psycopg2.connect(url, connect_timeout=2)
    except psycopg2.OperationalError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchone()[0]
    except psycopg2.Error:
        return None
    finally:
        conn.close()


def _restart_when(cluster: LocalCluster, env: dict, args: list[str], ready_query: str) -> subprocess.CompletedProcess:
    """Start ``mfs args``; restart the server as soon as ``ready_query`` is true; wait for the end."""
    url = cluster.url()
    proc = subprocess.Popen(mfs_command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _scalar(url, ready_query):
        assert proc.poll() is None, "the run ended before the restart could hit it"
        assert time.monotonic() < deadline, "the run never reached the point of the restart"
        time.sleep(0.02)
    cluster.restart()
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _judge(result: subprocess.CompletedProcess, url: str, flow: str) -> str:
    """Failed clearly or completed; returns the run's recorded status."""
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    status = _scalar(url, f"SELECT status FROM pipeline_runs WHERE flow = '{flow}' ORDER BY started_at DESC LIMIT 1")
    if result.returncode == 0:
        assert status == "completed"
    else:
        assert result.returncode == 1 and error_lines(result.stderr), result.stderr[-2000:]
        assert status == "failed", status  # recorded even though the database was what failed
    return status


def test_restart_mid_run_fails_clearly_and_a_rerun_converges(throwaway_cluster, reference):
    clean = reference(SYMBOLS, DAYS, features=True)
    url = throwaway_cluster.url()
    env = mfs_env(url, MFS_INGEST__BATCH_SIZE="1", MFS_FEATURES__BATCH_SIZE="1", MFS_FEATURES__WORKERS="1")
    symbols = ",".join(SYMBOLS)

    # Ingest: restart once the first symbol batch is committed (five more to go).
    hit = _restart_when(
        throwaway_cluster,
        env,
        ["backfill", "--offline", "--symbols", symbols, "--days", str(DAYS)],
        "SELECT count(*) > 0 FROM market_data",
    )
    ingest_status = _judge(hit, url, "backfill")
    rerun = run_mfs(env, "backfill", "--offline", "--symbols", symbols, "--days", str(DAYS))
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    # Features: restart once the first symbol's rows are committed (one symbol per transaction).
    hit = _restart_when(throwaway_cluster, env, ["features", "--symbols", symbols], "SELECT count(*) > 0 FROM features")
    features_status = _judge(hit, url, "features")
    rerun = run_mfs(env, "features", "--symbols", symbols)
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    final = state(url)
    assert final.checksums == clean.checksums, (ingest_status, features_status)
    for table in ("market_data", "features"):
        assert lost_rows(clean, final, table) == 0 and duplicates(url, table) == 0
    print(f"restart outcomes: backfill {ingest_status}, features {features_status}")
