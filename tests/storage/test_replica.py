"""Drill 2: failover to the streaming replica (synchronous replication).

A primary archiving to pgBackRest with a synchronous replica; runs fill the store; readers on the
replica see what readers on the primary see. Mid-run the primary's postmaster is killed (-9) and
its data folder removed; the replica is promoted; nothing the primary acknowledged as committed is
missing on it; the next run completes on it, and the store converges to an uninterrupted run's
state; backups carry on from the promoted server. On throwaway clusters (never the shared one)."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pandas as pd
import psycopg2
import pytest

from mfs.dataset import features_asof, latest_features
from mfs.storage import backup, replica
from tests.fixtures.config import config_environment
from tests.reliability.reliability_helpers import counts, mfs_command, mfs_env, reference_state, run_mfs, state
from tests.storage.backup_helpers import archived_store, cli_env, execute, lose_the_disk

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SYMBOLS = ("AAPL", "MSFT", "KO", "IBM")
DAYS = 30


class CommitProbe(threading.Thread):
    """Inserts one row per transaction until the server goes away; remembers every commit the
    server acknowledged."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.acknowledged = url, []

    def run(self) -> None:
        conn = psycopg2.connect(self.url)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for i in range(1_000_000):
                    cur.execute("INSERT INTO drill_commits VALUES (%s)", (i,))
                    self.acknowledged.append(i)
        except psycopg2.Error:
            return


def test_failover_to_the_replica_loses_no_committed_row(db, fake_yahoo):
    clean = reference_state(db, fake_yahoo, SYMBOLS, DAYS, features=True)  # an uninterrupted run's
    symbols = ",".join(SYMBOLS)
    with archived_store() as drill:
        standby = drill.cluster("pg-replica")
        replica.start(drill.primary, standby, synchronous=True)
        cli = cli_env(drill, MFS_REPLICA__PORT=str(standby.port))
        status = run_mfs(cli, "status")
        assert "replica     mfs_replica streaming (sync)" in status.stdout, status.stderr[-2000:]
        env = mfs_env(drill.url, MFS_FEATURES__BATCH_SIZE="1", MFS_FEATURES__WORKERS="1")
        assert run_mfs(env, "backfill", "--offline", "--symbols", symbols, "--days", str(DAYS)).returncode == 0
        assert run_mfs(env, "features", "--symbols", "AAPL,MSFT").returncode == 0

        # Readers pointed at the replica (MFS_READER_URL) see what the primary serves.
        replica.wait_for_catch_up(drill.primary, 60)
        on_primary = latest_features(url=drill.url)
        entities = on_primary[["symbol", "ts"]].rename(columns={"ts": "at"})
        training_on_primary = features_asof(entities, known_at="now", url=drill.url)
        with config_environment(MFS_READER_URL=standby.url(), MFS_DATABASE_URL="postgresql://nobody@127.0.0.1:1/x"):
            on_replica = latest_features()
            training_on_replica = features_asof(entities, known_at="now")
        assert len(on_primary) == 2
        pd.testing.assert_frame_equal(on_replica, on_primary)
        pd.testing.assert_frame_equal(training_on_replica, training_on_primary)

        # Mid-run: the primary's postmaster killed and its data folder gone.
        execute(drill.url, "CREATE TABLE drill_commits (id int PRIMARY KEY)")
        probe = CommitProbe(drill.url)
        probe.start()
        before = counts(drill.url, "features")
        command = mfs_command("features", "--symbols", symbols)
        run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while counts(drill.url, "features") == before:
            assert run.poll() is None and time.monotonic() < deadline, "the run ended before the kill could hit it"
            time.sleep(0.05)
        committed = {"market_data": counts(drill.url, "market_data"), "features": counts(drill.url, "features")}
        ended_first = run.poll() is not None  # its last batch may commit before the kill lands
        lose_the_disk(drill.primary)
        _, err = run.communicate(timeout=120)
        probe.join(timeout=30)
        assert (ended_first or run.returncode != 0) and "Traceback" not in err, err[-2000:]

        started = time.monotonic()
        promote = run_mfs(cli, "db", "replica", "promote")  # the operator's procedure (docs/operations.md)
        failover_s = time.monotonic() - started
        assert promote.returncode == 0 and promote.stdout.startswith("promoted"), promote.stderr[-2000:]
        assert json.loads(run_mfs(cli, "db", "replica", "status", "--json").stdout)["in_recovery"] is False
        promoted = run_mfs(cli, "db", "replica", "url").stdout.strip()

        # Nothing acknowledged is lost: every probe commit, every row seen committed before the kill.
        conn = psycopg2.connect(promoted)
        with conn.cursor() as cur:
            cur.execute("SELECT array_agg(id ORDER BY id) FROM drill_commits")
            kept = set(cur.fetchone()[0] or [])
        conn.close()
        assert probe.acknowledged and set(probe.acknowledged) <= kept
        for table, seen in committed.items():
            now = counts(promoted, table)
            assert all(now.get(key, 0) >= n for key, n in seen.items()), table

        # The next run completes on the promoted server; the store converges; backups carry on.
        for args in (("collect", "--offline"), ("features",)):
            rerun = run_mfs(mfs_env(promoted), *args, "--symbols", symbols)
            assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert state(promoted).checksums == clean.checksums
        assert backup.backup(standby, drill.repo).kind in ("full", "diff")
        print(f"\nfailover (promote): {failover_s:.2f} s; probe commits kept: {len(probe.acknowledged)}")
