"""Drill 1: an operator's mistake undone by a point-in-time restore (pgBackRest).

A store filled by real runs (a backfill, hourly runs over four trading days, Yahoo re-adjusting a
split); a full backup; more runs (the split day); then a `DELETE FROM features WHERE symbol = …`
and a `DROP TABLE features_revisions CASCADE`. Restored into a fresh folder to the moment before
the delete, every table, both revision tables, corporate actions, the registry, every continuous
aggregate and the jobs are what they were at that moment, and a training set taken then is
byte-identical. On a throwaway cluster of its own (never the shared one)."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from mfs.dataset import features_asof
from mfs.storage import backup
from mfs.storage.localdb import LocalCluster
from tests.dataset.store import SCHEDULE, SPLIT, SPLIT_DAY, _pinned_run, build_store, ny
from tests.fixtures.config import config_environment
from tests.fixtures.database import free_port
from tests.reliability.reliability_helpers import run_mfs
from tests.storage.backup_helpers import archived_store, checksums, cli_env, execute, lose_the_disk, server_now

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def training_set(url: str, store_symbols: list[str], moments: list[pd.Timestamp], known_at: pd.Timestamp) -> bytes:
    """Every symbol at every run's moment, as the store knew it at ``known_at``: Parquet bytes."""
    entities = pd.DataFrame([(s, t) for s in store_symbols for t in moments], columns=["symbol", "at"])
    frame = features_asof(entities, known_at=known_at, url=url)
    assert frame["ts"].notna().sum() > len(entities) // 2, "the training set answered almost nothing"
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _split_day_runs(url: str, symbols: list[str]) -> list[pd.Timestamp]:
    from mfs.sources.fake_yahoo import synthetic_session
    from mfs.sources.yahoo import clear_request_cache

    day, hours = SPLIT_DAY
    moments = []
    for hour in hours:
        clear_request_cache()
        _pinned_run(ny(day, hour), symbols, synthetic_session, dict(SPLIT), days=None)
        moments.append(ny(day, hour))
    return moments


def test_point_in_time_restore_undoes_a_delete_and_a_dropped_revision_table(fake_yahoo, monkeypatch):
    started = time.monotonic()
    with archived_store() as drill, config_environment(MFS_DATABASE_URL=drill.url):
        monkeypatch.delenv("MFS_CLOCK", raising=False)
        store = build_store(drill.url, schedule=SCHEDULE, split_day=None)
        full = backup.backup(drill.primary, drill.repo, full=True)
        assert full.kind == "full" and full.repo_bytes > 0

        moments = store.moments[::2] + _split_day_runs(drill.url, store.symbols)  # more runs after the backup
        monkeypatch.delenv("MFS_CLOCK", raising=False)
        diff = run_mfs(cli_env(drill), "db", "backup")
        assert diff.returncode == 0 and diff.stdout.startswith("diff backup"), diff.stderr[-2000:]
        known_at = moments[-1] + pd.Timedelta(minutes=10)
        before = checksums(drill.url)
        dataset = training_set(drill.url, store.symbols, moments, known_at)
        moment = server_now(drill.url)
        time.sleep(1.1)  # the mistake commits strictly after the recovery target

        execute(drill.url, "DELETE FROM features WHERE symbol = 'MSFT'", "DROP TABLE features_revisions CASCADE")
        damaged = checksums(drill.url)
        assert damaged["features"] != before["features"], "the drill's mistake changed nothing"
        assert "features_revisions" not in damaged or damaged["features_revisions"] != before["features_revisions"]

        target = drill.cluster("restored")
        result = backup.restore(drill.primary, drill.repo, to=moment, target=target)
        restored_url = target.url()
        assert checksums(restored_url) == before
        assert training_set(restored_url, store.symbols, moments, known_at) == dataset
        assert checksums(drill.url) == damaged, "a restore into a fresh folder left the damaged cluster alone"

        # The operator's procedure (docs/operations.md): list, then restore the local cluster in place.
        env = cli_env(drill)
        listed = json.loads(run_mfs(env, "db", "backups", "--json").stdout.splitlines()[-1])
        assert [b["kind"] for b in listed["backups"]] == ["full", "diff"] and listed["wal_segments"] > 0
        done = run_mfs(env, "db", "restore", "--to", moment.isoformat())
        assert done.returncode == 0, done.stderr[-2000:]
        assert "kept in" in done.stdout
        assert checksums(drill.url) == before

        # A lost disk: the data folder gone, the newest archived state restored in its place.
        lose_the_disk(drill.primary)
        latest = run_mfs(env, "db", "restore", "--latest")
        assert latest.returncode == 0 and "kept in" not in latest.stdout, latest.stderr[-2000:]
        assert checksums(drill.url) == before
        print(f"\nrestore into a fresh folder: {result.seconds} s; drill: {time.monotonic() - started:.0f} s")


def test_backup_verbs_say_clearly_when_backups_are_off(tmp_path, config_env):
    from mfs.errors import StorageError

    with pytest.raises(StorageError, match="backups are off"):
        backup.backup(LocalCluster(root=tmp_path / "pg", port=1))
    with pytest.raises(StorageError, match="not an ISO timestamp"):
        backup.parse_target("yesterday")
    config_env(MFS_DATABASE_URL="postgresql://mfs@db.example:5432/mfs")
    with pytest.raises(StorageError, match="MFS_DATABASE_URL names an external server"):
        backup.local_cluster()


def test_turning_backups_on_with_mfs_db_up_then_a_first_backup():
    """The procedure of docs/operations.md on a new local cluster: `mfs db up` with backups on
    configures archiving and the stanza; `mfs db backup --full` and `mfs db backups` work."""
    home = Path(tempfile.mkdtemp(prefix="mfs-backup-up-"))
    home.chmod(0o755)  # the server's user must reach it
    port = free_port()
    env = dict(os.environ, MFS_STATE_DIR=str(home), MFS_DATABASE__PORT=str(port), MFS_BACKUP__ENABLED="true")
    env.pop("MFS_DATABASE_URL", None)
    try:
        up = run_mfs(env, "db", "up", timeout=300)
        assert up.returncode == 0, up.stderr[-2000:]
        assert "WAL archiving configured (server restarted)" in up.stdout and "stanza 'mfs' created" in up.stdout
        again = run_mfs(env, "db", "up", timeout=300)
        assert "archiving" not in again.stdout  # idempotent
        first = run_mfs(env, "db", "backup", "--full")
        assert first.returncode == 0 and first.stdout.startswith("full backup"), first.stderr[-2000:]
        listed = run_mfs(env, "db", "backups")
        assert "full" in listed.stdout and "archived WAL" in listed.stdout
        assert (home / "backups" / "backup" / "mfs" / "backup.info").exists()  # the default repo_path
    finally:
        LocalCluster(root=home / "pg", port=port).stop()
        shutil.rmtree(home, ignore_errors=True)
