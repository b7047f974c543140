"""Throwaway clusters for the backup and replica drills, and checksums of everything a restore
must bring back: the tables, both revision tables, corporate actions, the feature registry, every
continuous aggregate (its rows as served), the TimescaleDB jobs and compression settings."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from psycopg2 import sql

from mfs import provisioning
from mfs.errors import StorageError
from mfs.storage import backup, migrations
from mfs.storage.connection import connect, dispose_pools
from mfs.storage.localdb import LocalCluster
from tests.fixtures.database import free_port
from tests.reliability.reliability_helpers import mfs_env

TABLES = (
    "market_data",
    "features",
    "market_data_revisions",
    "features_revisions",
    "corporate_actions",
    "feature_registry",
    "pipeline_runs",
    "schema_migrations",
)
# The catalog's view of the jobs and compression (ids, schedules, configs), not their run history.
CATALOG = {
    "jobs": "SELECT job_id, proc_name, schedule_interval, config, hypertable_name FROM timescaledb_information.jobs",
    "compression": "SELECT hypertable_name, attname, segmentby_column_index, orderby_column_index "
    "FROM timescaledb_information.compression_settings",
}

DIGEST = sql.SQL("SELECT md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM ({}) r")


@dataclass
class Drill:
    home: Path
    primary: LocalCluster
    repo: backup.Repository

    @property
    def url(self) -> str:
        return self.primary.url()

    def cluster(self, name: str) -> LocalCluster:
        return LocalCluster(root=self.home / name, port=free_port(), dbname="store")


@contextmanager
def archived_store() -> Iterator[Drill]:
    """A new local cluster archiving WAL to a pgBackRest repository of its own, with a migrated store
    (policies applied, as `mfs db up` leaves it)."""
    # The server runs as 'postgres': it needs a folder it can reach (pytest's tmp_path is private).
    home = Path(tempfile.mkdtemp(prefix="mfs-drill-"))
    home.chmod(0o755)
    primary = LocalCluster(root=home / "pg", port=free_port(), dbname="store")
    repo = backup.Repository(home / "repo", "drill", 2, "zst", 2)
    try:
        primary.init()
        primary.start()
        backup.enable_archiving(primary, repo)
        migrations.ensure_database(primary.url())
        migrations.migrate(primary.url())
        provisioning.after_migrate(primary.url())
        yield Drill(home, primary, repo)
    finally:
        dispose_pools()
        for path in sorted(home.iterdir()):  # the primary, restored copies, replicas
            if (path / "data" / "PG_VERSION").exists():
                with contextlib.suppress(StorageError):
                    LocalCluster(root=path, port=0).stop()
        shutil.rmtree(home, ignore_errors=True)


def relations(cur) -> list[str]:
    cur.execute("SELECT view_name FROM timescaledb_information.continuous_aggregates ORDER BY 1")
    names = [*TABLES, *(r[0] for r in cur.fetchall())]
    cur.execute("SELECT n FROM unnest(%s::text[]) n WHERE to_regclass(n) IS NOT NULL", (names,))
    present = {r[0] for r in cur.fetchall()}
    return [name for name in names if name in present]  # a dropped table is missing, not an error


def checksums(url: str) -> dict[str, str]:
    """md5 of every row (as text, sorted) of each table and continuous aggregate, and of the catalog."""
    conn = connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:
            found = {}
            for name in relations(cur):
                cur.execute(DIGEST.format(sql.SQL("SELECT * FROM {}").format(sql.Identifier(name))))
                found[name] = cur.fetchone()[0]
            for name, query in CATALOG.items():
                cur.execute(DIGEST.format(sql.SQL(query)))
                found[name] = cur.fetchone()[0]
            return found
    finally:
        conn.close()


def server_now(url: str) -> object:
    """The server's clock now (the recovery target of a restore is on this clock)."""
    conn = connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT clock_timestamp()")
            return cur.fetchone()[0]
    finally:
        conn.close()


def execute(url: str, *statements: str) -> None:
    conn = connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def cli_env(drill: Drill, **extra: str) -> dict[str, str]:
    """`mfs` run on the drill's cluster as if it were the project's own local cluster (its replica
    in ``<home>/pg-replica`` on MFS_REPLICA__PORT)."""
    env = dict(mfs_env(drill.url), **drill_settings(drill), **extra)
    env.pop("MFS_DATABASE_URL")
    return env


def drill_settings(drill: Drill) -> dict[str, str]:
    """The settings that make the drill's cluster the project's local one, with backups on."""
    return {
        "MFS_STATE_DIR": str(drill.home),
        "MFS_DATABASE__PORT": str(drill.primary.port),
        "MFS_DATABASE__NAME": "store",
        "MFS_BACKUP__ENABLED": "true",
        "MFS_BACKUP__REPO_PATH": str(drill.repo.path),
        "MFS_BACKUP__STANZA": drill.repo.stanza,
    }


def lose_the_disk(cluster: LocalCluster) -> None:
    """A lost disk: the postmaster killed with SIGKILL, then its data folder deleted. Waits until
    the killed process is gone (reaped, not a zombie): its socket lock file stays behind, and a
    server started while that PID still exists refuses to start ("Is another postmaster using
    socket file?") — 0.5 s was not always enough on a loaded 2-core host."""
    pid = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists():  # a zombie too: PostgreSQL's lock check (kill(pid, 0)) sees it
        if time.monotonic() > deadline:
            raise AssertionError(f"the killed postmaster {pid} still exists after 30 s")
        time.sleep(0.05)
    shutil.rmtree(cluster.data_dir)
